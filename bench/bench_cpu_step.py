"""Where a CPU epoch goes, with and without the compiled kernels, and against the authors' epoch.

For the default feed-forward set-up (784-100-100-10, first 10,000 MNIST images, batch 500,
gBP, R = 1) this times, interleaved in one process so that the load of the machine hits all
of them alike:

- a real epoch (``train_epoch``: the 20 mini-batch steps *and* the noise-free test
  evaluation) on the NumPy path and on the compiled path (:mod:`mfphys.cpu_kernels`,
  Numba), float32 and float64;
- the same matrix products alone (the steps' 16 products per mini-batch and the test
  evaluation's, same shapes and transposed layouts);
- optionally the authors' published epoch (``--authors DIR``: the ``Training for MNIST``
  folder of https://github.com/Chan-Li/SAS-model, NumPy, float64): their ``adam_update``
  over the same 10,000 images and their ``evaluate`` on the 10,000 test images;

each as wall-clock time and as the CPU time of the process (with ``--blas-threads 1`` the
latter is the work itself, robust against other jobs on a shared machine), and splits one
step into its pieces (CPU time): the noise draws, the mini-batch gathers, the products,
the element-wise work (moments, noise and ReLU, deltas, chain rule) and Adam, each on the
NumPy path and compiled.

    python bench/bench_cpu_step.py [--rounds 5] [--block 1] [--authors DIR] [--blas-threads 1] [--json out.json]

``--block K`` runs K epochs of each program in a row per round and times all but the first of
each block: each program in the steady state a run is in (its arrays and the allocator's free
lists warm), the programs still alternating so that the load hits them alike. With the default
``--block 1`` every epoch follows another program's.

Prints medians over the rounds; nothing here is a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import time
import types

import numpy as np

from mfphys import cpu_kernels, kernels
from mfphys.backend import get_backend
from mfphys.models.ffn import model, optim
from mfphys.train import TrainConfig, init_state, load_data, prepare, train_epoch

sys.path.insert(0, os.path.dirname(__file__))
from bench_train import step_matmul_shapes


def matmul_ops(be, layers, B, P_test, R=1):
    """One epoch's products: the steps' (per mini-batch) and the test evaluation's."""
    rng = np.random.default_rng(0)

    def pair(m, k, n):
        return (be.asarray(rng.standard_normal((R, m, k))), be.asarray(rng.standard_normal((R, n, k))).swapaxes(-1, -2))

    step = [pair(m, k, n) for (m, k), (_, n) in step_matmul_shapes(layers, B, False)]
    ev = [(be.asarray(rng.standard_normal((min(P_test, 4096), n))),
           be.asarray(rng.standard_normal((R, N, n))).swapaxes(-1, -2)) for n, N in zip(layers[:-1], layers[1:])]
    return step, ev


def time_matmuls(step, ev, n_batches, P_test):
    t0 = time.perf_counter()
    for _ in range(n_batches):
        for a, b in step:
            a @ b
    t1 = time.perf_counter()
    for _ in range(math.ceil(P_test / 4096)):
        for a, b in ev:
            a @ b
    return t1 - t0, time.perf_counter() - t1


def authors_runner(folder, ds):
    """The authors' network and their epoch (adam_update + evaluate) on our copy of the data.

    Their script loads MNIST through its own ``load`` module at import; we hand it the same
    images (float32 in [0, 1], one-hot labels, as their loader makes them) and replace the one
    line that wraps the loaded tuples in a NumPy object array (NumPy 2 refuses ragged arrays).
    """
    src_path = os.path.join(folder, "DNN-SAS-MNIST.py")
    with open(src_path) as fh:
        src = fh.read()
    src = src.replace('mnist=np.array(load.load_mnist(one_hot=True),dtype = "object")',
                      "mnist=load.load_mnist(one_hot=True)")
    onehot = np.eye(10)
    fake = types.ModuleType("load")
    fake.load_mnist = lambda one_hot=True: ((ds.x_train.astype(np.float32), onehot[ds.y_train]),
                                            (ds.x_test.astype(np.float32), onehot[ds.y_test]))
    sys.modules["load"] = fake
    sys.path.insert(0, folder)
    ns = {"__name__": "authors"}
    exec(compile(src, src_path, "exec"), ns)
    np.random.seed(0)  # noqa: NPY002 (their code draws from NumPy's global stream)
    net = ns["NeuralNetwork"]([784, 100, 100, 10])
    f = ns["relu"], ns["drelu"]

    def epoch():
        with contextlib.redirect_stdout(io.StringIO()):  # they print a progress line per mini-batch
            net.adam_update(0.1, 500, f[0], f[1], ns["train_data"], ns["train_label"])
            net.evaluate(ns["test_data"], ns["test_label"], f[0])

    return epoch


