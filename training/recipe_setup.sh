# Sourced by the GPU recipes (gpu_recipe.sh, gpu_recipe_fast.sh, gpu_recipe_recogniser.sh), from
# the checkout's root, with WHEELS and PYTHON set: on a bare GPU machine the wheels carried in
# $WHEELS are installed for $PYTHON (nothing is downloaded), the checkout goes on PYTHONPATH, and
# $shared names the shared data folder: shared/ carried into the checkout, or ../shared beside
# it. Its functions: require_darkplate, start_recipe.
if [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

shared=shared
[ -d "$shared" ] || shared=../shared

# DARKPLATE: the DarkPlate crops a recipe trains on (default $shared's); missing stops it.
require_darkplate() {
  DARKPLATE=${DARKPLATE:-$shared/data/train_darkplate}
  if [ ! -d "$DARKPLATE/images" ] || [ ! -d "$DARKPLATE/labels" ]; then
    echo "recipe: DarkPlate folder $DARKPLATE has no images/ and labels/: carry it or name it" >&2
    exit 2
  fi
}

# `start_recipe NAME`: the clock starts, $OUT exists, and WORK becomes a fresh scratch folder
# under WORK (default $TMPDIR or /tmp), removed when the recipe exits: only $OUT comes back.
start_recipe() {
  started=$(date +%s)
  mkdir -p "$OUT"
  mkdir -p "${WORK:=${TMPDIR:-/tmp}}"
  WORK=$(mktemp -d "$WORK/plate-ocr-$1.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
}
