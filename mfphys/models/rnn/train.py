"""Training loop of the recurrent model: R replicas trained together, evaluated in every mode.

``train_rnn(config)`` loads or generates the task's data, trains (BPTT through the mean-field
dynamics, or the BPTT baseline with ``mode="bp"``), records a per-epoch history and the order
parameters of every matrix at the dynamics epochs, and evaluates the result (docs/model-rnn.md
sections 5-9). It returns an :class:`RnnResult` of host (NumPy) arrays; storage and front ends
are someone else's business.

As the feed-forward loop (:mod:`mfphys.train`), it is a sequence of steps on a state, so that
:mod:`mfphys.runfile` can write checkpoints and continue a run: :func:`prepare` (data and
backend), :func:`init_state` or :func:`resume_state`, :func:`train_epoch` until
:func:`finished`, :func:`finish` (the final evaluation). :func:`train_rnn` runs them in memory.

Random streams per replica (``backend.replica_rngs``): ``INIT`` the initial parameters, ``ORDER``
the mini-batch order (MNIST) or the training trials' input noise (multisensory), ``NOISE`` the
mean-field and private noise of training, ``EVAL`` everything random in the final evaluation.
The state holds the bit-generator states of every ``ORDER`` and ``NOISE`` stream, so a resumed
NumPy run is bit-identical to an uninterrupted one. On a GPU the training noise comes from CuPy
generators seeded from the ``NOISE`` streams (unless ``host_noise``); their state cannot be
stored, so a resumed CuPy run reseeds them from the stored host streams: a valid continuation,
not the identical numbers (docs/model-rnn.md section 9).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from ...backend import EVAL, INIT, NOISE, ORDER, generator_from_state, get_backend, replica_rngs
from ...checks import check_dynamics_every
from ...dynamics import DYNAMICS_EVERY, Dynamics, dynamics_due
from ...errors import DivergenceError, MfphysError
from ...layers import Layer, vote_counts
from . import evaluate, noise, tasks
from .config import RnnConfig
from .model import MatrixInit, RnnParams, init_params, loss_and_grad
from .optim import OptState, opt_init, opt_update, tensor_settings


class RnnEpoch(NamedTuple):
    """One epoch's numbers, each (R,) except ``epoch`` and ``seconds``."""

    epoch: int
    train_loss: np.ndarray  # NaN for replicas that have stopped
    test_acc: np.ndarray  # noise-free mean-field test accuracy (MNIST; NaN for the multisensory task)
    active: np.ndarray  # bool: the replica trained in this epoch
    seconds: float


@dataclass
class RnnResult:
    """A recurrent run, all arrays on the host: finished, or (``evaluation`` None) a checkpoint's part.

    ``history``: ``train_loss`` and ``test_acc`` (R, E), ``epoch_seconds`` (E,).
    ``evaluation``: named arrays (docs/model-rnn.md section 5). MNIST: ``acc_<mode>`` for the four
    modes of :mod:`mfphys.rnn.evaluate` ((R,), or (R, K) for the sampled ones) and
    ``acc_quenched_vote`` (R,). Multisensory: ``p_high_<mode>`` (R, [K,] 3, 8), P(choose high)
    per modality and event rate, and ``psychometric_acc_<mode>`` (R, [K,] 3).
    ``stop_epoch`` (R,): the last epoch each replica trained (so far: ``config.epochs`` for a
    replica still training). ``dynamics``: the order parameters recorded while training
    (:class:`mfphys.train.Dynamics`, (R, 3) values per matrix); ``state``: the host state
    (:class:`RnnState`) for a resumable file.
    """

    config: RnnConfig
    params: RnnParams
    history: dict
    evaluation: dict | None
    stop_epoch: np.ndarray
    data: dict
    backend: str
    timings: dict = field(default_factory=dict)
    dynamics: Dynamics | None = None
    state: RnnState | None = None
    #: a packed run's (:func:`prepare_packed`): :attr:`RnnState.ended`, for :func:`unpack`
    ended: tuple | None = None

    @property
    def complete(self) -> bool:
        """True for a finished run (evaluated), False for a checkpoint's part."""
        return self.evaluation is not None


#: the per-epoch history: (R, E) curves (NaN where not trained / not measured) and (E,) series
CURVES = ("train_loss", "test_acc")
SERIES = ("epoch_seconds",)