def piece_times(setup, state, compiled: bool, n_batches: int):
    """Seconds per epoch of each piece of the step, on the NumPy path or compiled."""
    config, be = setup.config, setup.be
    dt = be.dtype
    B, widths = config.batch_size, config.layers[1:]
    splits = np.cumsum(widths)[:-1].tolist()
    g = np.random.default_rng(1)
    perm = g.permutation(setup.x_train.shape[0])[None]
    params = tuple(model.Layer(*(v.copy() for v in layer)) for layer in state.params)
    adam = optim.adam_init(params)
    out = {}
    with cpu_kernels.enabled(compiled):
        t0 = time.process_time()
        for _ in range(n_batches):
            e = np.split(g.standard_normal((B, sum(widths)), dtype=dt)[None], splits, axis=-1)
        out["noise draws"] = time.process_time() - t0
        t0 = time.process_time()
        for i in range(n_batches):
            idx = perm[:, i * B:(i + 1) * B]
            xb = setup.x_train[idx]
            x2b = xb * xb
            setup.y_train[idx]
        out["gathers"] = time.process_time() - t0
        # element-wise: the forward and backward passes with the products taken out (done
        # once, outside the timing)
        _, caches = model.forward(params, xb, e, x2=x2b)
        Gs = [c.a @ model._t(c.mu_hat) for c in caches]
        Ds = [c.a2 @ model._t(c.var_hat) for c in caches]
        delta = caches[-1].h * 0.01
        t0 = time.process_time()
        for _ in range(n_batches):
            for l, layer in enumerate(params):
                model.scaled_moments(layer)
                if l < len(params) - 1:
                    kernels.noisy_relu(Gs[l], Ds[l], e[l])
                else:
                    kernels.noisy_preactivation(Gs[l], Ds[l], e[l])
            for l in range(len(params) - 1, -1, -1):
                c = caches[l]
                d = delta if l == len(params) - 1 else Gs[l]
                kernels.scaled_deltas(d, c.w, 0.1, 0.01)
                kernels.chain_rule(*params[l], params[l].m * 0.5, params[l].m * 0.25)
                if l > 0:
                    kernels.relu_delta(Gs[l - 1].copy(), Ds[l - 1], c.a, caches[l - 1].h)
        out["element-wise (moments, noise+ReLU, deltas, chain rule)"] = time.process_time() - t0
        grads = [model.Layer(*(v * 1e-3 for v in layer)) for layer in params]
        t0 = time.process_time()
        for _ in range(n_batches):
            gs = [model.Layer(*(v.copy() for v in layer)) for layer in grads]
            params, adam = optim.adam_update(gs, adam, params, lr=0.1, cfg=setup.adam_cfg)
        out["Adam + projection (incl. gradient copies)"] = time.process_time() - t0
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=1,
                   help="epochs of each program in a row per round, the first of each block not timed "
                        "(default 1: one epoch each, every one timed)")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--authors", default=None, help="the 'Training for MNIST' folder of the authors' repository")
    p.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"))
    p.add_argument("--blas-threads", type=int, default=None,
                   help="limit BLAS to this many threads (threadpoolctl); default: BLAS's own choice")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.blas_threads, user_api="blas")
    if not cpu_kernels.available():
        print("Numba is not installed (or MFPHYS_NUMBA=0): only the NumPy path is timed")
    print(f"load average before: {os.getloadavg()}")
    res = {"load_before": os.getloadavg(), "numba": cpu_kernels.available(), "blas_threads": a.blas_threads,
           "block": a.block}
    cfg0 = TrainConfig(epochs=1000, eval_samples=0)
    ds = load_data(cfg0, a.data_dir)
    runs = {}
    for dtype in a.dtypes.split(","):
        for compiled in (False, True):
            setup = prepare(TrainConfig(epochs=1000, eval_samples=0, dtype=dtype), dataset=ds, dynamics_every=0)
            runs[(dtype, compiled)] = [setup, init_state(setup)]
    P, B, P_test = ds.x_train.shape[0], cfg0.batch_size, ds.x_test.shape[0]
    n_batches = math.ceil(P / B)
    ops = {dt: matmul_ops(get_backend("numpy", dt), cfg0.layers, B, P_test) for dt in a.dtypes.split(",")}
    authors = authors_runner(a.authors, ds) if a.authors else None
    times, cpu = {}, {}

    def rec(key, v, c=None):
        times.setdefault(key, []).append(v)
        if c is not None:
            cpu.setdefault(key, []).append(c)

    timed = range(1, a.block) if a.block > 1 else range(1)  # in a block, the epochs after its first
    for rnd in range(a.rounds + 1):  # round 0 warms up (and compiles)
        for (dtype, compiled), st in runs.items():
            for i in range(max(1, a.block)):
                with cpu_kernels.enabled(compiled), np.errstate(all="ignore"):
                    t0, c0 = time.perf_counter(), time.process_time()
                    st[1], _ = train_epoch(st[0], st[1])
                    t, c = time.perf_counter() - t0, time.process_time() - c0
                if rnd and i in timed:
                    rec(f"epoch {dtype} {'compiled' if compiled else 'numpy'}", t, c)
        for dtype, (step, ev) in ops.items():
            c0 = time.process_time()
            ts, te = time_matmuls(step, ev, n_batches, P_test)
            c = time.process_time() - c0
            if rnd:
                rec(f"products {dtype} steps", ts)
                rec(f"products {dtype} evaluation", te)
                rec(f"products {dtype} all", ts + te, c)
        if authors is not None:
            for i in range(max(1, a.block)):
                t0, c0 = time.perf_counter(), time.process_time()
                authors()
                if rnd and i in timed:
                    rec("authors epoch (float64)", time.perf_counter() - t0, time.process_time() - c0)
    for what, table in (("wall-clock", times), ("CPU time of this process", cpu)):
        med = {k: float(np.median(v)) for k, v in table.items()}
        res["epoch" if table is times else "epoch_cpu"] = med
        print(f"\n{what}: medians over {a.rounds} interleaved rounds of {max(1, a.block)} epoch(s) each "
              "(seconds per epoch, R = 1, "
              f"evaluation included):")
        for k, v in med.items():
            print(f"  {k:40s} {v:.4f}")
        for dtype in a.dtypes.split(","):
            prod = med[f"products {dtype} all"]
            for c in ("numpy", "compiled"):
                e = med[f"epoch {dtype} {c}"]
                line = f"  {dtype} {c:8s}: epoch / its products {e / prod:.2f}x"
                if authors is not None:
                    line += f", authors' epoch / this epoch {med['authors epoch (float64)'] / e:.2f}x"
                print(line)
    res["pieces"] = {}
    print("\none epoch's pieces (20 steps), seconds, NumPy path vs compiled:")
    for dtype in a.dtypes.split(","):
        setup, state = runs[(dtype, False)]
        pieces = {c: piece_times(setup, state, c, n_batches) for c in (False, True)}
        again = {c: piece_times(setup, state, c, n_batches) for c in (False, True)}
        for c in (False, True):  # the faster of two interleaved tries
            pieces[c] = {k: min(v, again[c][k]) for k, v in pieces[c].items()}
        res["pieces"][dtype] = {"numpy": pieces[False], "compiled": pieces[True]}
        print(f"  [{dtype}]")
        for k in pieces[False]:
            print(f"    {k:58s} {pieces[False][k]:.4f}  {pieces[True][k]:.4f}")
    res["load_after"] = os.getloadavg()
    print(f"\nload average after: {res['load_after']}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
