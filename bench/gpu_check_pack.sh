#!/usr/bin/env bash
# Packed cells and the paper-scale diagram on a GPU, one call on a GPU machine without network access
# (bench/README.md, docs/scans.md "Packed cells" and "The paper-scale diagram"), from a copy of the
# repository prepared by bench/prepare_gpu.sh: installs mfphys (bench/gpu_env.sh), runs the packing
# tests (NumPy, bit for bit), then K cells of the default set-up (R = 1 each, different seeds) packed
# into one run against one by one for K = 1, 8, 64, 256 replicas per group (seconds per cell,
# samples/s per group size, whether the numbers agree), and the whole paper-scale diagram (depth 1-4 x
# n_train 1k-60k x 3 seeds x 100 epochs, packed by seed) through `mfphys scan --backend cupy`, timed.
# Everything lands in $OUT: log.txt, pack_cupy.json, diagram_cupy.json, the diagram's phase.png.
#
#     OUT=/some/dir bash bench/gpu_check_pack.sh [--fake] [--small]
#
# --fake: against the CuPy emulation of tests/fake_cupy (a CPU machine: checks this script);
# --small: few cells, 2 epochs and the 2 x 2 x 2 diagram of bench_diagram.py --small.
set -u
cd "$(dirname "$0")/.."
source bench/gpu_env.sh
gpu_setup "bench/gpu_check_pack.sh" "$@"
CELLS=1,8,64,256; EPOCHS=3; DIAGRAM=(); [ $SMALL = 1 ] && CELLS=1,4 && EPOCHS=1 && DIAGRAM=(--small)
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
  gpu_install  # the wheels and mfphys, no network (bench/gpu_env.sh)
  echo "== the paper-scale diagram on the GPU (packed by seed, one process; stopped after 330 s if not done)"
  timeout 400 $PY bench/bench_diagram.py --backend cupy --workers 0 "${DIAGRAM[@]}" --out /tmp/mfphys-diagram \
    --timeout 330 --json "$OUT/diagram_cupy.json"
  echo "== packed cells on the GPU: seconds per cell and samples/s per group size"
  timeout 150 $PY bench/bench_pack.py --backend cupy --cells $CELLS --epochs $EPOCHS --rounds 1 --blas-threads 0 \
    --json "$OUT/pack_cupy.json"
  echo "== packing tests (NumPy, bit for bit)"
  timeout 60 $PY -m pytest tests/scan/test_packed.py -q -p no:cacheprovider -o addopts="" -m "not slow" -ra \
    2>&1 | tail -6
  cp -f /tmp/mfphys-diagram/phase.png "$OUT/" 2>/dev/null
  date -u
} 2>&1 | tee "$OUT/log.txt"
