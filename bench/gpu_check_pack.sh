#!/usr/bin/env bash
# Packed cells on a GPU (docs/scans.md "Packed cells"): the packing tests, then K cells of the
# default set-up (R = 1 each, different seeds) packed into one run against one by one, for
# K = 1, 8, 64, 256 replicas per group (seconds per cell, whether the numbers agree), and the
# same on the host's NumPy for comparison. Results in $OUT (log.txt and the JSON files).
set -u
OUT=${OUT:-/tmp/mfphys-gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MFPHYS_DATA_DIR=${MFPHYS_DATA_DIR:-$PWD/.gpu/mnist}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "== packing tests (NumPy, bit for bit)"
  timeout 200 python3 -m pytest tests/scan/test_packed.py tests/test_kernels.py -q -p no:cacheprovider -o addopts="" \
    -m "not slow" -ra 2>&1 | tail -8
  echo "== packed cells on the GPU"
  timeout 240 python3 bench/bench_pack.py --backend cupy --cells 1,8,64,256 --epochs 3 --rounds 1 --blas-threads 0 \
    --json "$OUT/pack_cupy.json"
  echo "== packed cells on this machine's CPU (NumPy, one BLAS thread)"
  timeout 120 python3 bench/bench_pack.py --backend numpy --cells 1,8 --epochs 2 --rounds 1 --json "$OUT/pack_numpy.json"
} 2>&1 | tee "$OUT/log.txt"
