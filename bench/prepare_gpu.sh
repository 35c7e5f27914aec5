#!/usr/bin/env bash
# Prepare this checkout for bench/gpu_check.sh on a GPU machine without network access (bench/README.md):
# the MNIST files into .gpu/mnist and, into .whl/, wheels for CPython 3.12 on manylinux x86_64 of the
# dependencies a GPU image may lack (netCDF4, cftime, textual and the front ends' small pure-Python
# ones). Both folders are git-ignored: copy them along with the checkout.
#
#     bash bench/prepare_gpu.sh [MNIST_DIR]        # default: $MFPHYS_DATA_DIR
#
# PY_VERSION (default 3.12) and PLATFORMS (manylinux tags) choose the wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-${MFPHYS_DATA_DIR:-}}
if [ -z "$SRC" ] || ! ls "$SRC"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "error: give the folder of the MNIST IDX files (bench/prepare_gpu.sh DIR or MFPHYS_DATA_DIR)" >&2
  exit 2
fi
PY_VERSION=${PY_VERSION:-3.12}
PLATFORMS=${PLATFORMS:-"manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64"}
mkdir -p .gpu/mnist .whl
cp -f "$SRC"/*-ubyte* .gpu/mnist/
# the dependencies of pyproject.toml that a CUDA image with CuPy, NumPy and xarray may lack, and
# what they need; --no-deps: the GPU side installs only the ones it is missing (gpu_check.sh);
# setuptools: the build backend of `pip install -e .` there (pyproject.toml's build-system)
WHEELS="netCDF4 cftime textual typer==0.26.* rich markdown-it-py mdurl pygments platformdirs typing_extensions
        threadpoolctl linkify-it-py uc-micro-py setuptools>=70.1"
plat=(); for p in $PLATFORMS; do plat+=(--platform "$p"); done
python -m pip download -q --dest .whl --only-binary=:all: --python-version "$PY_VERSION" "${plat[@]}" --no-deps $WHEELS
echo "prepared: $(ls .gpu/mnist | wc -l) MNIST files in .gpu/mnist, $(ls .whl/*.whl | wc -l) wheels in .whl" \
     "($(du -sh .gpu .whl | awk '{print $1}' | paste -sd+))"
