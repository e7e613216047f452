#!/usr/bin/env bash
# Run a command (e.g. `dvc repro`) against one local Prefect API server shared by all its flows.
# Without it every flow process starts its own temporary server (about 12 s each on 2 cores).
# An already configured PREFECT_API_URL (a team server, a test harness) is used as it is.
set -euo pipefail
if [ -n "${PREFECT_API_URL:-}" ]; then exec "$@"; fi
home="${PREFECT_HOME:-$PWD/.prefect}"
mkdir -p "$home"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid prefect server start --host 127.0.0.1 --port "$port" >"$home/server.log" 2>&1 &
pid=$!
trap 'kill -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
export PREFECT_API_URL="http://127.0.0.1:$port/api"
python - "$PREFECT_API_URL/health" "$pid" "$home/server.log" <<'PY'
import os, sys, time, urllib.request
url, pid, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for _ in range(240):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"Prefect server failed to start; see {log}:\n" + open(log).read()[-2000:])
        time.sleep(0.5)
sys.exit(f"Prefect server did not answer within 120 s; see {log}")
PY
"$@"
