"""Speed of the recurrent model (docs/model-rnn.md): a row-wise MNIST epoch and where its time goes.

Prints, for the row-wise MNIST protocol (28 steps of 28 pixels, N = 100, 200 mini-batches of
128 per epoch, float32, one BLAS thread):

- seconds per training epoch as ``mfphys.rnn.train_rnn`` runs it (median over epochs after the
  first; each epoch includes the noise-free test evaluation on 10,000 images), gBP and BPTT;
- the same epoch's mini-batch steps split into gather, noise, forward, backward and optimiser,
  and the time of *the same matrix products alone* (same shapes, same layouts, same count);
- pixel-by-pixel MNIST (784 steps of 1 pixel): a few mini-batches timed, the epoch extrapolated;
- the host noise of one mini-batch: Box-Muller (``mfphys.rnn.noise``) against NumPy's ziggurat.

    python bench/bench_rnn.py [--backend numpy|cupy] [--epochs 4] [--replicas 1] [--pixel-batches 3]
                              [--data-dir DIR] [--json out.json]

Nothing here is a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from mfphys.backend import INIT, NOISE, get_backend, replica_rngs
from mfphys.data import load_dataset
from mfphys.model import Layer
from mfphys.rnn import model, noise, optim, preset, train_rnn
from mfphys.rnn.tasks import mnist_sequences


def step_products(spec, T, B, bp):
    """(lhs, rhs) shapes of every matrix product of one mini-batch, per replica (see rnn/model.py)."""
    N, n_in, n_out = spec.n, spec.n_in, spec.n_out
    k = 1 if bp else 2  # the mean (and the variance) path
    k_in = 2 if (not bp and spec.input_stochastic) else 1
    shapes = [((T * B, n_in), (n_in, N))] * k_in  # the input drive of all steps
    shapes += [((B, N), (N, N))] * (k * T)  # forward: r_{t-1} @ mu^T (and r^2 @ var^T)
    shapes += [((B, N), (N, n_out))] * k  # readout
    shapes += [((n_out, B), (B, N))] * k + [((B, n_out), (n_out, N))] * k  # readout gradients, rho
    shapes += [((B, N), (N, N))] * (k * (T - 1))  # backward: d @ mu (and d~ @ var)
    shapes += [((N, T * B), (T * B, N))] * k + [((N, T * B), (T * B, n_in))] * k_in  # sums over time
    return shapes


def time_products(be, shapes, R, n_batches, repeats=3):
    rng = np.random.default_rng(0)
    # right operands as transposed views, as the model multiplies by mu^T and var^T
    ops = [(be.asarray(rng.standard_normal((R,) + a)),
            be.asarray(rng.standard_normal((R, b[1], b[0]))).swapaxes(-1, -2)) for a, b in shapes]
    best = []
    for _ in range(repeats):
        be.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_batches):
            for a, b in ops:
                be.xp.matmul(a, b)
        be.synchronize()
        best.append(time.perf_counter() - t0)
    return min(best)


def flops(shapes, R):
    return sum(2 * a[0] * a[1] * b[1] for a, b in shapes) * R


def step_parts(cfg, be, ds, n_batches, *, bp=False):
    """Seconds per part, summed over ``n_batches`` mini-batch steps (after two warm-up steps)."""
    xp, dt = be.xp, be.dtype
    spec, R, B = cfg.spec(), cfg.replicas, cfg.batch_size
    host = model.init_params(spec, cfg.init, replica_rngs(0, R, INIT), bp=bp, dtype=dt)
    params = model.RnnParams(*(Layer(*(be.asarray(v) for v in l)) for l in host))
    st = optim.opt_init(params, cfg.optimizer, spec.trainable(bp=bp))
    settings = optim.tensor_settings(cfg.optimizer, spec)
    rngs = noise.device_rngs(replica_rngs(0, R, NOISE), be)
    X, Y = be.asarray(mnist_sequences(ds.x_train, cfg.steps)), xp.asarray(ds.y_train)
    perm = xp.asarray(np.stack([np.random.default_rng(r).permutation(X.shape[0]) for r in range(R)]))
    T = cfg.steps
    parts = dict.fromkeys(("gather", "noise", "forward", "backward", "optimizer"), 0.0)
    for i in range(n_batches + 2):
        marks = [time.perf_counter()]
        idx = perm[:, (i * B) % (X.shape[0] - B):][:, :B]
        xb, yb = X[idx], Y[idx]
        be.synchronize()
        marks.append(time.perf_counter())
        nz = noise.draw(rngs, spec, T, B, bp=bp, xp=xp, dtype=dt)
        be.synchronize()
        marks.append(time.perf_counter())
        y, trace = model.forward(params, xb, nz, spec, bp=bp)
        _, e = model.last_step_loss(y, yb)
        be.synchronize()
        marks.append(time.perf_counter())
        grads = model.backward(params, trace, e, spec, bp=bp)
        be.synchronize()
        marks.append(time.perf_counter())
        params, st = optim.opt_update(grads, st, params, cfg=cfg.optimizer, settings=settings)
        be.synchronize()
        marks.append(time.perf_counter())
        if i >= 2:
            for k, a, b in zip(parts, marks[:-1], marks[1:]):
                parts[k] += b - a
    return parts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--pixel-batches", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=1)
    ap.add_argument("--data-dir", help="folder of the MNIST files (default: $MFPHYS_DATA_DIR, then the cache)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    be = get_backend(args.backend, args.dtype)
    ds = load_dataset("mnist", data_dir=args.data_dir)
    out = {"backend": be.describe(), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "load_average": os.getloadavg(), "blas_threads": args.blas_threads,
           "replicas": args.replicas}
    base = dataclasses.replace(preset("row_mnist"), backend=args.backend, dtype=args.dtype, replicas=args.replicas,
                               blas_threads=args.blas_threads, epochs=args.epochs, eval_samples=0)
    n_batches = base.batches_per_epoch
    for mode in ("gbp", "bp"):
        res = train_rnn(dataclasses.replace(base, mode=mode), dataset=ds)
        secs = res.history["epoch_seconds"][1:]
        out[f"row_epoch_{mode}"] = statistics.median(secs)
        out[f"row_test_acc_{mode}"] = float(res.history["test_acc"][:, -1].mean())
        print(f"row-wise MNIST, {mode}: {out[f'row_epoch_{mode}']:.2f} s per epoch (train_rnn, incl. test "
              f"evaluation; epochs {np.round(res.history['epoch_seconds'], 2).tolist()})", flush=True)
    with threadpool_limits(args.blas_threads):
        for mode in ("gbp", "bp"):
            bp = mode == "bp"
            parts = step_parts(base, be, ds, n_batches, bp=bp)
            shapes = step_products(base.spec(), base.steps, base.batch_size, bp)
            mm = time_products(be, shapes, args.replicas, n_batches)
            total = sum(parts.values())
            out[f"row_parts_{mode}"] = parts
            out[f"row_matmul_{mode}"] = mm
            gflop = flops(shapes, args.replicas) * n_batches / 1e9
            print(f"  {mode} steps of one epoch: {total:.2f} s = "
                  + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
                  + f"; the same matrix products alone {mm:.2f} s ({mm / total:.0%}, {gflop:.1f} GFLOP, "
                  f"{gflop / mm:.0f} GFLOP/s)", flush=True)
        pix = dataclasses.replace(preset("pixel_mnist"), backend=args.backend, dtype=args.dtype,
                                  replicas=args.replicas)
        parts = step_parts(pix, be, ds, args.pixel_batches)
        per_batch = sum(parts.values()) / args.pixel_batches
        out["pixel_batch"] = per_batch
        out["pixel_epoch_extrapolated"] = per_batch * pix.batches_per_epoch
        print(f"pixel-by-pixel MNIST: {per_batch:.3f} s per mini-batch ({args.pixel_batches} timed) -> "
              f"{out['pixel_epoch_extrapolated']:.0f} s per epoch of {pix.batches_per_epoch} batches", flush=True)
    # the host noise of one row-wise mini-batch: Box-Muller (mfphys.rnn.noise) against NumPy's ziggurat
    buf = np.empty((base.steps, base.batch_size, base.n), args.dtype)
    g = np.random.default_rng(0)
    for name, draw in (("box_muller", lambda: noise.standard_normal(g, buf)),
                       ("ziggurat", lambda: g.standard_normal(out=buf, dtype=buf.dtype))):
        ts = []
        for _ in range(20):
            t0 = time.perf_counter()
            draw()
            ts.append(time.perf_counter() - t0)
        out[f"noise_{name}"] = min(ts)
    print(f"noise of one mini-batch ({buf.size:,} normals): Box-Muller {out['noise_box_muller'] * 1e3:.2f} ms, "
          f"NumPy's standard_normal {out['noise_ziggurat'] * 1e3:.2f} ms", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
