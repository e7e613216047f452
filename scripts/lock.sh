#!/usr/bin/env bash
# requirements.lock from pyproject.toml: the base dependencies plus the extras every machine of this
# project installs (`make setup`): [scale] (the default tuning engine is a local Dask cluster),
# [ui] (optuna-dashboard) and [dev] (tests). torch stays pinned to 2.13.0 exactly; the CPU build
# comes from pip's find-links, so no build tag or index line is written into the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# Start from the current lock: pip-compile keeps its pins and only adds or changes what it must.
if [ -f requirements.lock ]; then cp requirements.lock "$tmp"; fi
pip-compile --quiet --no-header --no-annotate --no-emit-index-url --no-emit-find-links --strip-extras \
  --extra scale --extra ui --extra dev --output-file "$tmp" pyproject.toml
# pip-compile writes the local build tag of the installed wheel (torch==2.13.0+cpu); keep the plain pin.
sed -E 's/^torch==2\.13\.0\+[a-z0-9]+$/torch==2.13.0/' "$tmp" | grep -v '^liversynth\b' > requirements.lock
grep -qx 'torch==2.13.0' requirements.lock || { echo "lock: torch is not pinned to 2.13.0" >&2; exit 1; }
echo "requirements.lock: $(grep -c '==' requirements.lock) pins"
