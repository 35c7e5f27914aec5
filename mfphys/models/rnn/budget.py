"""Memory, disk and time of a recurrent run, before anything is allocated (:mod:`mfphys.budget`)."""

from __future__ import annotations

import math
from typing import NamedTuple

from ...budget import BASE, WEIGHT_ARRAYS_BP, WEIGHT_ARRAYS_GBP, Estimate, check_memory

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
    from .tasks import Multisensory

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


def rnn_packed_estimate(configs) -> Estimate:
    """The memory and disk of ``configs`` (one pack key) trained as one run
    (:func:`mfphys.rnn.train.prepare_packed`): :func:`rnn_estimate` of their replicas side by
    side, and with the stop rule the host copies of the states of configurations that stop
    before the others (parameters and optimiser moments of all their replicas at most)."""
    from .train import packed_config

    config = packed_config(configs)
    est = rnn_estimate(config)
    if config.stop_loss is None:
        return est
    n_in, n_out = config.io
    W = config.n * n_in + config.n * config.n + n_out * config.n
    kept = 9 * config.replicas * W * (4 if config.dtype == "float32" else 8)
    memory = {**est.memory, "states of stopped configurations": kept}
    return Estimate(memory, int(sum(memory.values())), est.disk)


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

    # the calibration allocates the run's parameters: a run that cannot fit is refused first
    check_memory(rnn_estimate(config))
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

    from ...backend import INIT, get_backend, replica_rngs
    from ...layers import Layer
    from . import evaluate, noise
    from .model import RnnParams, init_params, loss_and_grad
    from .optim import opt_init, opt_update, tensor_settings

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
    # the noise of the path that runs: drawn on the device unless host_noise (mfphys.rnn.train)
    nrngs = [np.random.default_rng(r) for r in range(R)]
    if be.name != "numpy" and not config.host_noise:
        nrngs = noise.device_rngs(nrngs, be)
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
                         samples=config.eval_samples, bp=bp, device_draws=not config.host_noise)
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
