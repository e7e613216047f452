#!/usr/bin/env bash
# Run a command (e.g. `dvc repro`) against one local Prefect API server shared by all its flows.
# Without it every flow process starts its own temporary server (about 12 s each on 2 cores).
# An already configured PREFECT_API_URL (a team server, a test harness) is used as it is.
# The server dies with this command even on `kill -9` (scripts/prefect_api.py: a PR_SET_PDEATHSIG
# guard and a pid file), and flow runs a killed earlier run left RUNNING are marked CRASHED.
set -euo pipefail
# Either way a signal to make (or to this) stops the command and every process under it.
if [ -n "${PREFECT_API_URL:-}" ]; then exec python "$(dirname "$0")/prefect_api.py" --no-server "$@"; fi
exec python "$(dirname "$0")/prefect_api.py" "$@"
