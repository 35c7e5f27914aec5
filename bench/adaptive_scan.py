"""Adaptive scan against a uniform grid of the same number of cells, on MNIST (docs/scans.md
"Adaptive scans: does it pay?").

A dense reference grid (depth x n_train, ``--dense`` log-spaced n_train per depth) is trained
once; the uniform grid is every third of its n_train (the same cells, so the same numbers);
two adaptive scans of the same number of cells resolve the test error and the sparsity. Each is
interpolated linearly in log n_train between its cells (per depth) and compared with the dense
reference at the reference's n_train: the RMS and largest error of the test error, and the
position of the sparsity onset (the n_train where the whole network's sparsity crosses
``--level``) in decades. Small networks and few epochs, to fit a shared 2-core machine.

    MFPHYS_DATA_DIR=... python bench/adaptive_scan.py --out bench/out/adaptive
    python bench/adaptive_scan.py --case teacher --lo 50 --hi 5000 --dense 28 --depths 1,2 --out bench/out/ad-teacher
    python bench/adaptive_scan.py --case teacher-small --lo 10 --hi 1000 --dense 28 --depths 1,2 \
        --out bench/out/ad-small
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: the two cases: MNIST (depth x n_train) and the cheaper teacher-student one (depth x n_train = alpha N0)
CASES = {
    "mnist": {"dataset": "mnist", "width": 20, "epochs": 3, "batch_size": 100, "n_test": 2000, "eval_samples": 4,
              "replicas": 1, "backend": "numpy"},
    "teacher": {"dataset": "teacher", "input_dim": 100, "width": 30, "epochs": 5, "batch_size": 25,
                "n_test": 2000, "eval_samples": 4, "replicas": 4, "backend": "numpy"},
    # the set-up of tests/scan/test_adaptive.py: a flat region (no sparsity) and a sharp onset
    "teacher-small": {"dataset": "teacher", "input_dim": 20, "width": 10, "epochs": 2, "batch_size": 10,
                      "n_test": 1000, "eval_samples": 4, "replicas": 4, "backend": "numpy"},
}
FIXED = CASES["mnist"]


def crossing(x, y, level, falling=False):
    """The first x (log10) where y rises (``falling``: falls) through level, linearly between
    points; NaN if it never does."""
    if falling:
        return crossing(x, -np.asarray(y), -level)
    above = np.nonzero(y >= level)[0]
    if not len(above) or above[0] == 0:
        return np.nan
    j = above[0]
    t = (level - y[j - 1]) / (y[j] - y[j - 1])
    return x[j - 1] + t * (x[j] - x[j - 1])


def curves(ds, values, dim="n_train"):
    """Per depth: (log10 n_train, value) of the done cells, sorted."""
    out = {}
    for d in np.unique(ds.depth.values):
        sel = (ds.depth.values == d) & (ds.status.values == "done")
        x = np.log10(ds[dim].values[sel].astype(float))
        o = np.argsort(x)
        out[int(d)] = (x[o], values[sel][o])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/out/adaptive"))
    ap.add_argument("--case", choices=sorted(CASES), default="mnist")
    ap.add_argument("--depths", default="1,2,3,4")
    ap.add_argument("--lo", type=int, default=200)
    ap.add_argument("--hi", type=int, default=60000)
    ap.add_argument("--dense", type=int, default=22)
    ap.add_argument("--every", type=int, default=3, help="the uniform grid: every N-th dense n_train")
    ap.add_argument("--level", type=float, default=0.1, help="the sparsity onset: where it rises through this")
    ap.add_argument("--error-level", type=float, default=0.5,
                    help="the learning onset: where the test error falls through this")
    args = ap.parse_args()
    global FIXED
    FIXED = CASES[args.case]
    from mfphys import scan

    depths = [int(d) for d in args.depths.split(",")]
    dense_n = sorted({int(round(v)) for v in np.geomspace(args.lo, args.hi, args.dense)})
    uniform_n = dense_n[:: args.every]
    cells = len(depths) * len(uniform_n)
    t0 = time.time()
    dense = scan.ScanSpec.build({"depth": depths, "n_train": dense_n}, FIXED)
    scan.run_scan(dense, args.out / "dense")
    t_dense = time.time() - t0
    ds = scan.open_scan(args.out / "dense")
    flat = ds.stack(cell=("depth", "n_train")).reset_index("cell")
    ref_err = curves(flat, flat.test_error.mean("replica").values)
    ref_sp = curves(flat, scan.network_mean(flat, "sparsity", live=True).mean("replica").values)

    results = {"fixed": FIXED, "depths": depths, "dense_n_train": dense_n, "uniform_n_train": uniform_n,
               "cells": cells, "dense_cells": len(depths) * len(dense_n), "level": args.level,
               "dense_seconds": round(t_dense, 1)}
    for target in ("test_error", "sparsity"):
        spec = scan.AdaptiveSpec.build({"n_train": (args.lo, args.hi, "log")}, discrete={"depth": depths},
                                       fixed=FIXED, target=target)
        t0 = time.time()
        scan.run_adaptive_scan(spec, args.out / f"adaptive-{target}", cells=cells)
        results[f"adaptive_{target}_seconds"] = round(time.time() - t0, 1)
        ads = scan.open_scan(args.out / f"adaptive-{target}")
        ada = curves(ads, ads.target.values[:, 0])
        uni = {d: (x[:: args.every], y[:: args.every]) for d, (x, y) in (ref_err if target == "test_error"
                                                                          else ref_sp).items()}
        ref = ref_err if target == "test_error" else ref_sp
        row = {}
        for label, cur in (("adaptive", ada), ("uniform", uni)):
            level, falling = (args.error_level, True) if target == "test_error" else (args.level, False)
            errs = np.concatenate([np.interp(ref[d][0], *cur[d]) - ref[d][1] for d in depths])
            pos = {d: crossing(*cur[d], level, falling) - crossing(*ref[d], level, falling) for d in depths}
            vals = np.array([v for v in pos.values() if np.isfinite(v)])
            row[label] = {"rms": float(np.sqrt(np.mean(errs ** 2))), "max": float(np.abs(errs).max()),
                          "onset_error_decades": {d: round(float(v), 4) for d, v in pos.items()},
                          "mean_abs_decades": float(np.abs(vals).mean()) if len(vals) else None,
                          "cells": {d: len(cur[d][0]) for d in depths}}
        level, falling = (args.level, False) if target == "sparsity" else (args.error_level, True)
        row["reference_onset_n_train"] = {d: (round(float(10 ** v)) if np.isfinite(v := crossing(*ref[d], level,
                                                                                                 falling)) else None)
                                          for d in depths}
        results[target] = row
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str))
    figure(args.out, depths, ref_err, ref_sp, args)


def figure(out, depths, ref_err, ref_sp, args):
    from matplotlib.figure import Figure

    from mfphys import scan

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for ax, target, ref in zip(axes, ("test_error", "sparsity"), (ref_err, ref_sp)):
        ads = scan.open_scan(out / f"adaptive-{target}")
        ada = curves(ads, ads.target.values[:, 0])
        for c, d in zip(colors, depths):
            x, y = ref[d]
            ax.plot(10 ** x, y, "-", color=c, lw=1, alpha=0.6, label=f"depth {d}: dense reference")
            ax.plot(10 ** x[:: args.every], y[:: args.every], "s", mfc="none", color=c, ms=6)
            ax.plot(10 ** ada[d][0], ada[d][1], "o", color=c, ms=3.5)
        ax.set_xscale("log")
        ax.set_xlabel("n_train (P)")
        ax.set_ylabel(target if target == "test_error" else "sparsity (whole network, live inputs)")
        if target == "sparsity":
            ax.axhline(args.level, color="gray", lw=0.8, ls="--")
        ax.set_title(f"{target}: dots = adaptive cells, squares = uniform grid", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{FIXED['dataset']}, width {FIXED['width']}, {FIXED['epochs']} epochs, {FIXED['replicas']} "
                 f"replica(s): adaptive vs uniform at "
                 f"{len(depths) * len(ref_err[depths[0]][0][:: args.every])} cells each")
    fig.tight_layout()
    fig.savefig(out / "adaptive-vs-uniform.png", dpi=110)


if __name__ == "__main__":
    main()
