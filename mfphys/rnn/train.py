"""Training loop of the recurrent model: R replicas trained together, evaluated in every mode.

``train_rnn(config)`` loads or generates the task's data, trains (BPTT through the mean-field
dynamics, or the BPTT baseline with ``mode="bp"``), records a per-epoch history and evaluates
the result (docs/model-rnn.md sections 5-8). It returns an :class:`RnnResult` of host (NumPy)
arrays; storage and front ends are someone else's business.

Random streams per replica (``backend.replica_rngs``): ``INIT`` the initial parameters, ``ORDER``
the mini-batch order (MNIST) or the training trials' input noise (multisensory), ``NOISE`` the
mean-field and private noise of training, ``EVAL`` everything random in the final evaluation.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from ..backend import EVAL, INIT, NOISE, ORDER, get_backend, replica_rngs
from ..errors import DivergenceError, MfphysError
from ..model import Layer, vote_counts
from . import evaluate, noise, tasks
from .config import RnnConfig
from .model import RnnParams, init_params, loss_and_grad
from .optim import opt_init, opt_update, tensor_settings


class RnnEpoch(NamedTuple):
    """One epoch's numbers, each (R,) except ``epoch`` and ``seconds``."""

    epoch: int
    train_loss: np.ndarray  # NaN for replicas that have stopped
    test_acc: np.ndarray  # noise-free mean-field test accuracy (MNIST; NaN for the multisensory task)
    active: np.ndarray  # bool: the replica trained in this epoch
    seconds: float


@dataclass
class RnnResult:
    """A finished recurrent run, all arrays on the host.

    ``history``: ``train_loss`` and ``test_acc`` (R, E), ``epoch_seconds`` (E,).
    ``evaluation``: named arrays (docs/model-rnn.md section 5). MNIST: ``acc_<mode>`` for the four
    modes of :mod:`mfphys.rnn.evaluate` ((R,), or (R, K) for the sampled ones) and
    ``acc_quenched_vote`` (R,). Multisensory: ``p_high_<mode>`` (R, [K,] 3, 8), P(choose high)
    per modality and event rate, and ``psychometric_acc_<mode>`` (R, [K,] 3).
    ``stop_epoch`` (R,): the last epoch each replica trained.
    """

    config: RnnConfig
    params: RnnParams
    history: dict
    evaluation: dict
    stop_epoch: np.ndarray
    data: dict
    backend: str
    timings: dict = field(default_factory=dict)


def train_rnn(config: RnnConfig, *, data_dir=None, dataset=None,
              callback: Callable[[RnnEpoch], None] | None = None) -> RnnResult:
    """Train ``config.replicas`` replicas together and evaluate them (see the module docstring).

    ``dataset`` may pass a loaded MNIST :class:`mfphys.data.Dataset`; ``callback`` gets an
    :class:`RnnEpoch` after every epoch. BLAS runs on ``config.blas_threads`` threads: the
    per-step products are small, and one thread is the fastest on a busy CPU.
    """
    config.validate()
    limits = contextlib.nullcontext()
    if config.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(config.blas_threads)
    # a diverging run overflows before its loss turns NaN: DivergenceError reports it
    with limits, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train(config, data_dir, dataset, callback)


