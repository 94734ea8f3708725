#!/usr/bin/env bash
# The whole GPU table in one command (issue 13): raw per backend and batch size, bookkeeping, end
# to end with 1..N worker processes on one GPU; writes a JSON file (default bench-gpu.json).
# Installs nothing: run it in the project's venv (.venv, or $PYTHON). See bench/gpu.py --help.
#   bench/gpu.sh                        # cuda:0, torch FP16 and TensorRT, under 8 minutes
#   bench/gpu.sh out.json --procs 1,2,4,8
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
export YOLO_OFFLINE=1
exec "$py" bench/gpu.py "$@"
