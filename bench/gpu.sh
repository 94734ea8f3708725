#!/usr/bin/env bash
# The whole GPU table in one command (issue 13): raw per backend and batch size, bookkeeping, end
# to end with 1..N worker processes on one GPU; writes a JSON file (default bench-gpu.json),
# rewritten after every row. A backend that cannot load here is listed under `skipped` with the
# reason, and the rest still runs. See bench/gpu.py --help.
#   bench/gpu.sh                        # cuda:0, torch FP16 and TensorRT, under 8 minutes
#   bench/gpu.sh out.json --procs 1,2,4,8
# Installs nothing: run it in the project's venv (.venv, or $PYTHON). Except:
#   bench/gpu.sh --target-image [OUT.json] [gpu.py flags]
# on the lent GPU machine's image (no registry there): installs the wheels that
# bench/gpu_wheels.sh put in .whl/ (carry it; or $WHEELS) into $SITE (/tmp/site) for its
# python3, then runs the table with its JSON (default $OUT/bench-gpu.json) and log
# ($OUT/gpu.log) under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
if [ "${1:-}" = "--target-image" ]; then
  shift
  wheels=${WHEELS:-.whl}
  if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "gpu.sh: no wheels in $wheels: run bench/gpu_wheels.sh where a registry is" >&2
    exit 2
  fi
  py=${PYTHON:-python3}
  site=${SITE:-/tmp/site}
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$wheels"/*.whl
  export PYTHONPATH=$site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  out=${OUT:-.}
  mkdir -p "$out"
  if [ $# -eq 0 ] || [ "${1#--}" != "$1" ]; then
    set -- "$out/bench-gpu.json" "$@"
  fi
  "$py" bench/gpu.py "$@" 2>&1 | tee "$out/gpu.log"
  exit "${PIPESTATUS[0]}"
fi
exec "$py" bench/gpu.py "$@"
