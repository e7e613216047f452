#!/usr/bin/env bash
# Version data/raw with DVC in ./data.dvc (a root-level .dvc file, so `git log data.dvc` is the
# history of the raw data). `dvc add` always writes data/raw.dvc, so the first time we move it.
set -euo pipefail
if [ -f data.dvc ]; then
  dvc commit --force --quiet data.dvc
else
  dvc add --quiet data/raw
  sed 's|^  path: raw$|  path: data/raw|' data/raw.dvc > data.dvc
  rm data/raw.dvc
fi
echo "data/raw is $(grep -m1 'md5:' data.dvc | awk '{print $NF}') (data.dvc)"
