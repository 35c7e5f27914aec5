"""Packed cells against the same cells trained one after the other (docs/scans.md, "Packed cells").

For the default feed-forward set-up (784-100-100-10, 10,000 MNIST images, batch 500, R = 1
per cell) it trains K cells that differ in their seed, packed (``train_packed``: one batched
run) and alone (``train`` K times), alternately, and prints the seconds (wall-clock and CPU
time of the process) per cell and their ratio, the training samples per second of the group
(n_train x epochs x K over the wall time), and checks that the numbers agree bit for bit.

    python bench/bench_pack.py [--cells 1,4,8] [--epochs 3] [--blas-threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from mfphys.models.ffn.train import train_packed
from mfphys.train import TrainConfig, load_data, train


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="1,4,8")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--blas-threads", type=int, default=1)
    p.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"))
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.blas_threads, user_api="blas")
    base = TrainConfig(epochs=a.epochs, eval_samples=0, backend=a.backend)
    ds = load_data(base, a.data_dir)
    train(dataclasses.replace(base, epochs=1), dataset=ds)  # warm-up (compiles what needs compiling)
    rows = []
    print(f"load average before: {os.getloadavg()}")
    for k in (int(c) for c in a.cells.split(",")):
        configs = [dataclasses.replace(base, seed=s) for s in range(k)]
        t = {"packed": [], "alone": []}
        c = {"packed": [], "alone": []}
        for _ in range(a.rounds):
            w0, c0 = time.perf_counter(), time.process_time()
            packed = train_packed(configs, dataset=ds)
            t["packed"].append(time.perf_counter() - w0)
            c["packed"].append(time.process_time() - c0)
            w0, c0 = time.perf_counter(), time.process_time()
            alone = [train(cfg, dataset=ds) for cfg in configs]
            t["alone"].append(time.perf_counter() - w0)
            c["alone"].append(time.process_time() - c0)
        same = all(np.array_equal(u, v) for r1, r2 in zip(packed, alone) for l1, l2 in zip(r1.params, r2.params)
                   for u, v in zip(l1, l2))
        row = {"cells": k, "epochs": a.epochs, "identical": same,
               **{f"{w}_{m}_per_cell": float(min(d[m])) / k for w, d in (("wall", t), ("cpu", c)) for m in d}}
        # training samples (n_train x epochs x cells) per second of the group, packed and alone
        samples = k * base.n_train * a.epochs
        row.update(samples_per_s_packed=samples / min(t["packed"]), samples_per_s_alone=samples / min(t["alone"]))
        rows.append(row)
        print(f"{k} cells x {a.epochs} epochs: per cell packed {row['wall_packed_per_cell']:.3f} s "
              f"(CPU {row['cpu_packed_per_cell']:.3f}), alone {row['wall_alone_per_cell']:.3f} s "
              f"(CPU {row['cpu_alone_per_cell']:.3f}); alone / packed (CPU) "
              f"{row['cpu_alone_per_cell'] / row['cpu_packed_per_cell']:.2f}x; samples/s packed "
              f"{row['samples_per_s_packed']:,.0f}, alone {row['samples_per_s_alone']:,.0f}; bit-identical: {same}",
              flush=True)
    print(f"load average after: {os.getloadavg()}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
