"""Speed and memory of one training epoch and of the evaluations (docs/results.md, bench/README.md).

Prints, for the default configuration (784-100-100-10, 10,000 MNIST images, batch 500):
seconds per training epoch (mini-batch steps only), samples/s, seconds per noise-free test
evaluation, the time of the *same matrix products alone* (same shapes, same layout, same
count), their ratio, achieved GFLOP/s, and peak memory; then the sampled evaluation of K
networks on the 10,000 test images. Repeated for ``--replicas 8``.

    python bench/bench_train.py [--backend numpy|cupy] [--dtype float32] [--epochs 6] [--replicas 1,8]
                                [--mode gbp] [--json out.json]

Timings are medians over epochs after the first (warm-up). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import tracemalloc

import numpy as np

from mfphys.backend import EVAL, get_backend, replica_rngs
from mfphys.train import TrainConfig, evaluate_sampled, load_data, train


def step_matmul_shapes(layers, B, bp):
    """(lhs, rhs) shapes of every matrix product of one gBP/BP step, per replica (see model.py)."""
    shapes = []
    for l, (n, N) in enumerate(zip(layers[:-1], layers[1:])):
        k = 1 if bp else 2  # G (and Delta); g_mu (and g_var)
        shapes += [((B, n), (n, N))] * k  # forward: a @ mu_hat^T
        shapes += [((N, B), (B, n))] * k  # backward: delta^T @ a
        if l > 0:
            shapes += [((B, N), (N, n))] * k  # dLoss/da
    return shapes


def flops(shapes, R):
    return sum(2 * a[0] * a[1] * b[1] for a, b in shapes) * R


def time_matmuls(be, layers, B, R, n_batches, bp, repeats=5):
    """Seconds for one epoch's worth of the same batched products, with the same transposed layouts."""
    rng = np.random.default_rng(0)
    ops = []
    for (m, k), (_, n) in step_matmul_shapes(layers, B, bp):
        lhs = be.asarray(rng.standard_normal((R, m, k)))
        rhs = be.asarray(rng.standard_normal((R, n, k))).swapaxes(-1, -2)  # transposed view, as in model.py
        ops.append((lhs, rhs))
    times = []
    for _ in range(repeats):
        be.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_batches):
            for lhs, rhs in ops:
                lhs @ rhs
        be.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def peak_memory(be):
    if be.name == "cupy":
        pool = be.xp.get_default_memory_pool()
        return pool.total_bytes() / 2**20, "MiB on the GPU (CuPy pool)"
    return tracemalloc.get_traced_memory()[1] / 2**20, "MiB traced (NumPy arrays)"


def bench(cfg: TrainConfig, data_dir, eval_draws: int):
    be = get_backend(cfg.backend, cfg.dtype)
    ds = load_data(cfg, data_dir)
    res = train(cfg, dataset=ds)  # timed run: no allocation tracing (it slows NumPy down)
    if be.name == "numpy":  # a separate short run for the peak of traced allocations
        tracemalloc.start()
        train(dataclasses.replace(cfg, epochs=2), dataset=ds)
        mem, mem_what = peak_memory(be)
        tracemalloc.stop()
    else:
        mem, mem_what = peak_memory(be)
    step_secs = res.history["epoch_seconds"][1:] - res.history["eval_seconds"][1:]
    epoch = float(np.median(step_secs))
    eval_s = float(np.median(res.history["eval_seconds"][1:]))
    P, B, R = ds.x_train.shape[0], cfg.batch_size, cfg.replicas
    n_batches = math.ceil(P / B)
    mm = time_matmuls(be, cfg.layers, B, R, n_batches, cfg.mode == "bp")
    gflop = flops(step_matmul_shapes(cfg.layers, B, cfg.mode == "bp"), R) * n_batches / 1e9
    t0 = time.perf_counter()
    evaluate_sampled(res.params, ds.x_test, ds.y_test, n_draws=eval_draws, rngs=replica_rngs(0, R, EVAL),
                     activation=cfg.activation, be=be)
    be.synchronize()
    sampled = time.perf_counter() - t0
    return {
        "backend": res.backend, "mode": cfg.mode, "replicas": R, "layers": list(cfg.layers), "n_train": P,
        "batch_size": B, "epoch_seconds": epoch, "samples_per_second": P * R / epoch,
        "test_eval_seconds": eval_s, "matmul_seconds": mm, "ratio_epoch_to_matmul": epoch / mm,
        "gflop_per_epoch": gflop, "achieved_gflops": gflop / epoch, "matmul_gflops": gflop / mm,
        "sampled_eval_seconds": sampled, "sampled_draws": eval_draws, "peak_memory_mib": mem,
        "memory_what": mem_what,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--mode", default="gbp")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--replicas", default="1,8")
    p.add_argument("--eval-draws", type=int, default=10)
    p.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"),
                   help="folder with the MNIST IDX files (default: $MFPHYS_DATA_DIR, else docs/data.md's search)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    a = p.parse_args(argv)
    rows = []
    for R in (int(r) for r in a.replicas.split(",")):
        cfg = TrainConfig(epochs=a.epochs, replicas=R, backend=a.backend, dtype=a.dtype, mode=a.mode,
                          eval_samples=0)
        r = bench(cfg, a.data_dir, a.eval_draws)
        rows.append(r)
        print(f"[{r['backend']}] {r['mode']} {'-'.join(map(str, r['layers']))} R={R} B={r['batch_size']} "
              f"P={r['n_train']}")
        print(f"  epoch (training steps)   {r['epoch_seconds']:.4f} s   {r['samples_per_second']:,.0f} samples/s "
              f"(replica-samples)")
        print(f"  same matmuls alone       {r['matmul_seconds']:.4f} s   ratio {r['ratio_epoch_to_matmul']:.2f}x")
        print(f"  GFLOP per epoch          {r['gflop_per_epoch']:.2f}   achieved {r['achieved_gflops']:.1f} GFLOP/s, "
              f"matmul alone {r['matmul_gflops']:.1f} GFLOP/s")
        print(f"  test evaluation (eps=0)  {r['test_eval_seconds']:.4f} s")
        print(f"  sampled eval, {a.eval_draws} nets x 10,000 images x R={R}: {r['sampled_eval_seconds']:.3f} s")
        print(f"  peak memory              {r['peak_memory_mib']:.0f} {r['memory_what']}")
        sys.stdout.flush()
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
