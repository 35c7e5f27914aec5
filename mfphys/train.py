"""The training loop: R replicas of one architecture trained together by gBP (or BP).

``train(config)`` is the whole job behind ``mfphys train``: it loads the data, trains,
evaluates (noise-free mean-field accuracy each epoch, sampled sub-networks at the end,
docs/model.md section 5) and returns a :class:`TrainResult` of host (NumPy) arrays. Storage is
``mfphys.store``'s business; progress goes through a callback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from . import model, optim
from .backend import BACKENDS, DTYPES, EVAL, INIT, NOISE, ORDER, get_backend, replica_rngs
from .errors import DivergenceError, MfphysError

MODES = ("gbp", "bp")
_DATASETS = ("mnist", "fashion-mnist", "teacher")  # mfphys.data.DATASETS (a test checks they agree)
_BACKENDS, _DTYPES = BACKENDS, DTYPES

#: integer fields and their smallest allowed value
_INT_MINIMA = {"n_train": 1, "n_test": 1, "epochs": 1, "batch_size": 1, "replicas": 1, "lr_halve_every": 0,
               "seed": 0, "eval_samples": 0, "teacher_seed": 0}
_INT_HINTS = {"lr_halve_every": " (0 = constant)", "seed": " (replica r uses seed + r; seeds are non-negative)"}
#: real fields: (low, high, low included)
_FLOAT_RANGES = {"lr": (0.0, math.inf, False), "weight_decay": (0.0, math.inf, True),
                 "adam_b1": (0.0, 1.0, True), "adam_b2": (0.0, 1.0, True), "adam_eps": (0.0, math.inf, False),
                 "init_m_std": (0.0, math.inf, True), "init_xi": (0.0, math.inf, True)}


def _opt(name: str) -> str:
    """The command-line spelling of a field: ``n_train`` -> ``--n-train``."""
    return "--" + name.replace("_", "-")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


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

    def __post_init__(self):
        # one validation for every entry point (CLI, scan TOML, Python API): a bad value is
        # refused here, with the same one-line message everywhere, not deep inside NumPy
        if not isinstance(self.layers, (list, tuple)) or not all(_is_int(n) for n in self.layers):
            raise MfphysError(f"--layers must be a sequence of integer widths, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        if isinstance(self.decay_on, str) or not isinstance(self.decay_on, (list, tuple)):
            raise MfphysError(f"--decay-on must be a sequence of names among pi,m,xi, got {self.decay_on!r}")
        object.__setattr__(self, "decay_on", tuple(self.decay_on))
        self.validate()

    def validate(self) -> TrainConfig:
        """Raise :class:`MfphysError` with one clear line for any bad value (types and ranges;
        what depends on the data, such as the input width, is checked when the data is loaded)."""
        if len(self.layers) < 2 or any(n <= 0 for n in self.layers):
            raise MfphysError(f"--layers needs at least two positive widths, got {','.join(map(str, self.layers))}")
        for name, low in _INT_MINIMA.items():
            value = getattr(self, name)
            if name == "n_test" and value is None:
                continue
            if not _is_int(value):
                raise MfphysError(f"{_opt(name)} must be an integer, got {value!r}")
            if value < low:
                what = "positive" if low == 1 else f">= {low}"
                raise MfphysError(f"{_opt(name)} must be {what}, got {value}" + _INT_HINTS.get(name, ""))
        for name, (low, high, closed_low) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if not _is_real(value):
                raise MfphysError(f"{_opt(name)} must be a number, got {value!r}")
            ok = math.isfinite(value) and (value >= low if closed_low else value > low) and value < high
            if not ok:
                if not math.isinf(high):
                    what = f"a number in [{low:g}, {high:g})"
                elif closed_low:
                    what = f"a finite number >= {low:g}"
                else:
                    what = "a positive number"
                raise MfphysError(f"{_opt(name)} must be {what}, got {value}")
        for name, choices in (("mode", MODES), ("activation", tuple(model.ACTIVATIONS)), ("dataset", _DATASETS),
                              ("backend", _BACKENDS), ("dtype", _DTYPES)):
            value = getattr(self, name)
            if value not in choices:
                raise MfphysError(f"unknown {_opt(name)} {value!r}: choose one of {', '.join(choices)}")
        if self.teacher_seed != 0 and self.dataset != "teacher":
            raise MfphysError(f"--teacher-seed {self.teacher_seed} is the teacher network's seed: it needs "
                              f"--dataset teacher, not {self.dataset}")
        if not set(self.decay_on) <= set(optim.PARAM_NAMES):
            raise MfphysError(f"--decay-on takes names among pi,m,xi, got {','.join(map(str, self.decay_on))}")
        if not isinstance(self.host_noise, bool):
            raise MfphysError(f"host_noise must be True or False, got {self.host_noise!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("a configuration is a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

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


@dataclass
class TrainResult:
    """A finished run, all arrays on the host."""

    config: TrainConfig
    params: tuple  # tuple[model.Layer] of (R, N_out, N_in) NumPy arrays
    history: dict  # name -> (R, E) array, plus "lr" and "epoch_seconds" (E,)
    sampled_acc: np.ndarray  # (R, K) accuracy of each sampled sub-network
    vote_acc: np.ndarray  # (R,) accuracy of the K sub-networks' majority vote
    data: dict  # dataset summary (name, sizes, checksum, source)
    dead_inputs: np.ndarray  # (N_0,) bool: inputs constant over the training set
    backend: str
    timings: dict = field(default_factory=dict)


def load_data(config: TrainConfig, data_dir=None):
    """The dataset a config names, checked against its layer widths."""
    from . import data as data_mod

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
          callback: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train ``config.replicas`` replicas together and evaluate them (see module docstring).

    ``dataset`` may pass an already loaded :class:`mfphys.data.Dataset`; ``callback`` is
    called after every epoch with an :class:`EpochRecord`. Raises :class:`DivergenceError`
    when the loss or the parameters stop being finite.
    """
    # a diverging run overflows before its loss turns NaN: that is reported as a
    # DivergenceError below, so NumPy's floating-point warnings would only be noise
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train(config, data_dir, dataset, callback)