def _train(config: RnnConfig, data_dir, dataset, callback) -> RnnResult:
    be = get_backend(config.backend, config.dtype)
    xp, dt = be.xp, be.dtype
    t_start = time.perf_counter()
    spec, R, bp = config.spec(), config.replicas, config.mode == "bp"
    mask = tasks.input_mask(config)
    host = init_params(spec, config.init, replica_rngs(config.seed, R, INIT), bp=bp, dtype=dt, input_mask=mask)
    params = RnnParams(*(Layer(*(be.asarray(v) for v in layer)) for layer in host))
    mask_dev = None if mask is None else xp.asarray(mask)
    opt = config.optimizer
    settings = tensor_settings(opt, spec)
    state = opt_init(params, opt, spec.trainable(bp=bp))
    order_rngs = replica_rngs(config.seed, R, ORDER)
    noise_rngs = replica_rngs(config.seed, R, NOISE)
    if not config.host_noise:
        noise_rngs = noise.device_rngs(noise_rngs, be)

    if config.task == "mnist":
        data, batches, test = _mnist(config, be, data_dir, dataset)
    else:
        data, batches, test = _multisensory(config, be)

    E = config.epochs
    hist = {"train_loss": np.full((R, E), np.nan), "test_acc": np.full((R, E), np.nan)}
    secs = np.zeros(E)
    active = np.ones(R, bool)
    stop_epoch = np.full(R, E)
    epoch = 0
    for epoch in range(1, E + 1):
        t0 = time.perf_counter()
        lr_scale = {k: opt.lr_factor(epoch, k) for k in ("pi", "m", "xi")}
        frozen = None
        if not active.all():  # stopped replicas keep their parameters (docs/model-rnn.md section 7)
            idx = xp.asarray(np.flatnonzero(~active))
            frozen = [(a, idx, a[idx].copy()) for layer in params for a in layer]
        loss_sum, n = xp.zeros(R, dtype=dt), 0
        for xb, target, loss_mask in batches(order_rngs):
            T, B = xb.shape[-2], xb.shape[-3]
            nz = noise.draw(noise_rngs, spec, T, B, bp=bp, xp=xp, dtype=dt)
            loss, grads, _ = loss_and_grad(params, xb, target, nz, spec, mask=loss_mask, bp=bp)
            params, state = opt_update(grads, state, params, cfg=opt, settings=settings, lr_scale=lr_scale,
                                       input_mask=mask_dev)
            loss_sum += loss
            n += 1
        if frozen is not None:
            for a, idx, saved in frozen:
                a[idx] = saved
        e = epoch - 1
        loss_host = be.to_numpy(loss_sum) / n
        if not np.all(np.isfinite(loss_host[active])):
            bad = int(np.flatnonzero(~np.isfinite(loss_host) & active)[0])
            raise DivergenceError(f"training diverged at epoch {epoch} (replica {bad}, loss is not finite): "
                                  "try smaller learning rates")
        hist["train_loss"][active, e] = loss_host[active]
        if test is not None:
            hist["test_acc"][:, e] = test(params)
        secs[e] = time.perf_counter() - t0
        was_active = active.copy()
        if config.stop_loss is not None and epoch >= config.stop_min_epoch:
            done = active & (loss_host <= config.stop_loss)
            stop_epoch[done] = epoch
            active &= ~done
        if callback is not None:
            callback(RnnEpoch(epoch, hist["train_loss"][:, e], hist["test_acc"][:, e], was_active, secs[e]))
        if not active.any():
            break
    hist = {k: v[:, :epoch] for k, v in hist.items()}
    hist["epoch_seconds"] = secs[:epoch]
    t_train = time.perf_counter() - t_start

    host = RnnParams(*(Layer(*(be.to_numpy(v) for v in layer)) for layer in params))
    if not all(np.all(np.isfinite(v)) for layer in host for v in layer):
        raise DivergenceError("training diverged: parameters are not finite at the end; try smaller learning rates")
    t0 = time.perf_counter()
    evaluation = (_evaluate_mnist if config.task == "mnist" else _evaluate_multisensory)(config, params, data, be)
    timings = {"train_seconds": t_train, "eval_seconds": time.perf_counter() - t0}
    return RnnResult(config, host, hist, evaluation, stop_epoch, data["summary"], be.describe(), timings)


# --- tasks: data, batches, per-epoch test, final evaluation ------------------------------------------------


