#!/usr/bin/env bash
# One-shot GPU check for a GPU machine without network access (see bench/README.md): the GPU tests, the GPU
# benchmark (with the device host's NumPy as its same-machine baseline) and the paper's
# default run on CuPy. Installs nothing from the network: netCDF4/cftime come as wheels in
# .whl/ (optional) and MNIST from .gpu/mnist (both git-ignored, carried by the device tool).
set -u
OUT=${OUT:-/tmp/mfphys-gpu}; mkdir -p "$OUT"
LOG="$OUT/log.txt"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MFPHYS_DATA_DIR=${MFPHYS_DATA_DIR:-$PWD/.gpu/mnist}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import cupy, numpy, xarray; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'xarray', xarray.__version__)"
  python3 -c "import mfphys.backend as b; print('gpu_status', b.gpu_status())"
  echo "== tests (gpu tests included; slow deselected)"
  timeout 240 python3 -m pytest tests/test_model.py tests/test_train.py tests/test_optim.py tests/test_store.py \
    -q -p no:cacheprovider -o addopts="" -m "not slow" -ra 2>&1 | tail -25
  echo "== benchmark: cupy"
  timeout 150 python3 bench/bench_train.py --backend cupy --replicas 1,8,64 --epochs 6 --json "$OUT/bench_cupy.json"
  echo "== benchmark: numpy on the same machine's CPU"
  timeout 90 python3 bench/bench_train.py --backend numpy --replicas 1,8 --epochs 4 --json "$OUT/bench_numpy.json"
  echo "== paper default (784-100-100-10, 10k MNIST, 100 epochs), 3 seeds, on the GPU"
  for mode in gbp bp; do
    t0=$SECONDS
    timeout 120 python3 -m mfphys train --backend cupy --mode $mode --replicas 3 \
      --out "$OUT/${mode}_gpu.nc" 2>&1 | tail -14
    echo "$mode: $((SECONDS - t0)) s wall, data loading and start-up included"
  done
} 2>&1 | tee "$LOG"