class RnnState(NamedTuple):
    """Everything a recurrent run needs to go on after ``epoch`` epochs: what a checkpoint stores.

    ``params`` and ``opt`` (Adam's or RMSprop's moments and step count) are arrays of the
    compute backend while training (host arrays in a checkpoint, :func:`to_host`); ``rng``
    the bit-generator states of every replica's ``ORDER`` and ``NOISE`` streams
    (``{"order": [...], "noise": [...]}``, JSON-able); ``active`` (R,) the replicas still
    training and ``stop_epoch`` (R,) the last epoch of each (docs/model-rnn.md section 7);
    ``history`` the (R, E) / (E,) arrays of the whole run filled up to ``epoch``;
    ``dynamics`` the order parameters so far; ``seconds`` the training time so far.

    A packed run (:func:`prepare_packed`) has one :class:`Dynamics` per packed configuration in
    ``dynamics`` and, in ``ended``, per configuration the host state of that configuration alone
    (:func:`_cell_state`) from the epoch its replicas had all stopped (None while it trains): its
    run alone would have ended there, and the packed run only goes on for the others.
    """

    epoch: int
    params: RnnParams
    opt: OptState
    rng: dict
    active: np.ndarray
    stop_epoch: np.ndarray
    history: dict
    dynamics: Dynamics
    seconds: float = 0.0
    ended: tuple | None = None


@dataclass
class RnnSetup:
    """What stays fixed while a run trains: the configuration, the backend, the task's data on it.

    ``batches(order_rngs)`` yields the epoch's mini-batches, ``test(params)`` the per-epoch test
    accuracy (None: the multisensory task has none). ``device_noise`` holds the CuPy generators
    of the training noise (``host_noise`` False on a GPU), seeded from the host ``NOISE``
    streams; None until the first epoch of a resumed run reseeds them.
    """

    config: RnnConfig
    be: object
    spec: object
    settings: tuple
    mask: np.ndarray | None
    mask_dev: object
    data: dict
    batches: Callable
    test: Callable | None
    dynamics_every: int = DYNAMICS_EVERY
    seconds: float = 0.0
    device_noise: list | None = None
    #: packed configurations (:func:`prepare_packed`): every replica's own seed (None: ``seed + r``),
    #: the replicas of each packed configuration as (start, stop), the configurations, and the
    #: optimizer steps as ``(start, stop, OptConfig, settings)`` over runs of replicas that share one
    seeds: tuple | None = None
    groups: tuple | None = None
    packed: tuple | None = None
    opt_runs: tuple | None = None

    @property
    def bp(self) -> bool:
        return self.config.mode == "bp"


