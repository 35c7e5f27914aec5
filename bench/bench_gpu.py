"""Both families on one backend at R = 1, 8, 64, 256: training step times and host syncs (bench/README.md).

For each replica count it times, after a warm-up epoch:

- the feed-forward default (784-100-100-10, 10,000 MNIST images, batch 500): seconds per epoch
  (mini-batch steps and the per-epoch test evaluation, as ``mfphys.train.train`` records them);
- the recurrent row-wise preset (28 steps, N = 100, batch 128) and pixel-wise preset (784 steps):
  seconds per mini-batch step over ``--row-batches`` / ``--pixel-batches`` steps of one epoch
  (``mfphys.rnn.train.train_epoch``; the per-epoch test evaluation is left out) and the
  200-batch epoch extrapolated;
- the host synchronisations of that epoch: those through ``Backend.to_numpy`` and
  ``Backend.synchronize`` (every backend), and, on the CuPy emulation of tests/fake_cupy, every
  one with its file:line. With zero syncs per step (docs/gpu.md) the count does not grow with
  the number of steps.

    python bench/bench_gpu.py [--backend cupy] [--replicas 1,8,64,256] [--row-batches 20]
                              [--pixel-batches 3] [--small] [--json out.json]

``--small`` shrinks every shape (a few seconds on a CPU: checks the script, not the speed).
Nothing here is a test.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time

import numpy as np

from mfphys.backend import Backend, get_backend
from mfphys.data import load_dataset
from mfphys.rnn import preset
from mfphys.rnn import train as rt
from mfphys.train import TrainConfig, train


@contextlib.contextmanager
def counting():
    """Host syncs inside: ``rec["through_backend"]`` (to_numpy, synchronize) and, on the CuPy
    emulation, ``rec["all"]`` (every sync, by file:line)."""
    rec = {"through_backend": 0}
    to_numpy, synchronize = Backend.to_numpy, Backend.synchronize

    def counted(fn):
        def wrapper(self, *a, **k):
            if self.name != "numpy":
                rec["through_backend"] += 1
            return fn(self, *a, **k)
        return wrapper

    cp = sys.modules.get("cupy")
    if getattr(cp, "_FAKE", False):  # the emulation counts every sync itself, by file:line
        with cp.count() as c:
            yield rec
        rec["through_backend"] = sum(1 for what, _ in c.syncs if what in ("asnumpy", "Stream.synchronize"))
        rec["all"] = len(c.syncs)
        rec["places"] = dict(collections.Counter(w for _, w in c.syncs))
        return
    Backend.to_numpy, Backend.synchronize = counted(to_numpy), counted(synchronize)
    try:
        yield rec
    finally:
        Backend.to_numpy, Backend.synchronize = to_numpy, synchronize


def ffn(args, ds, R):
    cfg = TrainConfig(epochs=args.ffn_epochs, replicas=R, backend=args.backend, dtype=args.dtype, eval_samples=0,
                      n_train=ds.x_train.shape[0], batch_size=min(500, ds.x_train.shape[0]),
                      layers=(784, 100, 100, 10) if not args.small else (784, 16, 10))
    res = train(cfg, dataset=ds)
    secs = res.history["epoch_seconds"][1:]
    return {"epoch_seconds": statistics.median(secs), "steps_per_epoch": -(-cfg.n_train // cfg.batch_size),
            "test_acc": float(np.mean(res.history["test_acc"][:, -1]))}


def rnn(args, ds, R, name, batches):
    base = preset(name)
    kw = dict(backend=args.backend, dtype=args.dtype, replicas=R, epochs=2, eval_samples=0, batches_per_epoch=batches,
              blas_threads=1)
    if args.small:
        kw.update(n=16, batch_size=8)
    cfg = dataclasses.replace(base, **kw)
    with rt.running(cfg):
        setup = rt.prepare(cfg, dataset=ds)
        setup.test = None  # the steps only: the per-epoch test is the feed-forward row's business
        state = rt.init_state(setup)
        state, _ = rt.train_epoch(setup, state)  # warm-up: kernels compiled, pools filled
        with counting() as syncs:
            t0 = time.perf_counter()
            state, _ = rt.train_epoch(setup, state)
            setup.be.synchronize()
            seconds = time.perf_counter() - t0
    per = seconds / batches
    return {"step_seconds": per, "epoch_extrapolated": per * (base.batches_per_epoch or 200), "steps": batches,
            "syncs_per_epoch": syncs}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cupy")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--replicas", default="1,8,64,256")
    p.add_argument("--ffn-epochs", type=int, default=4)
    p.add_argument("--row-batches", type=int, default=20)
    p.add_argument("--pixel-batches", type=int, default=3)
    p.add_argument("--small", action="store_true", help="tiny shapes: checks the script, not the speed")
    p.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"))
    p.add_argument("--json")
    a = p.parse_args(argv)
    be = get_backend(a.backend, a.dtype)
    n_train, n_test = (10_000, 10_000) if not a.small else (256, 64)
    ds = load_dataset("mnist", n_train=n_train, n_test=n_test, data_dir=a.data_dir)
    out = {"backend": be.describe(), "load_average": os.getloadavg(), "small": a.small, "rows": []}
    print(f"[{out['backend']}]{' (--small)' if a.small else ''}", flush=True)
    for R in (int(r) for r in a.replicas.split(",")):
        row = {"R": R, "ffn": ffn(a, ds, R)}
        print(f"R={R:4d} feed-forward: {row['ffn']['epoch_seconds']:.4f} s per epoch "
              f"({row['ffn']['steps_per_epoch']} steps + test)", flush=True)
        for name, batches in (("row_mnist", a.row_batches), ("pixel_mnist", a.pixel_batches)):
            r = rnn(a, ds, R, name, batches)
            row[name] = r
            s = r["syncs_per_epoch"]
            print(f"R={R:4d} {name}: {r['step_seconds'] * 1e3:.2f} ms per step -> {r['epoch_extrapolated']:.1f} s per "
                  f"200-step epoch; host syncs in an epoch of {r['steps']} steps: {s['through_backend']} through the "
                  f"backend" + (f", {s['all']} in all {s['places']}" if "all" in s else ""), flush=True)
        out["rows"].append(row)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
