"""Memory, disk and time of a feed-forward run, before anything is allocated (:mod:`mfphys.budget`).

The estimate counts the arrays the training loop of :mod:`mfphys.models.ffn.train` really holds
(with the temporaries of one gBP step, of the test evaluation and of one block of sampled
sub-networks, whichever is largest) and the run file :mod:`mfphys.models.ffn.store` writes.

Symbols: R replicas, W = sum_l N_l N_{l-1} connections, U = sum_l N_l units, B batch size,
P / P_test training / test patterns, E epochs, K sampled sub-networks, C classes.
"""

from __future__ import annotations

import math

from ...budget import BASE, WEIGHT_ARRAYS_BP, WEIGHT_ARRAYS_GBP, Estimate, check_memory

#: unit-shaped (R, B, N_l) arrays of one step: mu, var, h, the noise, the activation, its
#: derivative, a**2, delta and the backward temporaries
UNIT_ARRAYS = 14

def train_estimate(config, *, n_train: int | None = None, n_test: int | None = None, n_classes: int | None = None,
                   full_train: int = 60000, full_test: int = 10000, dynamics_every: int | None = None) -> Estimate:
    """The memory and disk of :func:`mfphys.train.train` for ``config`` (a TrainConfig).

    ``n_train`` / ``n_test`` default to the config's (the test set to ``full_test`` when the
    config takes all); ``full_*`` are the sizes of the data set held in memory while loading.
    The run file (``disk``) holds the final parameters, Adam's moments (to continue the run),
    the history and the order parameters recorded every ``dynamics_every`` epochs (default
    :data:`mfphys.train.DYNAMICS_EVERY`) and at the snapshot epochs.
    """
    from ...order import snapshot_epochs
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
    # compute backend, the per-epoch permutations (a**2 of a mini-batch's inputs is in ``step``)
    data = (max(full_train, P) + max(full_test, Pt)) * N0 * 4 + (P + Pt) * N0 * item + R * P * 8
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
    # the sampled evaluation's accuracies (R, K): the array, the result's copy and the Dataset's
    accuracies = 3 * R * K * 8
    memory = {"weights and optimizer state": weights, "data": data,
              "largest temporary (step, evaluation or sampled evaluation)": max(step, evaluation, sampled),
              "history": history, "sampled accuracies": accuracies, "writing the run file": store, "process": BASE}
    peak = sum(memory.values())
    # about 2 kB of netCDF/HDF5 metadata per stored array: some 60 per run, 3 + moments per layer
    arrays = 60 + L * (3 + moments)
    disk = (3 + moments) * R * W * item + (R * 4 + 3) * E * 8 + R * L * 3 * 45 * 8 + dynamics + N0 + R * K * 8 \
        + arrays * 2048 + (64 << 10)
    return Estimate(memory, int(peak), int(disk))


def step_seconds(config, *, steps: int = 4) -> float:
    """Seconds of one gBP (or BP) training step of ``config``, measured: a short calibration on
    random inputs of the run's shapes (one warm-up step, then the median of ``steps``)."""
    import statistics
    import time

    import numpy as np

    from ...backend import get_backend
    from . import model, optim

    # the calibration allocates the run's parameters: a run that cannot fit is refused first
    check_memory(train_estimate(config))
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
    # the noise of the path that runs: drawn on the device unless host_noise (mfphys.train)
    device_rng = be.device_rng(0) if be.name != "numpy" and not config.host_noise else None
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        if bp:
            eps = None
        elif device_rng is not None:
            eps = [device_rng.standard_normal((R, B, n), dtype=dt) for n in config.layers[1:]]
        else:
            eps = [xp.asarray(rng.standard_normal((R, B, n), dtype=dt)) for n in config.layers[1:]]
        _, grads, _ = model.loss_and_grad(params, x, y, eps, activation=config.activation, bp=bp,
                                          x2=None if bp else x * x)
        params, state = optim.adam_update(grads, state, params, lr=config.lr)
        be.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: the cost of a forward pass over ``batch_size`` test patterns, in training steps (a step is a
#: forward pass, the backward pass and Adam); measured on MNIST (bench/README.md "Estimates")
FORWARD_SHARE = 1 / 6


def train_seconds(config, step: float) -> float:
    """Estimated seconds of a whole run from the time of one step: the steps of every epoch, the
    noise-free test evaluation after each epoch and the sampled evaluation of ``eval_samples``
    networks at the end, each a forward pass over the test set (:data:`FORWARD_SHARE` of a step
    per ``batch_size`` test patterns). A small training set with a large test set spends most of
    its time in the evaluations, so they are counted by the test set's size, not as a share."""
    steps = math.ceil(config.n_train / config.batch_size)
    n_test = config.n_test if config.n_test is not None else 10_000
    forward = FORWARD_SHARE * n_test / config.batch_size
    return step * (config.epochs * (steps + forward) + config.eval_samples * forward)
