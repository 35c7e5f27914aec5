#!/usr/bin/env bash
# Second GPU check (2026-11-27): the GPU tests after the fused CUDA kernels, the GPU benchmark,
# and the full `mfphys reproduce all` on CuPy (results packed into one archive in $OUT).
set -u
OUT=${OUT:-/tmp/mfphys-gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MFPHYS_DATA_DIR=${MFPHYS_DATA_DIR:-$PWD/.gpu/mnist}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "== tests (gpu tests included; slow deselected)"
  timeout 150 python3 -m pytest tests/test_model.py tests/test_train.py tests/test_optim.py tests/test_store.py \
    tests/test_order.py tests/test_perturb.py -q -p no:cacheprovider -o addopts="" -m "not slow" -ra 2>&1 | tail -15
  echo "== benchmark: cupy"
  timeout 90 python3 bench/bench_train.py --backend cupy --replicas 1,8,64 --epochs 6 --json "$OUT/bench_cupy.json"
  echo "== mfphys reproduce all (full protocol) on the GPU"
  t0=$SECONDS
  timeout 300 python3 -m mfphys reproduce all --backend cupy --out runs/paper 2>&1 | grep -v "^\s*$" | tail -60
  echo "reproduce: $((SECONDS - t0)) s wall"
  tar czf "$OUT/paper.tgz" runs/paper
} 2>&1 | tee "$OUT/log.txt"
