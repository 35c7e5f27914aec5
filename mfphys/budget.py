"""Memory and disk a training run will need, estimated before anything is allocated.

A run that cannot fit should be refused in one line at the start, not grow for minutes and
be killed by the kernel, nor die in its sampled evaluation after all the training. The
estimate counts the arrays the training loop of :mod:`mfphys.train` really holds (with the
temporaries of one gBP step, of the test evaluation and of one block of sampled
sub-networks, whichever is largest) and the run file :mod:`mfphys.store` writes. It is meant
to be right within a factor of about 1.5 (``tests/test_budget.py`` compares it with traced
peaks); the check leaves that margin.

Symbols: R replicas, W = sum_l N_l N_{l-1} connections, U = sum_l N_l units, B batch size,
P / P_test training / test patterns, E epochs, K sampled sub-networks, C classes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

from .errors import MfphysError
from .fileio import mib

#: arrays of the shape of the weights, per replica: pi, m, Xi; Adam's two moments of each
#: trainable one; their gradients; the forward/backward temporaries (mean, variance of the
#: weights, their transposes, the updated parameters before projection)
WEIGHT_ARRAYS_GBP, WEIGHT_ARRAYS_BP = 3 + 6 + 3 + 6, 3 + 2 + 1 + 3
#: unit-shaped (R, B, N_l) arrays of one step: mu, var, h, the noise, the activation, its
#: derivative, a**2, delta and the backward temporaries
UNIT_ARRAYS = 14
#: the process itself: interpreter, NumPy, xarray, netCDF4 (measured: about 150 MB)
BASE = 160 << 20
#: what the check leaves free of the available memory
MARGIN = 0.9


class Estimate(NamedTuple):
    """Bytes by part (``memory``), their peak sum, and the run file's size (``disk``)."""

    memory: dict
    peak: int
    disk: int

    def describe(self) -> str:
        parts = ", ".join(f"{k} {mib(v)}" for k, v in self.memory.items() if v >= 1 << 20)
        return f"about {mib(self.peak)} ({parts})"