def _mnist(config: RnnConfig, be, data_dir, dataset):
    from ..data import dataset_summary, load_dataset

    xp = be.xp
    ds = dataset if dataset is not None else load_dataset("mnist", n_train=config.n_train, n_test=config.n_test,
                                                          data_dir=data_dir)
    x = be.asarray(tasks.mnist_sequences(ds.x_train, config.steps))
    y = xp.asarray(ds.y_train)
    x_test = be.asarray(tasks.mnist_sequences(ds.x_test, config.steps))
    y_test = xp.asarray(ds.y_test)
    P, B = x.shape[0], config.batch_size
    n_batches = config.batches_per_epoch or P // B
    if n_batches * B > P:
        raise MfphysError(f"{n_batches} batches of {B} need {n_batches * B} training images, "
                          f"but only {P} are loaded")
    spec, bp = config.spec(), config.mode == "bp"

    def batches(order_rngs):
        # a fresh permutation per replica and epoch; the epoch reads its first n_batches * B images
        perm = xp.asarray(np.stack([g.permutation(P)[: n_batches * B] for g in order_rngs]))
        for i in range(n_batches):
            idx = perm[:, i * B:(i + 1) * B]
            yield x[idx], y[idx], None

    def test(params):
        out = evaluate.outputs(params, x_test, spec, mode="mean", bp=bp)
        return be.to_numpy(evaluate.accuracy(out, y_test))

    data = {"x_test": x_test, "y_test": y_test, "summary": dataset_summary(ds)}
    return data, batches, test


def _evaluate_mnist(config: RnnConfig, params, data, be) -> dict:
    spec, bp, K = config.spec(), config.mode == "bp", config.eval_samples
    x, y = data["x_test"], data["y_test"]
    rngs = replica_rngs(config.seed, config.replicas, EVAL)
    res = {}
    for mode in evaluate.EVAL_MODES:
        if mode in ("quenched", "annealed") and K == 0:
            continue
        out = evaluate.outputs(params, x, spec, mode=mode, rngs=rngs, samples=K, bp=bp)
        res[f"acc_{mode}"] = be.to_numpy(evaluate.accuracy(out, y))
        if mode == "quenched":
            res["acc_quenched_vote"] = be.to_numpy((vote_counts(out).argmax(axis=-1) == y).mean(axis=-1))
    return res


def _multisensory(config: RnnConfig, be):
    xp, dt = be.xp, be.dtype
    task = tasks.Multisensory()
    if config.batch_size != len(task.modalities) * len(task.freqs) + task.n_catch:
        raise MfphysError(f"the multisensory task trains on blocks of {len(task.modalities) * len(task.freqs)} "
                          f"conditions and {task.n_catch} catch trials: batch_size must be "
                          f"{len(task.modalities) * len(task.freqs) + task.n_catch}")

    def batches(order_rngs):
        for _ in range(config.batches_per_epoch or 1):
            tr = tasks.multisensory_trials(task, order_rngs, phase="train", dtype=dt)
            yield xp.asarray(tr.x), xp.asarray(tr.target), xp.asarray(tr.mask)

    summary = {"name": "multisensory", "task": repr(task)}
    return {"task": task, "summary": summary}, batches, None


def _evaluate_multisensory(config: RnnConfig, params, data, be) -> dict:
    spec, bp, K = config.spec(), config.mode == "bp", config.eval_samples
    task = data["task"]
    rngs = replica_rngs(config.seed, config.replicas, EVAL)
    trials = tasks.multisensory_trials(task, rngs, phase="test", repeats=config.test_repeats, dtype=be.dtype)
    x = be.asarray(trials.x)
    res = {}
    for mode in evaluate.EVAL_MODES:
        if mode in ("quenched", "annealed") and K == 0:
            continue
        out = be.to_numpy(evaluate.outputs(params, x, spec, mode=mode, rngs=rngs, samples=K, bp=bp))
        p_high = tasks.psychometric(out[..., -1, :], trials, task)
        res[f"p_high_{mode}"] = p_high
        res[f"psychometric_acc_{mode}"] = tasks.psychometric_accuracy(p_high, task)
    return res

