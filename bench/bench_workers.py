"""``mfphys scan --workers 2`` against ``--workers 1`` (and no Dask) on a scan of 8 MNIST cells.

    MFPHYS_DATA_DIR=... python bench/bench_workers.py [--repeats 2] [--epochs 60] [--json out.json]

The scan: depth 1, 2 x n_train 3000, 4000, 5000, 6000 (784-100[-100]-10, R = 1, 2,000 test
images, ``--epochs`` epochs; about 5-15 s per cell on a quiet 2-core machine). Each mode runs
``mfphys scan`` in a fresh process into a fresh folder, interleaved (seq, 1, 2, seq, 1, 2, ...), and
prints its wall time, the cells' own training time (``train_seconds``, summed, and per worker
process from the cells' ``trained_on``), and what is left for the fixed costs: the wall time
minus the busiest worker's training time (start-up of the process and the Dask cluster, the
first cell's imports and data loading in each worker, writing the cell files in the scan
process, idle time at the end). First, a LocalCluster of 2 workers alone, its workers spawned
(fresh interpreters, Dask's default) and forked (what ``run_scan`` does on Linux): its start, the
first cell's imports and data loading in each worker, its close. The load
average is printed before and after: the numbers mean little on a machine that is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

GRID = ["--depth", "1,2", "--n-train", "3000,4000,5000,6000", "--n-test", "2000", "-R", "1", "--backend", "numpy",
        "-q"]

CLUSTER = """
import sys, time, logging
t0 = time.perf_counter()
import dask
from dask.distributed import Client, LocalCluster
import mfphys.scan.runner, mfphys.models.ffn.train  # what the scan process has loaded
from mfphys import data
data.load_dataset("mnist", n_train=6000, n_test=2000)  # the scan's check before it starts


def work():
    t = time.perf_counter()
    import mfphys.scan.runner, mfphys.models.ffn.train
    from mfphys import data
    data.load_dataset("mnist", n_train=6000, n_test=2000)
    return time.perf_counter() - t


t1 = time.perf_counter()
with dask.config.set({"distributed.worker.multiprocessing-method": sys.argv[1]}):
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    client.wait_for_workers(2)
t2 = time.perf_counter()
first = client.run(work)
t3 = time.perf_counter()
client.close(); cluster.close()
t4 = time.perf_counter()
print(f"workers by {sys.argv[1]:5s}: LocalCluster(2) up {t2 - t1:5.2f} s, first cell's imports and data "
      f"{max(first.values()):5.2f} s, closed {t4 - t3:5.2f} s")
"""


def one(mode: str, epochs: int, root: Path) -> dict:
    from mfphys import scan

    folder = root / f"w{mode}-{time.monotonic_ns()}"
    extra = [] if mode == "seq" else ["--workers", mode]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mfphys", "scan", *GRID, "--epochs", str(epochs), "--out", str(folder),
                    *extra], check=True)
    wall = time.perf_counter() - t0
    busy: dict = defaultdict(float)
    for f in sorted((folder / "cells").glob("*.nc")):
        from mfphys import store

        attrs = store.read_attrs(f)
        busy[attrs["trained_on"]] += json.loads(attrs["timings"])["train_seconds"]
    ds = scan.open_scan(folder)
    assert int((ds.status == "done").sum()) == 8
    shutil.rmtree(folder)
    return {"mode": mode, "wall": wall, "train_sum": sum(busy.values()), "busiest": max(busy.values()),
            "workers_seen": len(busy), "fixed": wall - max(busy.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--modes", default="seq,1,2")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}", flush=True)
    for method in ("spawn", "fork"):  # Dask's default, and what run_scan uses on Linux
        out = subprocess.run([sys.executable, "-c", CLUSTER, method], capture_output=True, text=True, check=True)
        print(out.stdout.strip(), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for mode in args.modes.split(","):
                r = one(mode, args.epochs, Path(tmp))
                rows.append(r)
                print(f"{'no Dask' if mode == 'seq' else '--workers ' + mode:12s} wall {r['wall']:6.1f} s, cells "
                      f"{r['train_sum']:6.1f} s in {r['workers_seen']} process(es), busiest {r['busiest']:6.1f} s, "
                      f"fixed {r['fixed']:5.1f} s   (load {os.getloadavg()[0]:.1f})", flush=True)
    med = {m: statistics.median(r["wall"] for r in rows if r["mode"] == m) for m in args.modes.split(",") if rows}
    if "1" in med and "2" in med:
        print(f"median wall: {med}; --workers 2 is {med['1'] / med['2']:.2f}x --workers 1")
    print(f"load average {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