def train_estimate(config, *, n_train: int | None = None, n_test: int | None = None, n_classes: int | None = None,
                   full_train: int = 60000, full_test: int = 10000, dynamics_every: int | None = None) -> Estimate:
    """The memory and disk of :func:`mfphys.train.train` for ``config`` (a TrainConfig).

    ``n_train`` / ``n_test`` default to the config's (the test set to ``full_test`` when the
    config takes all); ``full_*`` are the sizes of the data set held in memory while loading.
    The run file (``disk``) holds the final parameters, Adam's moments (to continue the run),
    the history and the order parameters recorded every ``dynamics_every`` epochs (default
    :data:`mfphys.train.DYNAMICS_EVERY`) and at the snapshot epochs.
    """
    from .order import snapshot_epochs
    from .train import DRAW_BLOCK, DYNAMICS_EVERY  # DRAW_BLOCK: sampled sub-networks evaluated together

    dynamics_every = DYNAMICS_EVERY if dynamics_every is None else dynamics_every

    item = 4 if config.dtype == "float32" else 8
    layers = config.layers
    R, B, E, K = config.replicas, config.batch_size, config.epochs, config.eval_samples
    P = n_train if n_train is not None else config.n_train
    Pt = n_test if n_test is not None else (config.n_test or full_test)
    C = n_classes if n_classes is not None else layers[-1]
    W = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    U = sum(layers[1:])
    N0, Nmax = layers[0], max(layers[1:])
    bp = config.mode == "bp"

    weights = (WEIGHT_ARRAYS_BP if bp else WEIGHT_ARRAYS_GBP) * R * W * item
    # the data set as loaded (float32, shared read-only cache), the training/test inputs on the
    # compute backend, a**2 of the inputs (gBP), the per-epoch permutations
    data = (max(full_train, P) + max(full_test, Pt)) * N0 * 4 + (P * (1 if bp else 2) + Pt) * N0 * item \
        + R * P * 8
    step = R * B * (UNIT_ARRAYS * U + 2 * N0) * item
    chunk = min(Pt, 4096)
    evaluation = R * chunk * Nmax * 3 * item + R * Pt * C * 3 * item
    k = min(K, DRAW_BLOCK)
    # one block of draws: uniform and normal numbers (float64) per layer, the weights and their
    # scaled transposes, the hidden activations of a chunk of 2048 test patterns, the logits
    sampled = (R * k * W * (8 + 8 + 1 + 2 * item) + R * k * min(Pt, 2048) * Nmax * 3 * item
               + R * k * Pt * C * item + R * Pt * C * 4) if K else 0
    L = len(layers) - 1
    moments = 2 if bp else 6  # Adam's two moments of each trainable kind, stored for resuming
    # the order parameters recorded while training (16 per layer, docs/file-format.md "Dynamics")
    # and the histogram snapshots (3 x 40 bins and their edges)
    snaps = len(snapshot_epochs(E))
    samples = (E // dynamics_every if dynamics_every else 0) + snaps
    dynamics = samples * R * L * 16 * 8 + snaps * (R * L * 3 * 40 * 8 + 3 * 41 * 8)
    history = (R * 4 + 3) * E * 8 * 3 + dynamics  # the arrays, the records, the Dataset copy
    # the run's Dataset holds host copies of pi, m, Xi and of Adam's moments while it is written
    store = 2 * (3 + moments) * R * W * item
    memory = {"weights and optimizer state": weights, "data": data,
              "largest temporary (step, evaluation or sampled evaluation)": max(step, evaluation, sampled),
              "history": history, "writing the run file": store, "process": BASE}
    peak = sum(memory.values())
    # about 2 kB of netCDF/HDF5 metadata per stored array: some 60 per run, 3 + moments per layer
    arrays = 60 + L * (3 + moments)
    disk = (3 + moments) * R * W * item + (R * 4 + 3) * E * 8 + R * L * 3 * 45 * 8 + dynamics + N0 \
        + arrays * 2048 + (64 << 10)
    return Estimate(memory, int(peak), int(disk))


def available_memory() -> int | None:
    """Memory this process can still take on the host: ``MemAvailable`` (Linux), limited by a
    cgroup's limit where one is set; None where it cannot be told."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            try:
                used = int(Path(usage).read_text())
            except (OSError, ValueError):
                used = 0
            avail = min(avail, max(int(text) - used, 0))
        break
    return avail


def device_memory(backend) -> int | None:
    """Free memory of the GPU a CuPy backend computes on (None for NumPy)."""
    if getattr(backend, "name", "numpy") != "cupy":
        return None
    free, _ = backend.xp.cuda.runtime.memGetInfo()
    pool = backend.xp.get_default_memory_pool()
    return int(free + pool.free_bytes())


def check_memory(estimate: Estimate, *, available: int | None = None, what: str = "this run",
                 hint: str = "use fewer --replicas, narrower --layers, a smaller --batch-size or --n-train") -> None:
    """Refuse, in one line, a job whose estimate does not fit in the memory available now
    (``hint``: what to change, in the words of the command that asked)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    if estimate.peak > MARGIN * available:
        raise MfphysError(f"not enough memory: {what} needs {estimate.describe()}, but {mib(available)} is available; "
                          f"{hint} (mfphys train --dry-run shows the estimate)")


def check_count(name: str, n: float, limit: int) -> None:
    """Refuse a count (epochs, fractions, draws, ...) far beyond anything that could run."""
    if not math.isfinite(n) or n > limit:
        raise MfphysError(f"{name} {n:g} is more than mfphys can hold ({limit:,} at most)")


def step_seconds(config, *, steps: int = 4) -> float:
    """Seconds of one gBP (or BP) training step of ``config``, measured: a short calibration on
    random inputs of the run's shapes (one warm-up step, then the median of ``steps``)."""
    import statistics
    import time

    import numpy as np

    from . import model, optim
    from .backend import get_backend

    be = get_backend(config.backend, config.dtype)
    xp, dt = be.xp, be.dtype
    R, B, bp = config.replicas, config.batch_size, config.mode == "bp"
    rng = np.random.default_rng(0)
    params = tuple(model.Layer(*(be.asarray(v) for v in layer)) for layer in model.init_params(
        config.layers, [np.random.default_rng(r) for r in range(R)], m_std=config.init_m_std,
        xi_scale=config.init_xi, bp=bp, dtype=dt))
    state = optim.adam_init(params, trainable=("m",) if bp else optim.PARAM_NAMES)
    x = be.asarray(rng.random((R, B, config.layers[0]), dtype=np.float32))
    y = xp.asarray(rng.integers(0, config.layers[-1], (R, B)))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        eps = None if bp else [xp.asarray(rng.standard_normal((R, B, n), dtype=dt)) for n in config.layers[1:]]
        _, grads, _ = model.loss_and_grad(params, x, y, eps, activation=config.activation, bp=bp,
                                          x2=None if bp else x * x)
        params, state = optim.adam_update(grads, state, params, lr=config.lr)
        be.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_seconds(config, step: float) -> float:
    """Estimated seconds of a whole run from the time of one step: the steps of every epoch, plus
    about 15 % for the per-epoch test evaluation and the sampled evaluation (measured on MNIST)."""
    return 1.15 * config.epochs * math.ceil(config.n_train / config.batch_size) * step


# --- the recurrent model (mfphys.rnn) ---------------------------------------------------------------

#: (R, B, n)-shaped arrays per step kept for backprop through time (states, field means and
#: variances, noise, derivatives; docs/model-rnn.md section 4): measured with tracemalloc, a
#: training step of row_mnist and pixel_mnist peaks at 5-6 N floats per replica, pattern and step
RNN_TRACE_ARRAYS = 6
#: (R, P, n)-shaped arrays per step of the noise-free evaluation (measured: 2-2.3 N floats)
RNN_EVAL_ARRAYS = 3
#: arrays of the shape of the weights per replica, as in the feed-forward gBP step (WEIGHT_ARRAYS_GBP)
RNN_WEIGHT_ARRAYS_GBP, RNN_WEIGHT_ARRAYS_BP = WEIGHT_ARRAYS_GBP, WEIGHT_ARRAYS_BP
#: test patterns per chunk of the evaluation (mfphys.rnn.evaluate.outputs)
RNN_EVAL_CHUNK = 1000


def rnn_estimate(config, *, full_train: int = 60000, full_test: int = 10000, state: bool = True) -> Estimate:
    """The memory and disk of a recurrent run (:func:`mfphys.rnn.train_rnn`, or the same steps into
    a live run file) for ``config`` (an RnnConfig), MNIST or the multisensory task.

    Counted like :func:`train_estimate`, with the step axis: W = N N_in + N^2 + N_out N connections
    per replica; the training step keeps ``RNN_TRACE_ARRAYS`` (R, B, N) arrays per step for backprop
    through time, and the noise of the step; the evaluation runs chunks of ``RNN_EVAL_CHUNK`` test
    sequences, K sampled networks at once (their states and their weights, drawn in float64).
    MNIST holds the images (the loaded set and its sequences on the backend); the multisensory
    task generates its trials (``config.batch_size`` a step, ``test_repeats`` per condition to
    evaluate). The run file holds pi, m, Xi of the three matrices, the optimiser's moments (to
    continue it; not with ``state=False``: a scan's cell file), the per-epoch history, the
    order parameters per matrix and their dynamics, and the histograms.
    """
    from .rnn.tasks import Multisensory

    item = 4 if config.dtype == "float32" else 8
    n_in, n_out = config.io
    N, R, B, E, K = config.n, config.replicas, config.batch_size, config.epochs, config.eval_samples
    if config.task == "mnist":
        T = T_test = config.steps
        P = config.n_train if config.n_train is not None else full_train
        Pt = config.n_test or full_test
        # the data set as loaded (float32, shared cache), the training and test images on the
        # backend, the per-epoch permutations
        data = (max(full_train, P) + max(full_test, Pt)) * 784 * 4 + (P + Pt) * 784 * item + R * P * 8
    else:
        task = Multisensory()
        T = int(round(task.trial_train / task.dt))
        T_test = int(round((task.fixation_test + task.stimulus + task.decision) / task.dt))
        Pt = config.test_repeats * (len(task.modalities) * len(task.freqs) + task.n_catch)
        # a mini-batch of trials per step (inputs, targets, mask), the replica's test trials
        data = R * B * T * (n_in + 2 * n_out) * item + R * Pt * T_test * n_in * item
    W = N * n_in + N * N + n_out * N
    bp = config.mode == "bp"
    weights = (RNN_WEIGHT_ARRAYS_BP if bp else RNN_WEIGHT_ARRAYS_GBP) * R * W * item
    step = R * B * T * (RNN_TRACE_ARRAYS * N + 2 * n_in) * item
    chunk = min(Pt, RNN_EVAL_CHUNK)
    mean_eval = R * chunk * T_test * RNN_EVAL_ARRAYS * N * item + R * Pt * n_out * 3 * item
    # K sampled networks: their weights (drawn in float64) and, per pattern, their states and a
    # few numbers per step (measured: 414 floats per network and pattern for row_mnist, 5875 for
    # pixel_mnist, against 4 N + 8 T = 624 and 6672 here)
    sampled = (R * K * W * (8 + 8 + 1 + 2 * item) + R * K * chunk * (4 * N + 8 * T_test) * item
               + R * K * Pt * n_out * item) if K else 0
    history = (R * 2 + 1) * E * 8 * 3
    store = 2 * 5 * R * W * item
    memory = {"weights and optimizer state": weights, "data": data,
              "largest temporary (BPTT step, evaluation or sampled evaluation)": max(step, mean_eval, sampled),
              "history": history, "writing the run file": store, "process": BASE}
    # pi, m, Xi and up to two optimiser moments of each; the curves; the order parameters and
    # their dynamics (every 5 epochs and a few more, both diagonal variants); the histograms;
    # about 1 kB of netCDF/HDF5 metadata per stored array (some 100 in a live recurrent run:
    # measured 632 kB for 518 kB of arrays in a finished row_mnist run)
    samples = E // 5 + 8
    disk = ((9 if state else 3) * R * W * item + (R * 2 + 1) * E * 8 + R * 3 * 3 * 45 * 8 * (1 + samples // 10)
            + 2 * R * 3 * 12 * samples * 8 + 100 * 1024 + (32 << 10))
    return Estimate(memory, int(sum(memory.values())), int(disk))


class RnnTimes(NamedTuple):
    """Measured seconds of a recurrent configuration: one training step (a mini-batch) and the
    final evaluation of one chunk of ``chunk`` test sequences in every mode."""

    step: float
    eval_chunk: float
    chunk: int


def rnn_step_seconds(config, *, steps: int = 3) -> RnnTimes:
    """A short calibration of an MNIST ``config`` (an RnnConfig) on random sequences of its shapes:
    the median of ``steps`` training steps after a warm-up, and one evaluation of a chunk of test
    sequences in every mode (:func:`mfphys.rnn.evaluate.outputs`, K sampled networks), on
    ``config.blas_threads`` BLAS threads as :func:`mfphys.rnn.train_rnn` runs."""
    import contextlib

    limits = contextlib.nullcontext()
    if config.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(config.blas_threads)
    with limits:
        return _rnn_calibrate(config, steps)


def _rnn_calibrate(config, steps: int) -> RnnTimes:
    import statistics
    import time

    import numpy as np

    from .backend import INIT, get_backend, replica_rngs
    from .model import Layer
    from .rnn import evaluate, noise
    from .rnn.model import RnnParams, init_params, loss_and_grad
    from .rnn.optim import opt_init, opt_update, tensor_settings

    be = get_backend(config.backend, config.dtype)
    xp, dt = be.xp, be.dtype
    spec, R, B, T, bp = config.spec(), config.replicas, config.batch_size, config.steps, config.mode == "bp"
    n_in, n_out = config.io
    host = init_params(spec, config.init, replica_rngs(config.seed, R, INIT), bp=bp, dtype=dt)
    params = RnnParams(*(Layer(*(be.asarray(v) for v in layer)) for layer in host))
    opt = config.optimizer
    settings = tensor_settings(opt, spec)
    state = opt_init(params, opt, spec.trainable(bp=bp))
    rng = np.random.default_rng(0)
    x = be.asarray(rng.random((R, B, T, n_in), dtype=np.float32))
    y = xp.asarray(rng.integers(0, n_out, (R, B)))
    nrngs = [np.random.default_rng(r) for r in range(R)]
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        nz = noise.draw(nrngs, spec, T, B, bp=bp, xp=xp, dtype=dt)
        _, grads, _ = loss_and_grad(params, x, y, nz, spec, bp=bp)
        params, state = opt_update(grads, state, params, cfg=opt, settings=settings,
                                   lr_scale={"pi": 1.0, "m": 1.0, "xi": 1.0})
        be.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    chunk = min(config.n_test or 10000, RNN_EVAL_CHUNK)
    xt = be.asarray(rng.random((chunk, T, n_in), dtype=np.float32))
    t0 = time.perf_counter()
    for mode in evaluate.EVAL_MODES:
        if mode in ("quenched", "annealed") and config.eval_samples == 0:
            continue
        evaluate.outputs(params, xt, spec, mode=mode, rngs=[np.random.default_rng(r) for r in range(R)],
                         samples=config.eval_samples, bp=bp)
    be.synchronize()
    return RnnTimes(statistics.median(times), time.perf_counter() - t0, chunk)


def rnn_train_seconds(config, times: RnnTimes, *, full_test: int = 10000) -> float:
    """Estimated seconds of a recurrent MNIST run: ``epochs x batches_per_epoch`` training steps, plus
    about 10 % for the per-epoch noise-free test (a forward pass over the test set), plus the
    final evaluation (:class:`RnnTimes`' chunk time times the number of chunks of the test set)."""
    Pt = config.n_test or full_test
    per = config.batches_per_epoch or (config.n_train or 60000) // config.batch_size
    train = config.epochs * per * times.step
    test = config.epochs * Pt / config.batch_size * times.step / 3  # a forward pass: about a third of a step
    return 1.05 * train + test + math.ceil(Pt / times.chunk) * times.eval_chunk
