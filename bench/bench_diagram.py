"""The paper-scale phase-like diagram, timed: depth 1-4 x n_train 1k, 3k, 10k, 30k, 60k x 3 seeds x
100 epochs of MNIST (784-100xd-10, R = 1 per cell, the full 10,000-image test set each epoch),
through the ``mfphys scan`` command, and what it gives (docs/scans.md "The paper-scale diagram").

    MFPHYS_DATA_DIR=... python bench/bench_diagram.py [--workers 2] [--backend numpy] [--no-pack]
        [--out FOLDER] [--json out.json] [--small] [--report FOLDER]

Runs the scan in a fresh process into a fresh folder (or, with ``--report``, only reads a folder
such a scan made) and prints: the wall time of the command (start-up, data loading, the Dask
cluster and the files included), the training samples it computed (n_train x epochs summed over
the cells) and samples/s, the cells' own times summed (``train_seconds``), the phase picture
(``mfphys scan-plot``, written to ``<folder>/phase.png``) and the table of test error, sampled
error, sparsity (``frac_uip``), very important connections (``frac_vip``) and entropy per
connection of the whole network (layer 1 over live inputs, as the picture) over depth x n_train
(mean over the seeds, with the seeds' standard deviation). ``--small`` is a 2 x 2 x 2 grid
of 2 epochs (checks the script in under a minute). ``--timeout S`` stops the scan after S seconds
(as Ctrl-C does) and reports the cells done by then. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PAPER = {"depth": "1,2,3,4", "n_train": "1000,3000,10000,30000,60000", "seed": "0,1,2", "epochs": "100"}
SMALL = {"depth": "1,2", "n_train": "500,1000", "seed": "0,1", "epochs": "2", "n_test": "1000"}
#: what the table shows, with its scale: the errors in %, the order parameters of the whole
#: network (connection-weighted, layer 1 over live inputs, as ``mfphys scan-plot`` draws them)
SHOWN = (("test_error", 100.0), ("sampled_error", 100.0), ("frac_uip", 1.0), ("frac_vip", 1.0), ("entropy", 1.0))


def scan_args(grid: dict, args) -> list[str]:
    out = []
    for k, v in grid.items():
        out += [f"--{k.replace('_', '-')}", v]
    out += ["--backend", args.backend, "-q"]
    if args.workers:
        out += ["--workers", str(args.workers)]
    if args.no_pack:
        out += ["--no-pack"]
    return out


def report(folder: Path) -> dict:
    """The numbers of a finished diagram folder (its cells' files are the truth)."""
    import numpy as np

    from mfphys import scan

    ds = scan.open_scan(folder)
    done = ds.status == "done"
    total = int(done.size)
    # training samples: n_train x epochs x replicas over the cells done
    samples = int(ds.n_train.broadcast_like(done).where(done).sum()) * ds.sizes["epoch"] * ds.sizes["replica"]
    train_seconds = float(ds.train_seconds.where(done).sum())
    # as the picture shows them: the network's connection-weighted means, layer 1 over live inputs
    views = {"test_error": ds["test_error"], "sampled_error": 1 - ds["test_acc_sampled"],
             "frac_uip": scan.network_mean(ds, "frac_uip"), "frac_vip": scan.network_mean(ds, "frac_vip"),
             "entropy": scan.network_mean(ds, "entropy")}
    table = {}
    for name, scale in SHOWN:
        per_seed = views[name].mean("replica")
        mean, std = per_seed.mean("seed"), per_seed.std("seed")
        table[name] = {"scale": scale, "depth": [int(d) for d in ds.depth.values],
                       "n_train": [int(x) for x in ds.n_train.values],
                       "mean": (np.asarray(mean.transpose("depth", "n_train").values) * scale).tolist(),
                       "std": (np.asarray(std.transpose("depth", "n_train").values) * scale).tolist()}
    return {"cells": int(done.sum()), "cells_total": total, "samples": samples,
            "cells_train_seconds": round(train_seconds, 1), "table": table}


def markdown(table: dict) -> str:
    lines = []
    for name, t in table.items():
        unit = " (%)" if t["scale"] == 100.0 else ""
        lines.append(f"{name}{unit}, mean ± std over the seeds")
        lines.append("| depth | " + " | ".join(f"n_train {n:,}" for n in t["n_train"]) + " |")
        lines.append("| --- |" + " --- |" * len(t["n_train"]))
        for i, d in enumerate(t["depth"]):
            lines.append(f"| {d} | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(t["mean"][i], t["std"][i]))
                         + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--no-pack", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("/tmp/mfphys-diagram"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--report", type=Path, help="only report on this finished diagram folder")
    ap.add_argument("--timeout", type=float, help="stop the scan (as Ctrl-C does) after this many seconds and "
                    "report the cells done by then")
    args = ap.parse_args()
    grid = SMALL if args.small else PAPER
    out = {"grid": grid, "backend": args.backend, "workers": args.workers, "pack": not args.no_pack,
           "load_before": os.getloadavg()[0], "cpus": os.cpu_count()}
    folder = args.report or args.out
    if args.report is None:
        if folder.exists():
            shutil.rmtree(folder)
        cmd = [sys.executable, "-m", "mfphys", "scan", *scan_args(grid, args), "--out", str(folder)]
        print("$", " ".join(cmd[2:]), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:  # stopped as Ctrl-C stops it: the cells done so far are kept
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate()
            out["stopped_after_seconds"] = args.timeout
        out["wall_seconds"] = round(time.perf_counter() - t0, 1)
        out["exit_code"] = proc.returncode
        if proc.returncode:
            print(err[-2000:], file=sys.stderr)
    out["load_after"] = os.getloadavg()[0]
    out.update(report(folder))
    if out.get("wall_seconds"):
        out["samples_per_second"] = round(out["samples"] / out["wall_seconds"])
    png = folder / "phase.png"
    plot = subprocess.run([sys.executable, "-m", "mfphys", "scan-plot", str(folder), "--out", str(png)],
                          capture_output=True, text=True)
    out["picture"] = str(png) if plot.returncode == 0 else f"scan-plot failed: {plot.stderr.strip()[-300:]}"
    for k in ("cells", "cells_total", "stopped_after_seconds", "wall_seconds", "samples", "samples_per_second",
              "cells_train_seconds", "load_before", "load_after", "picture"):
        if k in out:
            print(f"{k:22s} {out[k]}")
    print(markdown(out["table"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
