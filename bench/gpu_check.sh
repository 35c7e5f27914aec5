#!/usr/bin/env bash
# The GPU check, one call on a GPU machine without network access (bench/README.md, docs/gpu.md): from a
# fresh copy of the repository with .gpu/mnist and .whl/ prepared by bench/prepare_gpu.sh, it
# installs mfphys (no network), runs both families' gpu tests, the benchmarks at R = 1, 8, 64, 256
# (feed-forward epoch, recurrent row-wise and pixel-wise steps) with their host-sync counts, and the
# paper's default run (plus a short recurrent run) through the `mfphys` command. A few minutes on an
# H100. Everything lands in $OUT: log.txt, bench_gpu.json, tests.txt.
#
#     OUT=/some/dir bash bench/gpu_check.sh [--fake] [--small]
#
# --fake: against the CuPy emulation of tests/fake_cupy (a CPU machine: checks this script);
# --small: tiny shapes and few replicas (with --fake: about two minutes on 2 cores).
set -u
cd "$(dirname "$0")/.."
source bench/gpu_env.sh
gpu_setup "bench/gpu_check.sh" "$@"
RUNS=${RUNS:-/tmp/mfphys-gpu-runs}; rm -rf "$RUNS"; mkdir -p "$RUNS"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
  gpu_install  # the wheels and mfphys, no network (bench/gpu_env.sh)
  echo "== gpu tests of both families"
  timeout 420 $PY -m pytest -m gpu -q -p no:cacheprovider -ra --durations=5 2>&1 | tee "$OUT/tests.txt" | tail -30
  echo "== benchmarks (host syncs per epoch counted)"
  if [ $SMALL = 1 ]; then
    timeout 300 $PY bench/bench_gpu.py --small --replicas 1,8 --row-batches 2 --pixel-batches 1 --ffn-epochs 2 \
      --json "$OUT/bench_gpu.json"
  else
    timeout 420 $PY bench/bench_gpu.py --replicas 1,8,64,256 --json "$OUT/bench_gpu.json"
  fi
  echo "== the paper's default run on the GPU (784-100-100-10, 10k MNIST, 100 epochs, 3 replicas)"
  extra=(); rnn=(); [ $SMALL = 1 ] && extra=(--epochs 2 --n-train 500 --n-test 200 --eval-samples 2) \
    && rnn=(--n-train 256 --n-test 100 --eval-samples 1)
  t0=$SECONDS
  timeout 240 $PY -m mfphys train --backend cupy --replicas 3 "${extra[@]}" --out "$RUNS/paper_gbp.nc" 2>&1 | tail -14
  echo "paper run: $((SECONDS - t0)) s wall, data loading and start-up included"
  echo "== a short recurrent run through the command (row-wise, 2 epochs, 2 replicas)"
  t0=$SECONDS
  timeout 240 $PY -m mfphys train --family rnn --preset row_mnist --backend cupy --epochs 2 -R 2 "${rnn[@]}" \
    --out "$RUNS/rnn_row.nc" 2>&1 | tail -12
  echo "recurrent run: $((SECONDS - t0)) s wall"
  date -u
} 2>&1 | tee "$OUT/log.txt"