def train_rnn(config: RnnConfig, *, data_dir=None, dataset=None,
              callback: Callable[[RnnEpoch], None] | None = None,
              dynamics_every: int = DYNAMICS_EVERY) -> RnnResult:
    """Train ``config.replicas`` replicas together and evaluate them (see the module docstring).

    The whole run in memory: :func:`prepare`, :func:`init_state`, :func:`train_epoch` until
    :func:`finished`, :func:`finish` (:mod:`mfphys.runfile` runs the same steps with
    checkpoints). ``dataset`` may pass a loaded MNIST :class:`mfphys.data.Dataset`;
    ``callback`` gets an :class:`RnnEpoch` after every epoch; the order parameters are
    recorded at the epochs of :func:`mfphys.train.dynamics_due`.
    """
    with running(config):
        setup = prepare(config, data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
        state = init_state(setup)
        while not finished(setup, state):
            state, record = train_epoch(setup, state)
            if callback is not None:
                callback(record)
        return finish(setup, state)


@contextlib.contextmanager
def running(config: RnnConfig):
    """Around the steps of a run: BLAS on ``config.blas_threads`` threads (the per-step products
    are small, and one thread is the fastest on a busy CPU) and NumPy's floating-point warnings
    off (a diverging run overflows before its loss turns NaN: :class:`DivergenceError` says it)."""
    limits = contextlib.nullcontext()
    if config.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(config.blas_threads)
    with limits, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        yield


def prepare(config: RnnConfig, *, data_dir=None, dataset=None, dynamics_every: int = DYNAMICS_EVERY) -> RnnSetup:
    """Validate, pick the backend and put the task's data on it (nothing is trained)."""
    config.validate()
    check_dynamics_every(dynamics_every)
    be = get_backend(config.backend, config.dtype)
    if be.name != "numpy":  # before anything is put on the GPU (docs/gpu.md)
        from ... import budget
        from .budget import rnn_estimate

        budget.check_device_memory(rnn_estimate(config), be)
    t0 = time.perf_counter()
    spec = config.spec()
    mask = tasks.input_mask(config)
    if config.task == "mnist":
        data, batches, test = _mnist(config, be, data_dir, dataset)
    else:
        data, batches, test = _multisensory(config, be)
    return RnnSetup(config, be, spec, tensor_settings(config.optimizer, spec), mask,
                    None if mask is None else be.xp.asarray(mask), data, batches, test, int(dynamics_every),
                    time.perf_counter() - t0)


def _device_noise(setup: RnnSetup) -> bool:
    return setup.be.name != "numpy" and not setup.config.host_noise


def _empty_history(R: int, E: int) -> dict:
    return {**{k: np.full((R, E), np.nan) for k in CURVES}, **{k: np.zeros(E) for k in SERIES}}


def init_state(setup: RnnSetup) -> RnnState:
    """The state before the first epoch: initial parameters (``INIT`` streams), zero optimizer
    moments, fresh ``ORDER`` and ``NOISE`` streams, every replica active, epoch 0's order parameters."""
    config, be = setup.config, setup.be
    R, E = config.replicas, config.epochs
    if setup.packed is None:
        host = init_params(setup.spec, config.init, _rngs(setup, INIT), bp=setup.bp, dtype=be.dtype,
                           input_mask=setup.mask)
    else:  # each packed configuration's own initial values, from its replicas' streams
        inits = _rngs(setup, INIT)
        parts = [init_params(setup.spec, c.init, inits[a:b], bp=setup.bp, dtype=be.dtype, input_mask=setup.mask)
                 for c, (a, b) in zip(setup.packed, setup.groups)]
        host = RnnParams(*(Layer(*(np.concatenate(vs) for vs in zip(*layers))) for layers in zip(*parts)))
    params = RnnParams(*(Layer(*(be.asarray(v) for v in layer)) for layer in host))
    opt = opt_init(params, config.optimizer, setup.spec.trainable(bp=setup.bp))
    noise_rngs = _rngs(setup, NOISE)
    if _device_noise(setup):  # the device streams are seeded from the host ones (mfphys.rnn.noise)
        setup.device_noise = noise.device_rngs(noise_rngs, be)
    rng = {"order": [g.bit_generator.state for g in _rngs(setup, ORDER)],
           "noise": [g.bit_generator.state for g in noise_rngs]}
    packed = setup.groups is not None
    state = RnnState(0, params, opt, rng, np.ones(R, bool), np.full(R, E), _empty_history(R, E),
                     tuple(Dynamics() for _ in setup.groups) if packed else Dynamics(), setup.seconds,
                     (None,) * len(setup.groups) if packed else None)
    return _record_dynamics(setup, state)


def _rngs(setup: RnnSetup, stream: int) -> list[np.random.Generator]:
    """Every replica's generator of one stream: ``seed + r``'s, or a packed replica's own seed's."""
    if setup.seeds is None:
        return replica_rngs(setup.config.seed, setup.config.replicas, stream)
    return [replica_rngs(s, 1, stream)[0] for s in setup.seeds]


def finished(setup: RnnSetup, state: RnnState) -> bool:
    """Whether the run is over: all its epochs done, or every replica stopped (docs/model-rnn.md section 7)."""
    return state.epoch >= setup.config.epochs or not state.active.any()


def train_epoch(setup: RnnSetup, state: RnnState) -> tuple[RnnState, RnnEpoch]:
    """One epoch of every active replica (stopped ones keep their parameters), the per-epoch
    test, the stop rule and, when due, the order parameters. Returns the state after the epoch
    (its arrays updated in place) and the epoch's record. Raises :class:`DivergenceError`."""
    config, be = setup.config, setup.be
    xp, dt = be.xp, be.dtype
    spec, bp, opt = setup.spec, setup.bp, config.optimizer
    if finished(setup, state):
        raise MfphysError(f"the run is over after {state.epoch} of its {config.epochs} epochs")
    epoch = state.epoch + 1
    t0 = time.perf_counter()
    order_rngs = [generator_from_state(s) for s in state.rng["order"]]
    noise_host = [generator_from_state(s) for s in state.rng["noise"]]
    noise_rngs = noise_host
    if _device_noise(setup):
        if setup.device_noise is None:  # resumed on a GPU: reseeded from the stored host streams
            setup.device_noise = noise.device_rngs(noise_host, be)
        noise_rngs = setup.device_noise
    params, ostate = state.params, state.opt
    active, stop_epoch = state.active.copy(), state.stop_epoch.copy()
    lr_scale = {k: opt.lr_factor(epoch, k) for k in ("pi", "m", "xi")}
    frozen = None
    if not active.all():  # stopped replicas keep their parameters (docs/model-rnn.md section 7)
        idx = xp.asarray(np.flatnonzero(~active))
        frozen = [(a, idx, a[idx].copy()) for layer in params for a in layer]
    loss_sum, n = xp.zeros(config.replicas, dtype=dt), 0
    def draw_for(batch):  # the mini-batch's noise, time-major (T, B, ...) from its (R, B, T, ...) inputs
        return noise.draw(noise_rngs, spec, batch[0].shape[-2], batch[0].shape[-3], bp=bp, xp=xp, dtype=dt)

    ahead = noise.ahead_pays(noise_rngs) and not (bp and spec.sigma_rec == 0)
    for (xb, target, loss_mask), nz in noise.with_noise(setup.batches(order_rngs), draw_for, ahead=ahead):
        loss, grads, _ = loss_and_grad(params, xb, target, nz, spec, mask=loss_mask, bp=bp)
        if setup.opt_runs is None:
            params, ostate = opt_update(grads, ostate, params, cfg=opt, settings=setup.settings, lr_scale=lr_scale,
                                        input_mask=setup.mask_dev)
        else:
            params, ostate = _opt_update_runs(setup, grads, ostate, params, epoch)
        loss_sum += loss
        n += 1
    if frozen is not None:
        for a, idx, saved in frozen:
            a[idx] = saved
    e, hist = epoch - 1, state.history
    loss_host = be.to_numpy(loss_sum) / n
    if not np.all(np.isfinite(loss_host[active])):
        bad = int(np.flatnonzero(~np.isfinite(loss_host) & active)[0])
        raise DivergenceError(f"training diverged at epoch {epoch} (replica {bad}, loss is not finite): "
                              "try smaller learning rates")
    hist["train_loss"][active, e] = loss_host[active]
    if setup.test is not None:
        hist["test_acc"][:, e] = setup.test(params)
    be.synchronize()
    seconds = time.perf_counter() - t0
    hist["epoch_seconds"][e] = seconds
    was_active = active.copy()
    if config.stop_loss is not None and epoch >= config.stop_min_epoch:
        done = active & (loss_host <= config.stop_loss)
        stop_epoch[done] = epoch
        active &= ~done
    rng = {"order": [g.bit_generator.state for g in order_rngs], "noise": [g.bit_generator.state for g in noise_host]}
    state = RnnState(epoch, params, ostate, rng, active, stop_epoch, hist, state.dynamics, state.seconds + seconds,
                     state.ended)
    record = RnnEpoch(epoch, hist["train_loss"][:, e], hist["test_acc"][:, e], was_active, seconds)
    return _end_cells(setup, _record_dynamics(setup, state)), record


def dynamics_order(params) -> dict:
    """The order parameters a recurrent run records while it trains: name -> (R, 3) (input,
    recurrent, output) for every :data:`mfphys.order.SCALARS` name, and ``<name>_nodiag`` with
    the recurrent column over its off-diagonal connections (as :func:`mfphys.rnn.order.matrix_order`)."""
    from ... import order
    from .order import RECURRENT, offdiagonal

    values = order.training_order(params)
    rec = params[RECURRENT]
    nodiag = order.training_order((rec,), live_inputs=offdiagonal(rec.m.shape[-1]))
    out = dict(values)
    for k in order.SCALARS:
        v = np.array(values[k], copy=True)
        v[..., RECURRENT] = nodiag[f"{k}_live"][..., 0]
        out[f"{k}_nodiag"] = v
    return out


def _record_dynamics(setup: RnnSetup, state: RnnState) -> RnnState:
    """``state`` with the order parameters (and the histograms at a snapshot epoch) of its
    parameters appended when due (:func:`mfphys.train.dynamics_due`), and after the last epoch
    of a run whose replicas all stopped early."""
    from ... import order

    config, epoch = setup.config, state.epoch
    if setup.groups is None:
        cells = [(state.dynamics, None, finished(setup, state))]
    else:  # each packed configuration as its run alone: over at the last epoch or once its replicas stopped
        cells = [(d, (a, b), ended is None and (epoch >= config.epochs or not state.active[a:b].any()))
                 for d, (a, b), ended in zip(state.dynamics, setup.groups, state.ended)]
    host, out, t0 = None, [], time.perf_counter()
    for i, (dyn, rows, over) in enumerate(cells):
        last = epoch > 0 and over
        live = state.ended is None or state.ended[i] is None
        sample = live and (dynamics_due(epoch, config.epochs, setup.dynamics_every) or last) and \
            epoch not in dyn.epochs
        snap = live and (epoch in order.snapshot_epochs(config.epochs) or last) and epoch not in dyn.snap_epochs
        if sample or snap:
            if host is None:
                host = RnnParams(*(Layer(*(setup.be.to_numpy(v) for v in layer)) for layer in state.params))
            own = host if rows is None else _params_slice(host, *rows)  # a packed cell's own histogram edges
            if sample:
                dyn = dyn._replace(epochs=dyn.epochs + (epoch,), samples=dyn.samples + (dynamics_order(own),))
            if snap:
                dyn = dyn._replace(snap_epochs=dyn.snap_epochs + (epoch,),
                                   snaps=dyn.snaps + (order.histogram_snapshot(own),))
        out.append(dyn)
    if host is None:
        return state
    dynamics = out[0] if setup.groups is None else tuple(out)
    return state._replace(dynamics=dynamics, seconds=state.seconds + time.perf_counter() - t0)


def to_host(be, state: RnnState) -> RnnState:
    """``state`` with its parameters and optimizer moments on the host (NumPy; no copy on the
    NumPy backend, so write it out before the next epoch) and its history cut to the epochs done."""

    def host(layer):
        return Layer(*(None if v is None else be.to_numpy(v) for v in layer))

    opt = OptState(int(state.opt.count), RnnParams(*(host(l) for l in state.opt.mu)),
                   RnnParams(*(host(l) for l in state.opt.nu)))
    history = {k: v[..., :state.epoch].copy() for k, v in state.history.items()}
    return state._replace(params=RnnParams(*(host(l) for l in state.params)), opt=opt, history=history,
                          active=state.active.copy(), stop_epoch=state.stop_epoch.copy())


def resume_state(setup: RnnSetup, checkpoint: RnnState) -> RnnState:
    """A checkpoint's host state (:func:`to_host`, or read from a run file) on ``setup``'s backend,
    its history grown to the configuration's epochs (a finished run continued to more epochs:
    the replicas still active train on to the new last epoch)."""
    config, be = setup.config, setup.be
    R, E, n = config.replicas, config.epochs, checkpoint.epoch
    if n > E:
        raise MfphysError(f"the run has {n} epochs already: give --epochs {n} or more")

    def dev(layer):
        return Layer(*(None if v is None else be.asarray(v) for v in layer))

    params = RnnParams(*(dev(l) for l in checkpoint.params))
    opt = OptState(int(checkpoint.opt.count), RnnParams(*(dev(l) for l in checkpoint.opt.mu)),
                   RnnParams(*(dev(l) for l in checkpoint.opt.nu)))
    history = _empty_history(R, E)
    for k, v in history.items():
        v[..., :n] = checkpoint.history[k][..., :n]
    active = np.asarray(checkpoint.active, dtype=bool).copy()
    stop_epoch = np.asarray(checkpoint.stop_epoch, dtype=np.int64).copy()
    stop_epoch[active] = E
    setup.device_noise = None  # reseeded from the stored host streams (RnnSetup)
    packed = setup.groups is not None
    state = RnnState(n, params, opt, checkpoint.rng, active, stop_epoch, history, checkpoint.dynamics,
                     checkpoint.seconds + setup.seconds, (None,) * len(setup.groups) if packed else None)
    # the last epoch of a continued run was sampled already; a packed configuration whose
    # replicas had all stopped ends here, as its run alone would
    return _end_cells(setup, _record_dynamics(setup, state))


def current_result(setup: RnnSetup, state: RnnState) -> RnnResult:
    """What a checkpoint stores besides the state: the run so far as an :class:`RnnResult`
    without the final evaluation (``evaluation`` None), its state on the host."""
    host = to_host(setup.be, state)
    return RnnResult(setup.config, host.params, host.history, None, host.stop_epoch, setup.data["summary"],
                     setup.be.describe(), {"train_seconds": state.seconds}, state.dynamics, host, state.ended)


def finish(setup: RnnSetup, state: RnnState, *, keep_state: bool = False) -> RnnResult:
    """The finished run: final parameters on the host (checked finite), the evaluation in every
    mode (``EVAL`` streams); with ``keep_state`` its final state on the host (what a run file
    needs to be continued)."""
    config, be = setup.config, setup.be
    if not finished(setup, state):
        raise MfphysError(f"the run has {state.epoch} of its {config.epochs} epochs: it is not finished")
    hist = {k: v[..., :state.epoch] for k, v in state.history.items()}
    host = RnnParams(*(Layer(*(be.to_numpy(v) for v in layer)) for layer in state.params))
    if not all(np.all(np.isfinite(v)) for layer in host for v in layer):
        raise DivergenceError("training diverged: parameters are not finite at the end; try smaller learning rates")
    t0 = time.perf_counter()
    evaluate_task = _evaluate_mnist if config.task == "mnist" else _evaluate_multisensory
    rngs = _rngs(setup, EVAL)
    if setup.groups is None or be.name != "numpy":
        evaluation = evaluate_task(config, state.params, setup.data, be, rngs)
    else:  # on a CPU each packed configuration's evaluation alone: the temporaries of one run stay in cache
        parts = [evaluate_task(config, _params_slice(state.params, a, b), setup.data, be, rngs[a:b])
                 for a, b in setup.groups]
        evaluation = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    timings = {"train_seconds": state.seconds, "eval_seconds": time.perf_counter() - t0}
    final = to_host(be, state) if keep_state else None
    return RnnResult(config, host, hist, evaluation, state.stop_epoch.copy(), setup.data["summary"], be.describe(),
                     timings, state.dynamics, final, state.ended)


# --- packed cells (docs/scans.md, "Packed cells") ------------------------------------------------------------


#: what packed configurations may differ in (with the neutral value :func:`pack_key` puts in):
#: ``seed`` and ``replicas`` (each replica keeps its own streams), ``init`` (each configuration's
#: replicas start from its own initial values, :func:`init_state`), and of the optimizer its
#: learning rates and weight decay (each configuration's replicas take their own steps,
#: :func:`_opt_update_runs`). The arrays' shapes, the data and the steps of an epoch are the same.
PACKABLE = {"seed": 0, "replicas": 1, "init": (MatrixInit(),) * 3}
PACKABLE_OPTIMIZER = {"lr_m": (0.0,) * 3, "lr_xi": (0.0,) * 3, "lr_pi": (0.0,) * 3, "weight_decay": 0.0}


def pack_key(config: RnnConfig) -> str:
    """Configurations with the same key train as one batched run (:func:`train_packed`): all but
    :data:`PACKABLE` and :data:`PACKABLE_OPTIMIZER` agree. The stop rule (``stop_loss``) packs
    too: a configuration whose replicas have all stopped ends as alone (:func:`_end_cells`)."""
    optimizer = dataclasses.replace(config.optimizer, **PACKABLE_OPTIMIZER)
    return dataclasses.replace(config, optimizer=optimizer, **PACKABLE).to_json()


def packed_config(configs) -> RnnConfig:
    """The configuration of the batched run of ``configs`` (one :func:`pack_key`): their replicas
    side by side (its seed, initial values and optimizer stand for nothing: each replica takes its
    configuration's)."""
    return dataclasses.replace(configs[0], seed=0, replicas=sum(c.replicas for c in configs))


def prepare_packed(configs, *, data_dir=None, dataset=None, dynamics_every: int = DYNAMICS_EVERY) -> RnnSetup:
    """The setup of ``configs`` (one :func:`pack_key`) trained as one run, their replicas side by
    side: :func:`prepare` of :func:`packed_config`, with every replica's own seed, each
    configuration's replicas as a group ``(start, stop)`` and its own optimizer steps. The steps
    (:func:`init_state`, :func:`train_epoch`, :func:`finish` ...) then train them together;
    :func:`unpack` splits what they return into one result per configuration."""
    configs = list(configs)
    if len({pack_key(c) for c in configs}) != 1:
        raise MfphysError(f"packed configurations must differ only in "
                          f"{', '.join([*PACKABLE, *(f'optimizer.{k}' for k in PACKABLE_OPTIMIZER)])}")
    setup = prepare(packed_config(configs), data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
    setup.seeds = tuple(c.seed + r for c in configs for r in range(c.replicas))
    ends = np.cumsum([0] + [c.replicas for c in configs]).tolist()
    setup.groups = tuple(zip(ends[:-1], ends[1:]))
    setup.packed = tuple(configs)
    runs = []  # neighbours with one optimizer take one step together
    for c, (a, b) in zip(configs, setup.groups):
        if runs and runs[-1][2] == c.optimizer:
            runs[-1][1] = b
        else:
            runs.append([a, b, c.optimizer, tensor_settings(c.optimizer, setup.spec)])
    setup.opt_runs = tuple(tuple(r) for r in runs)
    return setup


def _params_slice(params: RnnParams, a: int, b: int) -> RnnParams:
    """Replicas ``a:b`` of every array of ``params`` (views; None stays None: a frozen kind)."""
    return RnnParams(*(Layer(*(None if v is None else v[a:b] for v in layer)) for layer in params))


def _opt_update_runs(setup: RnnSetup, grads, ostate: OptState, params, epoch: int):
    """:func:`opt_update` of a packed run: the replicas of each run of ``setup.opt_runs`` take
    their configuration's step (learning rates, schedule, decay), in place on their slices,
    exactly as their run alone (every operation of a step is per replica; one step count)."""
    for a, b, cfg, settings in setup.opt_runs:
        lr_scale = {k: cfg.lr_factor(epoch, k) for k in ("pi", "m", "xi")}
        opt_update(_params_slice(grads, a, b), OptState(ostate.count, _params_slice(ostate.mu, a, b),
                                                        _params_slice(ostate.nu, a, b)),
                   _params_slice(params, a, b), cfg=cfg, settings=settings, lr_scale=lr_scale,
                   input_mask=setup.mask_dev)
    return params, OptState(ostate.count + 1, ostate.mu, ostate.nu)


def _cell_state(setup: RnnSetup, state: RnnState, i: int) -> RnnState:
    """The host state of packed configuration ``i`` alone after ``state.epoch`` (copies), from a
    packed state on the backend or on the host (:func:`to_host`): its replicas' parameters,
    moments, streams, stop rule, history and order parameters."""
    (a, b), R = setup.groups[i], setup.config.replicas

    def cut(layer):
        return Layer(*(None if v is None else np.array(setup.be.to_numpy(v[a:b])) for v in layer))

    e = state.epoch
    opt = OptState(int(state.opt.count), RnnParams(*(cut(l) for l in state.opt.mu)),
                   RnnParams(*(cut(l) for l in state.opt.nu)))
    history = {k: (v[a:b, :e] if k in CURVES else v[:e]).copy() for k, v in state.history.items()}
    return RnnState(e, RnnParams(*(cut(l) for l in state.params)), opt, {k: list(v[a:b]) for k, v in state.rng.items()},
                    state.active[a:b].copy(), state.stop_epoch[a:b].copy(), history, state.dynamics[i],
                    state.seconds * (b - a) / R)


def _end_cells(setup: RnnSetup, state: RnnState) -> RnnState:
    """A packed ``state`` with the host state of every configuration whose replicas have all
    stopped kept from now on (``state.ended``): its run alone ends at this epoch, while the packed
    run goes on for the others and keeps drawing from (and stepping the moments of) its replicas.
    Done after the order parameters of the epoch (:func:`_record_dynamics` records a configuration's
    last epoch as its run alone does)."""
    if setup.groups is None:
        return state
    ended = list(state.ended)
    for i, (a, b) in enumerate(setup.groups):
        if ended[i] is None and not state.active[a:b].any():
            ended[i] = _cell_state(setup, state, i)
    return state._replace(ended=tuple(ended))


def join_states(setup: RnnSetup, states) -> RnnState:
    """The host state of a packed run (``setup`` of :func:`prepare_packed`) from each packed
    configuration's own host state (a cell's checkpoint), all after the same epoch: their
    replicas side by side, as :func:`unpack` splits them. A configuration whose replicas have
    all stopped ends again when the packed run resumes (:func:`resume_state`)."""
    states = list(states)
    epochs = {s.epoch for s in states}
    counts = {int(s.opt.count) for s in states}
    if len(epochs) != 1 or len(counts) != 1:
        raise MfphysError("packed checkpoints must all be after the same epoch")

    def cat(parts):
        return RnnParams(*(Layer(*(None if vs[0] is None else np.concatenate(vs) for vs in zip(*layers)))
                           for layers in zip(*parts)))

    history = {k: (np.concatenate([s.history[k] for s in states]) if k in CURVES else states[0].history[k].copy())
               for k in states[0].history}
    opt = OptState(counts.pop(), cat([s.opt.mu for s in states]), cat([s.opt.nu for s in states]))
    rng = {k: [g for s in states for g in s.rng[k]] for k in states[0].rng}
    return RnnState(epochs.pop(), cat([s.params for s in states]), opt, rng,
                    np.concatenate([np.asarray(s.active, dtype=bool) for s in states]),
                    np.concatenate([np.asarray(s.stop_epoch, dtype=np.int64) for s in states]), history,
                    tuple(s.dynamics for s in states), float(sum(s.seconds for s in states)))


def unpack(setup: RnnSetup, result: RnnResult) -> list[RnnResult]:
    """One :class:`RnnResult` per packed configuration from the packed run's result (finished, or
    a checkpoint's part with its state): each configuration's replicas, history, stop epochs,
    order parameters, evaluation and state as its run alone has them; a configuration whose
    replicas all stopped before the packed run ended is its state kept from that epoch
    (``result.ended``, :func:`_end_cells`). Times are each configuration's share (by replicas)
    of the packed run's."""
    out = []
    R = setup.config.replicas
    ended = result.ended or (None,) * len(setup.groups)
    for i, (c, (a, b)) in enumerate(zip(setup.packed, setup.groups)):
        share = (b - a) / R
        if ended[i] is not None:  # its run alone ended at its own epoch
            own = ended[i]
            history, stop_epoch, dyn = own.history, own.stop_epoch, own.dynamics
            state = own if result.state is not None else None
        else:
            history = {k: (v[a:b].copy() if k in CURVES else v.copy()) for k, v in result.history.items()}
            stop_epoch, dyn = result.stop_epoch[a:b].copy(), result.dynamics[i]
            state = None if result.state is None else _cell_state(setup, result.state, i)
        evaluation = None if result.evaluation is None else {k: v[a:b].copy() for k, v in result.evaluation.items()}
        params = RnnParams(*(Layer(*(None if v is None else v[a:b].copy() for v in layer)) for layer in result.params))
        out.append(RnnResult(c, params, history, evaluation, stop_epoch, result.data, result.backend,
                             {k: v * share for k, v in result.timings.items()}, dyn, state))
    return out


def packed_epoch_logs(setup: RnnSetup, state: RnnState) -> list:
    """Each packed configuration's line of the epoch log (:mod:`mfphys.runlog`) after
    ``state.epoch``: its replicas' values and its order parameters; None for a configuration
    whose run ended before this epoch (its replicas all stopped: its log has no such epoch)."""
    from ...runlog import packed_line

    e = state.epoch
    return [None if ended is not None and ended.epoch < e else packed_line(e, state.history, CURVES, a, b, dyn)
            for (a, b), dyn, ended in zip(setup.groups, state.dynamics, state.ended)]


def train_packed(configs, *, data_dir=None, dataset=None, dynamics_every: int = DYNAMICS_EVERY) -> list[RnnResult]:
    """Train ``configs`` (one :func:`pack_key`) as one run with their replicas side by side and
    return one :class:`RnnResult` per configuration, the numbers of each the same as
    ``train_rnn(config)`` gives alone.

    Each packed replica keeps its own configuration's streams (``INIT``, ``ORDER``, ``NOISE``,
    ``EVAL`` of ``seed + r``), learning rates and decay, and every computation of a step is per
    replica, so on NumPy the numbers are bit for bit those of the configuration trained alone
    (``tests/scan/test_packed_rnn.py``); a configuration whose replicas all stop (the stop rule,
    docs/model-rnn.md section 7) ends at that epoch as alone. A divergence anywhere raises for the
    whole pack; the caller then trains the configurations one by one.
    """
    configs = list(configs)
    with running(configs[0]):
        setup = prepare_packed(configs, data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
        state = init_state(setup)
        while not finished(setup, state):
            state, _ = train_epoch(setup, state)
        return unpack(setup, finish(setup, state))


# --- tasks: data, batches, per-epoch test, final evaluation ------------------------------------------------


def _mnist(config: RnnConfig, be, data_dir, dataset):
    from ...data import dataset_summary, load_dataset

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


def _evaluate_mnist(config: RnnConfig, params, data, be, rngs) -> dict:
    spec, bp, K = config.spec(), config.mode == "bp", config.eval_samples
    x, y = data["x_test"], data["y_test"]
    res = {}
    for mode in evaluate.EVAL_MODES:
        if mode in ("quenched", "annealed") and K == 0:
            continue
        out = evaluate.outputs(params, x, spec, mode=mode, rngs=rngs, samples=K, bp=bp,
                               device_draws=not config.host_noise)
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


def _evaluate_multisensory(config: RnnConfig, params, data, be, rngs) -> dict:
    spec, bp, K = config.spec(), config.mode == "bp", config.eval_samples
    task = data["task"]
    trials = tasks.multisensory_trials(task, rngs, phase="test", repeats=config.test_repeats, dtype=be.dtype)
    x = be.asarray(trials.x)
    res = {}
    for mode in evaluate.EVAL_MODES:
        if mode in ("quenched", "annealed") and K == 0:
            continue
        out = be.to_numpy(evaluate.outputs(params, x, spec, mode=mode, rngs=rngs, samples=K, bp=bp,
                                           device_draws=not config.host_noise))
        p_high = tasks.psychometric(out[..., -1, :], trials, task)
        res[f"p_high_{mode}"] = p_high
        res[f"psychometric_acc_{mode}"] = tasks.psychometric_accuracy(p_high, task)
    return res

