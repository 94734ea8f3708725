# Sourced by the GPU recipes (gpu_recipe.sh, gpu_recipe_fast.sh), from the checkout's root, with
# WHEELS and PYTHON set: on a bare GPU machine the wheels carried in $WHEELS are installed for
# $PYTHON (nothing is downloaded), the checkout goes on PYTHONPATH, and $shared names the shared
# data folder: shared/ carried into the checkout, or ../shared beside it.
if [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

shared=shared
[ -d "$shared" ] || shared=../shared