def _train(config, data_dir, dataset, callback) -> TrainResult:
    from . import budget

    config.validate()
    budget.check_memory(budget.train_estimate(config))  # before anything is allocated or generated
    be = get_backend(config.backend, config.dtype)
    xp, dt = be.xp, be.dtype
    t_start = time.perf_counter()
    ds = dataset if dataset is not None else load_data(config, data_dir)
    R, bp = config.replicas, config.mode == "bp"

    x_train = be.asarray(ds.x_train)
    x2_train = None if bp else x_train * x_train  # a**2 of the input layer, once (section 2)
    y_train = xp.asarray(ds.y_train)
    x_test, y_test = be.asarray(ds.x_test), xp.asarray(ds.y_test)
    P, B = x_train.shape[0], config.batch_size
    if B > P:
        raise MfphysError(f"--batch-size {B} is larger than the {P} training patterns")

    host_params = model.init_params(config.layers, replica_rngs(config.seed, R, INIT), m_std=config.init_m_std,
                                    xi_scale=config.init_xi, bp=bp, dtype=dt)
    params = tuple(model.Layer(*(be.asarray(v) for v in layer)) for layer in host_params)
    trainable = ("m",) if bp else optim.PARAM_NAMES
    state = optim.adam_init(params, trainable=trainable)
    adam_cfg = optim.AdamConfig(config.adam_b1, config.adam_b2, config.adam_eps, config.weight_decay,
                                config.decay_on)
    order_rngs = replica_rngs(config.seed, R, ORDER)
    noise_host = replica_rngs(config.seed, R, NOISE)
    noise_dev = noise_host if (config.host_noise or be.name == "numpy") else [
        be.device_rng(int(g.integers(2**32))) for g in noise_host]
    widths = config.layers[1:]
    splits = np.cumsum(widths)[:-1]

    def draw_noise(b):
        """One (R, b, N_l) standard-normal array per layer, from each replica's own stream."""
        if bp:
            return None
        draws = [g.standard_normal((b, sum(widths)), dtype=dt) for g in noise_dev]
        e = xp.asarray(np.stack(draws)) if noise_dev is noise_host else xp.stack(draws)
        return xp.split(e, splits.tolist(), axis=-1) if len(splits) else [e]

    hist = {k: np.zeros((R, config.epochs)) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    lrs, secs, eval_secs = np.zeros(config.epochs), np.zeros(config.epochs), np.zeros(config.epochs)
    n_batches = math.ceil(P / B)
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        lr = config.lr_at(epoch)
        perm = xp.asarray(np.stack([g.permutation(P) for g in order_rngs]))  # (R, P)
        loss_sum = xp.zeros(R, dtype=dt)
        correct = xp.zeros(R, dtype=dt)
        for i in range(n_batches):
            idx = perm[:, i * B:(i + 1) * B]
            xb, yb = x_train[idx], y_train[idx]
            x2b = None if bp else x2_train[idx]
            loss, grads, logits = model.loss_and_grad(params, xb, yb, draw_noise(idx.shape[1]),
                                                      activation=config.activation, bp=bp, x2=x2b)
            params, state = optim.adam_update(grads, state, params, lr=lr, cfg=adam_cfg)
            loss_sum += loss * idx.shape[1]
            correct += (logits.argmax(axis=-1) == yb).sum(axis=-1)
        e = epoch - 1
        hist["train_loss"][:, e] = be.to_numpy(loss_sum) / P
        hist["train_acc"][:, e] = be.to_numpy(correct) / P
        if not np.all(np.isfinite(hist["train_loss"][:, e])):
            bad = int(np.flatnonzero(~np.isfinite(hist["train_loss"][:, e]))[0])
            raise DivergenceError(f"training diverged at epoch {epoch} (replica {bad}, loss is not finite): "
                                  f"try a smaller --lr than {config.lr}")
        be.synchronize()
        t_eval = time.perf_counter()
        logits = model.predict(params, x_test, activation=config.activation)
        tl, _, _ = model.cross_entropy(logits, xp.broadcast_to(y_test, logits.shape[:-1]))
        hist["test_loss"][:, e] = be.to_numpy(tl)
        hist["test_acc"][:, e] = be.to_numpy((logits.argmax(axis=-1) == y_test).sum(axis=-1)) / y_test.shape[0]
        be.synchronize()
        lrs[e], secs[e], eval_secs[e] = lr, time.perf_counter() - t0, time.perf_counter() - t_eval
        if callback is not None:
            callback(EpochRecord(epoch, hist["train_loss"][:, e], hist["train_acc"][:, e], hist["test_loss"][:, e],
                                 hist["test_acc"][:, e], lr, secs[e]))
    t_train = time.perf_counter() - t_start

    host = tuple(model.Layer(*(be.to_numpy(v) for v in layer)) for layer in params)
    if not all(np.all(np.isfinite(v)) for layer in host for v in layer):
        raise DivergenceError("training diverged: parameters are not finite at the end; try a smaller --lr")
    t0 = time.perf_counter()
    sampled, voted = evaluate_sampled(host, ds.x_test, ds.y_test, n_draws=config.eval_samples,
                                      rngs=replica_rngs(config.seed, R, EVAL), activation=config.activation, be=be)
    t_eval = time.perf_counter() - t0
    from .data import dataset_summary, dead_inputs

    hist["lr"], hist["epoch_seconds"], hist["eval_seconds"] = lrs, secs, eval_secs
    return TrainResult(config, host, hist, sampled, voted, dataset_summary(ds), dead_inputs(ds.x_train),
                       be.describe(), {"train_seconds": t_train, "sampled_eval_seconds": t_eval})


#: sampled sub-networks drawn and evaluated together: bounds the memory of the sampled
#: evaluation (R * DRAW_BLOCK weight matrices) whatever the number of draws. The draws depend
#: on it (each block takes its numbers from the replica's stream in turn), never on memory.
DRAW_BLOCK = 16


def evaluate_sampled(params, x, y, *, n_draws: int, rngs, activation: str, be=None):
    """Accuracy of ``n_draws`` sampled sub-networks per replica (R, K) and of their vote (R,).

    ``params`` are host arrays; weights are drawn on the host (backend-independent), in
    blocks of :data:`DRAW_BLOCK` draws, and the forward passes run on ``be``.
    """
    R = params[0].m.shape[0]
    if n_draws == 0:
        return np.zeros((R, 0)), np.full(R, np.nan)
    be = be or get_backend("numpy", str(params[0].m.dtype))
    xd, yd = be.asarray(x), be.xp.asarray(y)
    acc = np.zeros((R, n_draws))
    votes = 0
    for k0 in range(0, n_draws, DRAW_BLOCK):
        k = min(DRAW_BLOCK, n_draws - k0)
        ws = model.sample_weights(params, rngs, k, xp=be.xp)
        logits = model.predict_sampled(ws, xd, activation=activation)  # (R, k, P, C)
        acc[:, k0:k0 + k] = be.to_numpy((logits.argmax(axis=-1) == yd).sum(axis=-1)) / len(y)
        votes = votes + model.vote_counts(logits)
        del ws, logits
    vote = be.to_numpy((votes.argmax(axis=-1) == yd).sum(axis=-1)) / len(y)
    return acc, vote
