"""The training loop: R replicas of one architecture trained together by gBP (or BP).

``train(config)`` is the whole job behind ``mfphys train``: it loads the data, trains,
evaluates (noise-free mean-field accuracy each epoch, sampled sub-networks at the end,
docs/model.md section 5) and returns a :class:`TrainResult` of host (NumPy) arrays. Storage is
``mfphys.store``'s business; progress goes through a callback.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from ...backend import BACKENDS, DTYPES, EVAL, INIT, NOISE, ORDER, generator_from_state, get_backend, replica_rngs
from ...checks import (
    MAX_INT,
    MAX_SAMPLES,
    check_choice,
    check_dynamics_every,
    check_int,
    check_real,
    is_int,
    is_real,
)
from ...dynamics import DYNAMICS_EVERY, Dynamics, dynamics_due
from ...errors import DivergenceError, MfphysError
from ...fileio import clip, config_differences, dataclass_from_json, quote  # noqa: F401 (re-exported)
from ...layers import sample_weights_on_device
from . import model, optim

MODES = ("gbp", "bp")
#: when Adam's moments and step counter restart: never (the later revision of the paper's
#: code, the default) or at the start of every epoch (its 2020 code), docs/model.md section 4
ADAM_RESETS = ("never", "epoch")
_DATASETS = ("mnist", "fashion-mnist", "teacher")  # mfphys.data.DATASETS (a test checks they agree)
_BACKENDS, _DTYPES = BACKENDS, DTYPES

#: integer fields and their smallest allowed value
_INT_MINIMA = {"n_train": 1, "n_test": 1, "epochs": 1, "batch_size": 1, "replicas": 1, "lr_halve_every": 0,
               "seed": 0, "eval_samples": 0, "teacher_seed": 0}
#: integer fields whose largest value is not :data:`mfphys.checks.MAX_INT`
_INT_MAXIMA = {"eval_samples": MAX_SAMPLES}
_INT_HINTS = {"lr_halve_every": " (0 = constant)", "seed": " (replica r uses seed + r; seeds are non-negative)"}
#: real fields: (low, high, low included)
_FLOAT_RANGES = {"lr": (0.0, math.inf, False), "weight_decay": (0.0, math.inf, True),
                 "adam_b1": (0.0, 1.0, True), "adam_b2": (0.0, 1.0, True), "adam_eps": (0.0, math.inf, False),
                 "init_m_std": (0.0, math.inf, True), "init_xi": (0.0, math.inf, True)}


#: the two versions of the paper's reference code as option presets (``mfphys train --protocol``,
#: docs/model.md section 4); the defaults follow the revision, except the decay (on m and Xi)
PROTOCOLS = {
    "2020": {"epochs": 200, "lr_halve_every": 20, "adam_reset": "epoch", "decay_on": ("m", "xi")},
    "revised": {"epochs": 100, "lr_halve_every": 0, "adam_reset": "never", "decay_on": ("pi", "m", "xi")},
}

#: fields added after the first release, with the default that reproduces the older files
ADDED_LATER = {"adam_reset": "never"}


@functools.cache
def _opt(name: str) -> str:
    """The command-line spelling of a field: ``n_train`` -> ``--n-train``."""
    return "--" + name.replace("_", "-")


_is_int, _is_real = is_int, is_real


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's numbers. Defaults reproduce the paper (docs/model.md section 4).

    ``lr_halve_every = 20`` with ``epochs = 200`` is the paper's 2020 schedule; the default
    (constant lr 0.1, 100 epochs) is its later revision. Replica ``r`` uses seed ``seed + r``.
    """

    dataset: str = "mnist"
    layers: tuple = (784, 100, 100, 10)
    n_train: int = 10_000
    n_test: int | None = None
    epochs: int = 100
    batch_size: int = 500
    lr: float = 0.1
    lr_halve_every: int = 0
    activation: str = "relu"
    replicas: int = 1
    seed: int = 0
    mode: str = "gbp"
    backend: str = "auto"
    dtype: str = "float32"
    weight_decay: float = 1e-4
    decay_on: tuple = ("m", "xi")
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    init_m_std: float = math.sqrt(2 / 784)
    init_xi: float = 0.01
    eval_samples: int = 10
    teacher_seed: int = 0
    host_noise: bool = False
    adam_reset: str = "never"

    def __post_init__(self):
        # one validation for every entry point (CLI, scan TOML, Python API): a bad value is
        # refused here, with the same one-line message everywhere, not deep inside NumPy
        if not isinstance(self.layers, (list, tuple)) or not all(_is_int(n) for n in self.layers):
            raise MfphysError(f"--layers must be a sequence of integer widths, got {quote(self.layers)}")
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        if isinstance(self.decay_on, str) or not isinstance(self.decay_on, (list, tuple)):
            raise MfphysError(f"--decay-on must be a sequence of names among pi,m,xi, got {quote(self.decay_on)}")
        object.__setattr__(self, "decay_on", tuple(self.decay_on))
        self.validate()

    def validate(self) -> TrainConfig:
        """Raise :class:`MfphysError` with one clear line for any bad value (types and ranges;
        what depends on the data, such as the input width, is checked when the data is loaded)."""
        if len(self.layers) < 2 or any(n <= 0 for n in self.layers):
            raise MfphysError(f"--layers needs at least two positive widths, got "
                              f"{clip(','.join(map(str, self.layers)))}")
        if any(n > MAX_INT for n in self.layers):
            raise MfphysError(f"--layers widths must be at most {MAX_INT:,}")
        for name, low in _INT_MINIMA.items():
            value = getattr(self, name)
            if name == "n_test" and value is None:
                continue
            check_int(_opt(name), value, low=low, high=_INT_MAXIMA.get(name, MAX_INT), hint=_INT_HINTS.get(name, ""))
        for name, (low, high, closed_low) in _FLOAT_RANGES.items():
            check_real(_opt(name), getattr(self, name), low=low, high=high, closed_low=closed_low)
        for name, choices in (("mode", MODES), ("activation", tuple(model.ACTIVATIONS)), ("dataset", _DATASETS),
                              ("backend", _BACKENDS), ("dtype", _DTYPES),
                              ("adam_reset", ADAM_RESETS)):
            check_choice(_opt(name), getattr(self, name), choices)
        if self.teacher_seed != 0 and self.dataset != "teacher":
            raise MfphysError(f"--teacher-seed {self.teacher_seed} is the teacher network's seed: it needs "
                              f"--dataset teacher, not {self.dataset}")
        if not set(self.decay_on) <= set(optim.PARAM_NAMES):
            raise MfphysError(f"--decay-on takes names among pi,m,xi, got {','.join(map(str, self.decay_on))}")
        if not isinstance(self.host_noise, bool):
            raise MfphysError(f"host_noise must be True or False, got {quote(self.host_noise)}")
        return self

    def to_json(self) -> str:
        """The configuration as JSON. Fields added after the first release are left out while they
        hold their default (:data:`ADDED_LATER`), so every earlier run and scan cell keeps its
        configuration hash; :meth:`from_json` fills them in."""
        # the fields are numbers, strings and tuples of them: a shallow dict gives the JSON that
        # dataclasses.asdict gives (tuples become lists either way), several times faster (a
        # 10,000-cell scan hashes every cell's configuration when it is opened)
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.dumps({k: v for k, v in d.items() if not (k in ADDED_LATER and v == ADDED_LATER[k])},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return dataclass_from_json(cls, text)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (1-based): halved every ``lr_halve_every`` epochs."""
        if self.lr_halve_every <= 0:
            return self.lr
        return self.lr * 0.5 ** ((epoch - 1) // self.lr_halve_every)


class EpochRecord(NamedTuple):
    """Per-epoch numbers, each (R,) except ``epoch``, ``lr`` and ``seconds``."""

    epoch: int
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    lr: float
    seconds: float


#: the per-epoch history: (R, E) curves and (E,) series
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc")
SERIES = ("lr", "epoch_seconds", "eval_seconds")
class TrainState(NamedTuple):
    """Everything a run needs to go on after ``epoch`` epochs: what a checkpoint stores.

    ``params`` and ``adam`` are arrays of the compute backend while training (host arrays in
    a checkpoint, :func:`to_host`); ``rng`` holds the bit-generator state of every replica's
    batch-order and noise streams as JSON-able dicts (``{"order": [...], "noise": [...]}``);
    ``history`` the per-epoch arrays of the whole run (:data:`CURVES` (R, E), :data:`SERIES`
    (E,)), filled up to ``epoch``; ``seconds`` the training time so far. The arrays are
    updated in place by :func:`train_epoch` (as :func:`mfphys.optim.adam_update` does).
    """

    epoch: int
    params: tuple
    adam: optim.AdamState
    rng: dict
    history: dict
    dynamics: Dynamics
    seconds: float = 0.0


@dataclass
class TrainSetup:
    """What stays fixed while a run trains: the configuration, the backend, the data on it.

    ``device_noise`` holds the CuPy generators of the per-step noise (``host_noise=False`` on
    a GPU): their state cannot be stored, so a resumed CuPy run reseeds them from its host
    noise streams (a valid continuation, not the bit-identical one NumPy gives).
    """

    config: TrainConfig
    be: object
    data: object  # mfphys.data.Dataset
    x_train: object
    y_train: object
    x_test: object
    y_test: object
    adam_cfg: optim.AdamConfig
    dead_inputs: np.ndarray  # (N_0,) bool
    dynamics_every: int = DYNAMICS_EVERY
    seconds: float = 0.0  # loading and moving the data
    device_noise: list | None = None
    #: packed cells (:func:`train_packed`): every replica's own seed (None: ``seed + r``) and
    #: the replicas of each packed cell as (start, stop); its order parameters are its own
    seeds: tuple | None = None
    groups: tuple | None = None
    packed: tuple | None = None  # the packed configurations, one per group
    #: each packed cell's training patterns (the first ``sizes[i]`` rows of ``x_train``) and the
    #: inputs constant over them; ``order[j]``: the group of the j-th configuration as given
    sizes: tuple | None = None
    dead: tuple | None = None
    order: tuple | None = None

    @property
    def trainable(self) -> tuple:
        return ("m",) if self.config.mode == "bp" else optim.PARAM_NAMES


@dataclass
class TrainResult:
    """A run, all arrays on the host: finished, or (``sampled_acc`` None) a checkpoint's part."""

    config: TrainConfig
    params: tuple  # tuple[model.Layer] of (R, N_out, N_in) NumPy arrays
    history: dict  # name -> (R, E) array, plus "lr" and "epoch_seconds" (E,)
    sampled_acc: np.ndarray | None  # (R, K) accuracy of each sampled sub-network; None before the end
    vote_acc: np.ndarray | None  # (R,) accuracy of the K sub-networks' majority vote
    data: dict  # dataset summary (name, sizes, checksum, source)
    dead_inputs: np.ndarray  # (N_0,) bool: inputs constant over the training set
    backend: str
    timings: dict = field(default_factory=dict)
    dynamics: Dynamics | None = None
    state: TrainState | None = None  # the final (or current) state on the host, for resumable files

    @property
    def complete(self) -> bool:
        """True for a finished run (sampled evaluation done), False for a checkpoint's part."""
        return self.sampled_acc is not None


def load_data(config: TrainConfig, data_dir=None):
    """The dataset a config names, checked against its layer widths."""
    from ... import data as data_mod

    teacher = None
    if config.dataset == "teacher":
        teacher = data_mod.TeacherConfig(n_in=config.layers[0], seed=config.teacher_seed)
    ds = data_mod.load_dataset(config.dataset, n_train=config.n_train, n_test=config.n_test, data_dir=data_dir,
                               teacher=teacher)
    if ds.input_dim != config.layers[0]:
        raise MfphysError(f"--layers starts with {config.layers[0]} inputs but {ds.name} has {ds.input_dim} "
                          f"input features: use --layers {ds.input_dim},...")
    if ds.n_classes != config.layers[-1]:
        raise MfphysError(f"--layers ends with {config.layers[-1]} outputs but {ds.name} has {ds.n_classes} classes")
    P = ds.x_train.shape[0]
    if config.batch_size > P:
        raise MfphysError(f"--batch-size {config.batch_size} is larger than the {P} training patterns")
    return ds


def train(config: TrainConfig, *, data_dir=None, dataset=None,
          callback: Callable[[EpochRecord], None] | None = None,
          dynamics_every: int = DYNAMICS_EVERY) -> TrainResult:
    """Train ``config.replicas`` replicas together and evaluate them (see module docstring).

    The whole run in memory: :func:`prepare`, :func:`init_state`, :func:`train_epoch` for
    every epoch, :func:`finish` (:mod:`mfphys.runfile` runs the same steps with checkpoints).
    ``dataset`` may pass an already loaded :class:`mfphys.data.Dataset`; ``callback`` is
    called after every epoch with an :class:`EpochRecord`; the order parameters are recorded
    every ``dynamics_every`` epochs and at log-spaced epochs (:func:`dynamics_due`). Raises
    :class:`DivergenceError` when the loss or the parameters stop being finite.
    """
    # a diverging run overflows before its loss turns NaN: that is reported as a
    # DivergenceError, so NumPy's floating-point warnings would only be noise
    with quiet_fp():
        setup = prepare(config, data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
        state = init_state(setup)
        while state.epoch < config.epochs:
            state, record = train_epoch(setup, state)
            if callback is not None:
                callback(record)
        return finish(setup, state)


def quiet_fp():
    """NumPy's floating-point warnings off: divergence is reported as :class:`DivergenceError`."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def prepare(config: TrainConfig, *, data_dir=None, dataset=None, dynamics_every: int = DYNAMICS_EVERY) -> TrainSetup:
    """Validate, check the memory, pick the backend and put the data on it (nothing is trained)."""
    from ... import budget
    from ...data import dead_inputs

    config.validate()
    check_dynamics_every(dynamics_every)
    estimate = budget.train_estimate(config)
    budget.check_memory(estimate)  # before anything is allocated or generated
    be = get_backend(config.backend, config.dtype)
    budget.check_device_memory(estimate, be)
    t0 = time.perf_counter()
    ds = dataset if dataset is not None else load_data(config, data_dir)
    x_train = be.asarray(ds.x_train)
    if config.batch_size > x_train.shape[0]:
        raise MfphysError(f"--batch-size {config.batch_size} is larger than the {x_train.shape[0]} training patterns")
    return TrainSetup(config, be, ds, x_train, be.xp.asarray(ds.y_train), be.asarray(ds.x_test),
                      be.xp.asarray(ds.y_test), _adam_config(config), dead_inputs(ds.x_train), int(dynamics_every),
                      time.perf_counter() - t0)


def _adam_config(config: TrainConfig) -> optim.AdamConfig:
    return optim.AdamConfig(config.adam_b1, config.adam_b2, config.adam_eps, config.weight_decay, config.decay_on)


def _device_noise(setup: TrainSetup) -> bool:
    return setup.be.name != "numpy" and not setup.config.host_noise


def init_state(setup: TrainSetup) -> TrainState:
    """The state before the first epoch: initial parameters (``INIT`` streams), zero Adam
    moments, fresh ``ORDER`` and ``NOISE`` streams, an empty history, epoch 0's order parameters."""
    config, be = setup.config, setup.be
    R, E = config.replicas, config.epochs
    if setup.packed is None:
        host_params = model.init_params(config.layers, _rngs(setup, INIT), m_std=config.init_m_std,
                                        xi_scale=config.init_xi, bp=config.mode == "bp", dtype=be.dtype)
    else:  # each packed configuration's own initial scales
        inits = _rngs(setup, INIT)
        parts = [model.init_params(config.layers, inits[a:b], m_std=c.init_m_std, xi_scale=c.init_xi,
                                   bp=config.mode == "bp", dtype=be.dtype)
                 for c, (a, b) in zip(setup.packed, setup.groups)]
        host_params = tuple(model.Layer(*(np.concatenate(vs) for vs in zip(*layers))) for layers in zip(*parts))
    params = tuple(model.Layer(*(be.asarray(v) for v in layer)) for layer in host_params)
    noise = _rngs(setup, NOISE)
    if _device_noise(setup):  # the device streams are seeded from the host ones
        setup.device_noise = [be.device_rng(int(g.integers(2**32))) for g in noise]
    rng = {"order": [g.bit_generator.state for g in _rngs(setup, ORDER)],
           "noise": [g.bit_generator.state for g in noise]}
    history = {**{k: np.zeros((R, E)) for k in CURVES}, **{k: np.zeros(E) for k in SERIES}}
    dynamics = Dynamics() if setup.groups is None else tuple(Dynamics() for _ in setup.groups)
    adam = optim.adam_init(params, trainable=setup.trainable)
    if setup.groups is not None:  # one step counter per packed cell (their epochs may differ in steps)
        adam = adam._replace(count=(0,) * len(setup.groups))
    state = TrainState(0, params, adam, rng, history, dynamics, setup.seconds)
    return _record_dynamics(setup, state)


def _rngs(setup: TrainSetup, stream: int) -> list[np.random.Generator]:
    """Every replica's generator of one stream: ``seed + r``'s, or a packed replica's own seed's."""
    if setup.seeds is None:
        return replica_rngs(setup.config.seed, setup.config.replicas, stream)
    return [replica_rngs(s, 1, stream)[0] for s in setup.seeds]


def train_epoch(setup: TrainSetup, state: TrainState) -> tuple[TrainState, EpochRecord]:
    """One epoch: mini-batch gBP (or BP) steps over the training set in each replica's own
    order, the noise-free test evaluation, and the order parameters when they are due.

    Returns the state after the epoch (its arrays updated in place) and the epoch's record.
    Raises :class:`DivergenceError` when the training loss is not finite.
    """
    config, be = setup.config, setup.be
    xp, dt = be.xp, be.dtype
    R, bp = config.replicas, config.mode == "bp"
    epoch = state.epoch + 1
    if epoch > config.epochs:
        raise MfphysError(f"the run has all its {config.epochs} epochs already")
    x_train, y_train = setup.x_train, setup.y_train
    P, B = x_train.shape[0], config.batch_size
    widths = config.layers[1:]
    splits = np.cumsum(widths)[:-1].tolist()
    order_rngs = [generator_from_state(s) for s in state.rng["order"]]
    noise_host = [generator_from_state(s) for s in state.rng["noise"]]
    noise_dev = noise_host
    if _device_noise(setup):
        if setup.device_noise is None:  # resumed on a GPU: reseeded from the stored host streams
            setup.device_noise = [be.device_rng(int(g.integers(2**32))) for g in noise_host]
        noise_dev = setup.device_noise

    def draw_noise(b, part=slice(None)):
        """One (R, b, N_l) standard-normal array per layer, from each replica's own stream
        (of the replicas ``part`` only, when packed cells step apart)."""
        if bp:
            return None
        gens = noise_dev[part]
        if noise_dev is noise_host:  # drawn straight into one host array: no stacking copy
            e = np.empty((len(gens), b, sum(widths)), dt)
            for g, out in zip(gens, e):
                g.standard_normal(out=out, dtype=dt)
            e = xp.asarray(e)
        else:
            e = xp.stack([g.standard_normal((b, sum(widths)), dtype=dt) for g in gens])
        return xp.split(e, splits, axis=-1) if splits else [e]

    t0 = time.perf_counter()
    params, adam = state.params, state.adam
    if config.adam_reset == "epoch":  # the 2020 code's fresh optimizer every epoch (docs/model.md section 4)
        adam = optim.adam_reset(adam)
    lr = config.lr_at(epoch)
    loss_sum = xp.zeros(R, dtype=dt)
    correct = xp.zeros(R, dtype=dt)
    if setup.packed is None:
        perm = xp.asarray(np.stack([g.permutation(P) for g in order_rngs]))  # (R, P)
        for i in range(math.ceil(P / B)):
            idx = perm[:, i * B:(i + 1) * B]
            xb, yb, x2b = _batch(x_train, y_train, idx, bp, xp)
            loss, grads, logits = model.loss_and_grad(params, xb, yb, draw_noise(idx.shape[1]),
                                                      activation=config.activation, bp=bp, x2=x2b)
            params, adam = optim.adam_update(grads, adam, params, lr=lr, cfg=setup.adam_cfg)
            loss_sum += loss * idx.shape[1]
            correct += (logits.argmax(axis=-1) == yb).sum(axis=-1)
    else:
        adam = _packed_steps(setup, params, adam, epoch, order_rngs, draw_noise, loss_sum, correct)
    hist, e = state.history, epoch - 1
    if setup.packed is None:
        hist["train_loss"][:, e] = be.to_numpy(loss_sum) / P
        hist["train_acc"][:, e] = be.to_numpy(correct) / P
    else:  # each packed cell over its own training patterns
        loss_host, correct_host = be.to_numpy(loss_sum), be.to_numpy(correct)
        for (a, b), n in zip(setup.groups, setup.sizes):
            hist["train_loss"][a:b, e] = loss_host[a:b] / n
            hist["train_acc"][a:b, e] = correct_host[a:b] / n
    if not np.all(np.isfinite(hist["train_loss"][:, e])):
        bad = int(np.flatnonzero(~np.isfinite(hist["train_loss"][:, e]))[0])
        raise DivergenceError(f"training diverged at epoch {epoch} (replica {bad}, loss is not finite): "
                              f"try a smaller --lr than {config.lr}")
    be.synchronize()
    t_eval = time.perf_counter()
    logits = model.predict(params, setup.x_test, activation=config.activation)
    y_test = setup.y_test
    tl, _, _ = model.cross_entropy(logits, xp.broadcast_to(y_test, logits.shape[:-1]))
    hist["test_loss"][:, e] = be.to_numpy(tl)
    hist["test_acc"][:, e] = be.to_numpy((logits.argmax(axis=-1) == y_test).sum(axis=-1)) / y_test.shape[0]
    be.synchronize()
    t_end = time.perf_counter()
    hist["lr"][e], hist["epoch_seconds"][e], hist["eval_seconds"][e] = lr, t_end - t0, t_end - t_eval
    rng = {"order": [g.bit_generator.state for g in order_rngs], "noise": [g.bit_generator.state for g in noise_host]}
    state = TrainState(epoch, params, adam, rng, hist, state.dynamics, state.seconds + t_end - t0)
    record = EpochRecord(epoch, hist["train_loss"][:, e], hist["train_acc"][:, e], hist["test_loss"][:, e],
                         hist["test_acc"][:, e], lr, t_end - t0)
    return _record_dynamics(setup, state), record


def _batch(x_train, y_train, idx, bp: bool, xp):
    """A mini-batch's inputs, labels and (gBP) inputs squared. ``take`` is the faster gather of
    whole rows; squaring the gathered rows while they are in cache beats gathering a stored
    ``x**2`` (bench/README.md), with the same numbers."""
    xb = xp.take(x_train, idx, axis=0)
    return xb, y_train[idx], None if bp else xb * xb


def _views(layers, a: int, b: int) -> tuple:
    """Replicas ``a:b`` of every array (views: an update in place updates the whole arrays)."""
    return tuple(model.Layer(*(None if v is None else v[a:b] for v in layer)) for layer in layers)


def _segments(setup: TrainSetup, i: int) -> list[tuple]:
    """The packed replicas that take step ``i`` of the epoch, as runs ``(a, b, n, first, last)``
    of neighbouring cells whose batch ``i`` has the same size ``n``, cells ``first:last``: a
    cell of ``P`` patterns takes ceil(P / B) steps, the last one of P % B patterns when B does
    not divide P, exactly as it does alone."""
    B = setup.config.batch_size
    out = []
    for j, ((a, b), P) in enumerate(zip(setup.groups, setup.sizes)):
        n = min(B, P - i * B)
        if n <= 0:
            continue
        if out and out[-1][1] == a and out[-1][2] == n:
            out[-1] = (out[-1][0], b, n, out[-1][3], j + 1)
        else:
            out.append((a, b, n, j, j + 1))
    return out


def _packed_steps(setup: TrainSetup, params, adam, epoch: int, order_rngs, draw_noise, loss_sum, correct):
    """The steps of one epoch of packed cells (in place; returns the Adam state). Each cell takes
    its own ceil(P / B) steps over its own ``P`` patterns (the first ``P`` rows of the shared
    training set) in its replicas' own order: at step ``i`` only the replicas of the cells with a
    batch ``i`` compute, draw noise and update, on views of the packed arrays
    (:func:`_segments`), every product one per replica as alone (docs/scans.md "Packed cells")."""
    config, be = setup.config, setup.be
    xp, bp, B = be.xp, config.mode == "bp", config.batch_size
    x_train, y_train = setup.x_train, setup.y_train
    R, P = config.replicas, x_train.shape[0]
    perm = np.zeros((R, P), dtype=np.int64)  # each replica's order of its own patterns, padded
    for (a, b), n in zip(setup.groups, setup.sizes):
        for r in range(a, b):
            perm[r, :n] = order_rngs[r].permutation(n)
    perm = xp.asarray(perm)
    lrs = [c.lr_at(epoch) for c in setup.packed]
    cfgs = [_adam_config(c) for c in setup.packed]
    counts = list(adam.count)
    for i in range(math.ceil(max(setup.sizes) / B)):
        for a, b, n, first, last in _segments(setup, i):
            idx = perm[a:b, i * B:i * B + n]
            xb, yb, x2b = _batch(x_train, y_train, idx, bp, xp)
            part = _views(params, a, b)
            loss, grads, logits = model.loss_and_grad(part, xb, yb, draw_noise(n, slice(a, b)),
                                                      activation=config.activation, bp=bp, x2=x2b)
            sub = optim.AdamState(tuple(counts[first:last]), _views(adam.mu, a, b), _views(adam.nu, a, b))
            groups = [(c - a, d - a) for c, d in setup.groups[first:last]]
            _, sub = optim.adam_update_groups(grads, sub, part, groups=groups, lrs=lrs[first:last],
                                              cfgs=cfgs[first:last])
            counts[first:last] = sub.count
            loss_sum[a:b] += loss * n
            correct[a:b] += (logits.argmax(axis=-1) == yb).sum(axis=-1)
    return adam._replace(count=tuple(counts))


def _record_dynamics(setup: TrainSetup, state: TrainState) -> TrainState:
    """``state`` with the order parameters (and the histograms at a snapshot epoch) of its
    parameters appended, when due (:func:`dynamics_due`, :func:`mfphys.order.snapshot_epochs`)."""
    from ... import order

    config, epoch, dyn = setup.config, state.epoch, state.dynamics
    first = dyn if setup.groups is None else dyn[0]  # packed cells record at the same epochs
    sample = dynamics_due(epoch, config.epochs, setup.dynamics_every) and epoch not in first.epochs
    snap = epoch in order.snapshot_epochs(config.epochs) and epoch not in first.snap_epochs
    if not (sample or snap):
        return state
    t0 = time.perf_counter()
    host = tuple(model.Layer(*(setup.be.to_numpy(v) for v in layer)) for layer in state.params)

    def record(dyn, host, dead=setup.dead_inputs):
        if sample:
            values = order.training_order(host, live_inputs=~dead)
            dyn = dyn._replace(epochs=dyn.epochs + (epoch,), samples=dyn.samples + (values,))
        if snap:
            dyn = dyn._replace(snap_epochs=dyn.snap_epochs + (epoch,),
                               snaps=dyn.snaps + (order.histogram_snapshot(host),))
        return dyn

    if setup.groups is None:
        dyn = record(dyn, host)
    else:  # each packed cell's own numbers (its histograms have its own bin edges)
        dyn = tuple(record(d, _replica_slice(host, a, b), dead)
                    for d, (a, b), dead in zip(dyn, setup.groups, setup.dead))
    return state._replace(dynamics=dyn, seconds=state.seconds + time.perf_counter() - t0)


def _replica_slice(params, a: int, b: int) -> tuple:
    """Replicas ``a:b`` of every parameter array (copies)."""
    return tuple(model.Layer(*(v[a:b].copy() for v in layer)) for layer in params)


def to_host(be, state: TrainState) -> TrainState:
    """``state`` with its parameters and Adam moments on the host (NumPy; no copy on the NumPy
    backend, so write it out before the next epoch) and its history cut to the epochs done."""

    def host(layer):
        return model.Layer(*(None if v is None else be.to_numpy(v) for v in layer))

    adam = optim.AdamState(state.adam.count, tuple(host(l) for l in state.adam.mu),
                           tuple(host(l) for l in state.adam.nu))
    history = {k: v[..., :state.epoch].copy() for k, v in state.history.items()}
    return state._replace(params=tuple(host(l) for l in state.params), adam=adam, history=history)


def resume_state(setup: TrainSetup, checkpoint: TrainState) -> TrainState:
    """A checkpoint's host state (:func:`to_host`, or read from a run file) on ``setup``'s backend,
    its history grown to the configuration's epochs (a finished run continued to more epochs)."""
    config, be = setup.config, setup.be
    R, E, n = config.replicas, config.epochs, checkpoint.epoch
    if n > E:
        raise MfphysError(f"the run has {n} epochs already: give --epochs {n} or more")
    layers = tuple(model.Layer(*(be.asarray(v) for v in layer)) for layer in checkpoint.params)

    def dev(layer):
        return model.Layer(*(None if v is None else be.asarray(v) for v in layer))

    count = checkpoint.adam.count
    count = tuple(int(c) for c in count) if isinstance(count, tuple) else int(count)  # packed: one per cell
    adam = optim.AdamState(count, tuple(dev(l) for l in checkpoint.adam.mu),
                           tuple(dev(l) for l in checkpoint.adam.nu))
    history = {**{k: np.zeros((R, E)) for k in CURVES}, **{k: np.zeros(E) for k in SERIES}}
    for k, v in history.items():
        v[..., :n] = checkpoint.history[k][..., :n]
    setup.device_noise = None  # reseeded from the stored host streams (TrainSetup)
    state = TrainState(n, layers, adam, checkpoint.rng, history, checkpoint.dynamics,
                       checkpoint.seconds + setup.seconds)
    return _record_dynamics(setup, state)  # the last epoch of a continued run was sampled already


def current_result(setup: TrainSetup, state: TrainState) -> TrainResult:
    """What a checkpoint stores besides the state: the run so far as a :class:`TrainResult`
    without the sampled evaluation (``sampled_acc`` None), its state on the host."""
    from ...data import dataset_summary

    host = to_host(setup.be, state)
    return TrainResult(setup.config, host.params, host.history, None, None, dataset_summary(setup.data),
                       setup.dead_inputs, setup.be.describe(), {"train_seconds": state.seconds},
                       state.dynamics, host)


def finish(setup: TrainSetup, state: TrainState, *, keep_state: bool = False) -> TrainResult:
    """The finished run: final parameters on the host (checked finite), the sampled evaluation
    (``EVAL`` streams), the dataset summary; with ``keep_state`` its final state on the host
    (what a run file needs to be continued)."""
    from ...data import dataset_summary

    config, be = setup.config, setup.be
    if state.epoch != config.epochs:
        raise MfphysError(f"the run has {state.epoch} of its {config.epochs} epochs: it is not finished")
    host = tuple(model.Layer(*(be.to_numpy(v) for v in layer)) for layer in state.params)
    if not all(np.all(np.isfinite(v)) for layer in host for v in layer):
        raise DivergenceError("training diverged: parameters are not finite at the end; try a smaller --lr")
    t0 = time.perf_counter()
    sampled, voted = evaluate_sampled(host, setup.data.x_test, setup.data.y_test, n_draws=config.eval_samples,
                                      rngs=_rngs(setup, EVAL),
                                      activation=config.activation, be=be, device_draws=not config.host_noise)
    t_eval = time.perf_counter() - t0
    final = to_host(be, state) if keep_state else None
    return TrainResult(config, host, state.history, sampled, voted, dataset_summary(setup.data), setup.dead_inputs,
                       be.describe(), {"train_seconds": state.seconds, "sampled_eval_seconds": t_eval},
                       state.dynamics, final)


#: sampled sub-networks drawn and evaluated together: bounds the memory of the sampled
#: evaluation (R * DRAW_BLOCK weight matrices) whatever the number of draws. The draws depend
#: on it (each block takes its numbers from the replica's stream in turn), never on memory.
DRAW_BLOCK = 16


def evaluate_sampled(params, x, y, *, n_draws: int, rngs, activation: str, be=None, device_draws: bool = False):
    """Accuracy of ``n_draws`` sampled sub-networks per replica (R, K) and of their vote (R,).

    ``params`` are host arrays; weights are drawn on the host (backend-independent), in
    blocks of :data:`DRAW_BLOCK` draws, and the forward passes run on ``be``. With
    ``device_draws`` on a GPU they are drawn there instead, from CuPy generators seeded from
    ``rngs`` (no host draw copied per block; other numbers from the same law: docs/gpu.md).
    """
    R = params[0].m.shape[0]
    if n_draws == 0:
        return np.zeros((R, 0)), np.full(R, np.nan)
    be = be or get_backend("numpy", str(params[0].m.dtype))
    xd, yd = be.asarray(x), be.xp.asarray(y)
    on_device = device_draws and be.name != "numpy"
    if on_device:
        params = tuple(model.Layer(*(be.asarray(v, dtype=v.dtype) for v in layer)) for layer in params)
        rngs = [be.device_rng(int(g.integers(2**32))) for g in rngs]
    acc = np.zeros((R, n_draws))
    votes = 0
    for k0 in range(0, n_draws, DRAW_BLOCK):
        k = min(DRAW_BLOCK, n_draws - k0)
        if on_device:
            ws = sample_weights_on_device(params, rngs, k)
        else:
            ws = model.sample_weights(params, rngs, k, xp=be.xp)
        logits = model.predict_sampled(ws, xd, activation=activation)  # (R, k, P, C)
        acc[:, k0:k0 + k] = be.to_numpy((logits.argmax(axis=-1) == yd).sum(axis=-1)) / len(y)
        votes = votes + model.vote_counts(logits)
        del ws, logits
    vote = be.to_numpy((votes.argmax(axis=-1) == yd).sum(axis=-1)) / len(y)
    return acc, vote


# --- packed cells (docs/scans.md, "Packed cells") ------------------------------------------------


def pack_key(config: TrainConfig) -> str:
    """Configurations with the same key train as one batched run (:func:`train_packed`): all
    but :data:`PACKABLE` agree (the seed only picks each replica's random streams, the replicas
    of every configuration go side by side, the rest are numbers each replica uses alone). A
    training set smaller than a batch (refused when the run starts) keeps its ``n_train`` in the
    key: such a cell fails as it does alone, with the cells of its own size only."""
    neutral = PACKABLE if config.n_train >= config.batch_size else {**PACKABLE, "n_train": config.n_train}
    return dataclasses.replace(config, **neutral).to_json()


#: what packed configurations may differ in (with the neutral value :func:`pack_key` puts in):
#: the arrays' shapes are the same for all of them, and each of these is read by its own
#: replicas only (the streams, the initial scales, each group's learning-rate schedule and Adam
#: constants in :func:`mfphys.optim.adam_update_groups`, its training set: the first ``n_train``
#: patterns of one data set, so the largest one holds them all, with its own steps per epoch)
PACKABLE = {"seed": 0, "replicas": 1, "lr": 1.0, "lr_halve_every": 0, "weight_decay": 0.0, "decay_on": (),
            "adam_b1": 0.0, "adam_b2": 0.0, "adam_eps": 1.0, "init_m_std": 0.0, "init_xi": 0.0, "n_train": 1}


def packed_config(configs) -> TrainConfig:
    """The configuration of the batched run of ``configs`` (one :func:`pack_key`): their replicas side by side
    on the largest training set (its own seed, learning rate, decay and scales stand for nothing: each
    replica takes its configuration's, and its own first ``n_train`` patterns)."""
    return dataclasses.replace(configs[0], seed=0, replicas=sum(c.replicas for c in configs),
                               n_train=max(c.n_train for c in configs))


def prepare_packed(configs, *, data_dir=None, dataset=None, dynamics_every: int = DYNAMICS_EVERY) -> TrainSetup:
    """The setup of ``configs`` (one :func:`pack_key`) trained as one run, their replicas side by
    side: :func:`prepare` of :func:`packed_config`, with every replica's own seed and each
    configuration's replicas as a group ``(start, stop)``. The steps (:func:`init_state`,
    :func:`train_epoch`, :func:`finish` ...) then train them together; :func:`unpack` splits
    what they return into one result per configuration."""
    from ...data import dead_inputs

    given = list(configs)
    keys = {pack_key(c) for c in given}
    if len(keys) != 1:
        raise MfphysError(f"packed configurations must differ only in {', '.join(PACKABLE)}")
    # the largest training sets first: the cells still taking steps late in an epoch are then the
    # first replicas (few, wide steps; _segments); the results come back in the given order
    rank = sorted(range(len(given)), key=lambda j: -given[j].n_train)
    configs = [given[j] for j in rank]
    setup = prepare(packed_config(configs), data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
    setup.seeds = tuple(c.seed + r for c in configs for r in range(c.replicas))
    ends = np.cumsum([0] + [c.replicas for c in configs]).tolist()
    setup.groups = tuple(zip(ends[:-1], ends[1:]))
    setup.packed = tuple(configs)
    setup.order = tuple(rank.index(j) for j in range(len(given)))
    P = setup.data.x_train.shape[0]
    if len({c.n_train for c in configs}) == 1:  # one training set: all of it, as prepare() uses it
        setup.sizes = (P,) * len(configs)
        setup.dead = (setup.dead_inputs,) * len(configs)
    else:
        if configs[0].n_train > P:
            raise MfphysError(f"--n-train {configs[0].n_train} is larger than the {P} training patterns given")
        setup.sizes = tuple(c.n_train for c in configs)
        masks = {n: dead_inputs(setup.data.x_train[:n]) for n in set(setup.sizes)}
        setup.dead = tuple(masks[n] for n in setup.sizes)
    return setup


def _layers_cat(parts) -> tuple:
    """Layer tuples of several runs joined along the replica axis (None stays None: a frozen kind)."""
    return tuple(model.Layer(*(None if vs[0] is None else np.concatenate(vs) for vs in zip(*layers)))
                 for layers in zip(*parts))


def _layers_slice(layers, a: int, b: int) -> tuple:
    return tuple(model.Layer(*(None if v is None else v[a:b].copy() for v in layer)) for layer in layers)


def join_states(setup: TrainSetup, states) -> TrainState:
    """The host state of a packed run (``setup`` of :func:`prepare_packed`) from each packed
    configuration's own host state (a cell's checkpoint), all after the same epoch: their
    replicas side by side, as :func:`unpack` splits them. Every number a replica's steps read is
    its own (parameters, Adam moments, random streams), so the joined run continues each
    configuration exactly as it would go on alone."""
    given = list(states)
    states = [None] * len(given)
    for j, s in zip(setup.order, given):  # into the packed order (prepare_packed)
        states[j] = s
    epochs = {s.epoch for s in states}
    # the same step count in cells of one training-set size (their epochs take the same steps)
    counts = {(n, int(s.adam.count)) for n, s in zip(setup.sizes, states)}
    if len(epochs) != 1 or len(counts) != len({n for n, _ in counts}):
        raise MfphysError("packed checkpoints must all be after the same epoch")
    history = {k: (np.concatenate([s.history[k] for s in states]) if k in CURVES else states[0].history[k].copy())
               for k in states[0].history}
    adam = optim.AdamState(tuple(int(s.adam.count) for s in states), _layers_cat([s.adam.mu for s in states]),
                           _layers_cat([s.adam.nu for s in states]))
    rng = {k: [g for s in states for g in s.rng[k]] for k in states[0].rng}
    return TrainState(epochs.pop(), _layers_cat([s.params for s in states]), adam, rng, history,
                      tuple(s.dynamics for s in states), float(sum(s.seconds for s in states)))


def unpack(setup: TrainSetup, result: TrainResult) -> list[TrainResult]:
    """One :class:`TrainResult` per packed configuration from the packed run's result (finished,
    or a checkpoint's part with its state): each configuration's replicas, learning rates,
    dynamics and state, as the configuration trained alone has them. Times are each
    configuration's share (by replicas) of the packed run's."""
    out = []
    R = setup.config.replicas
    for c, (a, b), dyn, n, dead, count in zip(setup.packed, setup.groups, result.dynamics, setup.sizes, setup.dead,
                                             _counts(setup, result.state)):
        share = (b - a) / R

        def own(history, c=c, a=a, b=b):
            h = {k: (v[a:b].copy() if k in CURVES else v.copy()) for k, v in history.items()}
            h["lr"] = np.array([c.lr_at(e) for e in range(1, h["lr"].shape[-1] + 1)], dtype=h["lr"].dtype)
            return h

        state = None
        if result.state is not None:
            s = result.state
            adam = optim.AdamState(count, _layers_slice(s.adam.mu, a, b), _layers_slice(s.adam.nu, a, b))
            state = TrainState(s.epoch, _layers_slice(s.params, a, b), adam,
                               {k: list(v[a:b]) for k, v in s.rng.items()}, own(s.history), dyn, s.seconds * share)
        out.append(TrainResult(c, _layers_slice(result.params, a, b), own(result.history),
                               None if result.sampled_acc is None else result.sampled_acc[a:b].copy(),
                               None if result.vote_acc is None else result.vote_acc[a:b].copy(),
                               {**result.data, "P": int(n)}, dead.copy(), result.backend,
                               {k: v * share for k, v in result.timings.items()}, dyn, state))
    return [out[j] for j in setup.order]


def _counts(setup: TrainSetup, state) -> tuple:
    """Each packed cell's Adam step counter in ``state`` (None: no state)."""
    if state is None:
        return (None,) * len(setup.groups)
    return tuple(int(c) for c in state.adam.count)  # one per packed cell (init_state, join_states)


def packed_epoch_logs(setup: TrainSetup, state: TrainState) -> list[dict]:
    """Each packed configuration's line of the epoch log (:mod:`mfphys.runlog`) after
    ``state.epoch``: its replicas' values, its learning rate, its order parameters."""
    from ...runlog import packed_line

    e = state.epoch
    out = []
    for c, (a, b), dyn in zip(setup.packed, setup.groups, state.dynamics):
        record = packed_line(e, state.history, CURVES, a, b, dyn)
        record["values"]["lr"] = np.asarray(c.lr_at(e), dtype=state.history["lr"].dtype)
        out.append(record)
    return [out[j] for j in setup.order]


def train_packed(configs, *, data_dir=None, dataset=None, dynamics_every: int = DYNAMICS_EVERY) -> list[TrainResult]:
    """Train ``configs`` (one :func:`pack_key`) as one run with their replicas side by side and
    return one :class:`TrainResult` per configuration, the numbers of each the same as
    ``train(config)`` gives alone.

    Each packed replica keeps its own configuration's streams (``INIT``, ``ORDER``, ``NOISE``,
    ``EVAL`` of ``seed + r``), initial scales, learning rate and decay, and every computation
    of a step is per replica (the products are one matrix product per replica, the rest
    element-wise or reduced over a replica's own axes), so on NumPy the numbers are bit for
    bit those of the configuration trained alone (``tests/scan/test_packed.py``). Each
    result's times are its replicas' share of the pack's.
    A divergence anywhere raises for the whole pack; the caller then trains the configurations
    one by one. (:func:`mfphys.runfile.train_runs` runs the same steps with checkpoints.)
    """
    with quiet_fp():
        setup = prepare_packed(configs, data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
        state = init_state(setup)
        while state.epoch < setup.config.epochs:
            state, _ = train_epoch(setup, state)
        return unpack(setup, finish(setup, state))
