#!/usr/bin/env bash
# GPU check of the recurrent model, for a GPU machine without network access (see bench/README.md):
# the recurrent tests with the `gpu` ones (NumPy/CuPy agreement of training and evaluation, the
# CuPy resume with host noise), then bench_rnn.py on CuPy (row-wise epoch, R = 1 and 8, and a few
# pixel-by-pixel mini-batches) against the same machine's NumPy. Installs nothing from the
# network: netCDF4/cftime come as wheels in .whl/ (optional; the run-file tests need them) and
# MNIST from .gpu/mnist (both git-ignored, carried by the device tool). About 5 minutes.
set -u
OUT=${OUT:-/tmp/mfphys-gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MFPHYS_DATA_DIR=${MFPHYS_DATA_DIR:-$PWD/.gpu/mnist}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import mfphys.backend as b; print('gpu_status', b.gpu_status())"
  echo "== recurrent tests (gpu tests included; slow deselected)"
  timeout 200 python3 -m pytest tests/rnn/test_model.py tests/rnn/test_train.py tests/rnn/test_evaluate.py \
    tests/rnn/test_optim.py tests/rnn/test_checkpoint.py -q -p no:cacheprovider -o addopts="" -m "not slow" -ra \
    2>&1 | tail -20
  echo "== benchmark: cupy (row-wise epoch, pixel-by-pixel mini-batches)"
  for R in 1 8; do
    timeout 120 python3 bench/bench_rnn.py --backend cupy --replicas $R --epochs 3 --pixel-batches 5 \
      --json "$OUT/bench_rnn_cupy_R$R.json"
  done
  echo "== benchmark: numpy on the same machine's CPU"
  timeout 90 python3 bench/bench_rnn.py --backend numpy --epochs 2 --pixel-batches 2 --json "$OUT/bench_rnn_numpy.json"
} 2>&1 | tee "$OUT/log.txt"
