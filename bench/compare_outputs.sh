#!/usr/bin/env bash
# Seeded train / order / perturb / scan runs and a normalised dump of every file they write, to
# compare two versions of mfphys: run it with each installed, then `diff A/dump.txt B/dump.txt`
# (and the order.* / perturb.txt files). Times, dates, host and pid attributes are masked.
#   usage: MFPHYS_DATA_DIR=/path/to/mnist bash bench/compare_outputs.sh OUTDIR
set -euo pipefail
O=$1; rm -rf "$O"; mkdir -p "$O"; cd "$O"
mfphys train --dataset teacher --layers 784,30,10 --n-train 500 --n-test 200 --epochs 3 -R 2 --seed 3 --backend numpy -q --out t.nc
mfphys train --layers 784,20,20,10 --n-train 600 --n-test 300 --epochs 2 -R 2 --seed 1 --backend numpy -q --out m.nc
mfphys train --mode bp --layers 784,20,10 --n-train 600 --n-test 300 --epochs 2 -R 1 --backend numpy -q --out bp.nc
mfphys order m.nc --json > order.json
mfphys order m.nc --csv > order.csv
mfphys order m.nc > order.txt
mfphys perturb m.nc --layer 1 --fractions 0:1:0.5 --samples 2 --out p.nc > perturb.txt 2>&1
mfphys scan --depth 1,2 --n-train 300,600 --epochs 2 -R 2 --width 10 --batch-size 100 --n-test 200 --backend numpy --out sc > scan.txt 2>&1
# the recurrent family: row-wise MNIST and the multisensory task, its order table, perturbation and scan
mfphys train --model rnn --preset row_mnist --epochs 1 -R 2 --n-train 500 --n-test 200 --backend numpy -q --out r.nc
mfphys train --model rnn --preset multisensory --epochs 3 -R 1 --backend numpy -q --out ms.nc
mfphys order r.nc > order-rnn.txt
mfphys order r.nc --json > order-rnn.json
mfphys perturb r.nc --matrix recurrent --fractions 0:1:0.5 --samples 2 --out rp.nc > perturb-rnn.txt 2>&1
mfphys scan --model rnn --steps 7,14 --n-train 200,400 --epochs 1 -R 1 --n 16 --n-test 100 --backend numpy --out rsc > scan-rnn.txt 2>&1
python - <<'PY' > dump.txt
import glob, hashlib
import numpy as np, xarray as xr
import mfphys

def digest(a):
    return a.tolist() if a.dtype.kind == "O" else hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

masked = ("created", "history", "timings", "trained_on")
for f in sorted(glob.glob("*.nc") + glob.glob("sc/cells/*.nc") + glob.glob("rsc/cells/*.nc")):
    ds = xr.open_dataset(f)
    print("==", f)
    for k in sorted(ds.attrs):
        print(" attr", k, "<masked>" if k in masked or "time" in k or "seconds" in k else ds.attrs[k])
    for k in sorted(v for v in ds.variables if "seconds" not in v):
        print(" var", k, ds[k].dims, ds[k].dtype, ds[k].shape, digest(ds[k].values))
for folder in ("sc", "rsc"):
    ds = mfphys.open_scan(folder)
    print("== open_scan", folder)
    for k in sorted(v for v in ds.variables if "seconds" not in v):
        print(" var", k, ds[k].dims, ds[k].dtype, ds[k].shape, digest(ds[k].values))
PY
echo "wrote $O/dump.txt"
