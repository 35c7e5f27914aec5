"""A third model family, defined outside mfphys: a spike-and-slab softmax perceptron on a teacher task.

It shows what a model family from another package needs, and proves that one plugs in without
touching a shared file of mfphys (docs/design.md, "Adding a model family"): the package declares
the entry point ``toy = mfphys_toy.family:FAMILY`` in the group ``mfphys.families``
(``mfphys_toy-0.1.dist-info/entry_points.txt`` beside this folder, as ``pip install`` would write
it) and builds everything from mfphys' shared core: :mod:`mfphys.layers` (the spike-and-slab
moments and sampling), :mod:`mfphys.order`, :mod:`mfphys.dynamics`, :mod:`mfphys.storage` (the
attributes every run file has, checkpoints) and :mod:`mfphys.perturbation`.

The model (docs/model.md sections 1-3 with a single layer): one weight matrix ``(R, C, N)`` from
``N`` Gaussian inputs to ``C`` classes, each weight absent with probability ``pi``, else
Normal(``m``, ``xi``); the pre-activations are Gaussian with mean ``x . W_mean`` and variance
``x^2 . W_var`` and are sampled by the reparameterisation ``z = mu + sqrt(var) eps``; the loss is
the cross-entropy of ``z``, minimised by plain SGD on ``(pi, m, xi)`` kept inside their bounds.
Labels come from a teacher: ``y = argmax(x T)``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from mfphys import order
from mfphys.backend import generator_from_state, replica_rngs
from mfphys.budget import Estimate
from mfphys.dynamics import Dynamics, dynamics_due
from mfphys.errors import MfphysError
from mfphys.family import ModelFamily, ScanAxes
from mfphys.layers import Layer, log_softmax, moments, onehot, sample_weights

NAME = "toy"
#: the one weight matrix, as ``--matrix`` names it
MATRIX = "readout"
#: random streams of a replica (children of SeedSequence(seed + r)): mini-batch order, noise,
#: initial parameters, the sampled evaluation
ORDER, NOISE, INIT, EVAL = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """One toy run: ``n_in`` inputs, ``n_classes`` outputs, ``n_train``/``n_test`` teacher examples."""

    n_in: int = 12
    n_classes: int = 3
    n_train: int = 96
    n_test: int = 64
    epochs: int = 4
    batch_size: int = 16
    lr: float = 0.5
    replicas: int = 2
    seed: int = 0
    teacher_seed: int = 0
    eval_samples: int = 4
    mode: str = "gbp"
    dtype: str = "float64"
    backend: str = "numpy"

    def validate(self) -> ToyConfig:
        for f in ("n_in", "n_classes", "n_train", "n_test", "epochs", "batch_size", "replicas", "eval_samples"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise MfphysError(f"{f} must be an integer >= 1, got {v!r}")
        if self.n_classes < 2:
            raise MfphysError(f"n_classes must be >= 2, got {self.n_classes}")
        if self.batch_size > self.n_train:
            raise MfphysError(f"batch_size {self.batch_size} is larger than n_train {self.n_train}")
        if not (isinstance(self.lr, (int, float)) and np.isfinite(self.lr) and self.lr > 0):
            raise MfphysError(f"lr must be a number > 0, got {self.lr!r}")
        if self.mode != "gbp" or self.dtype != "float64" or self.backend != "numpy":
            raise MfphysError("the toy family trains mode gbp, float64, on NumPy only")
        for f in ("seed", "teacher_seed"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < 0:
                raise MfphysError(f"{f} must be an integer >= 0")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ToyConfig:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        unknown = set(doc) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise MfphysError(f"unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**doc).validate()


# --- the numerics: pure functions of arrays --------------------------------------------------------


def teacher_data(cfg: ToyConfig):
    """``(x_train, y_train, x_test, y_test)``: Gaussian inputs labelled by a Gaussian teacher."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.teacher_seed, spawn_key=(99,)))
    teacher = rng.standard_normal((cfg.n_in, cfg.n_classes))
    x = rng.standard_normal((cfg.n_train + cfg.n_test, cfg.n_in))
    y = (x @ teacher).argmax(axis=1)
    return x[: cfg.n_train], y[: cfg.n_train], x[cfg.n_train:], y[cfg.n_train:]


def init_params(cfg: ToyConfig) -> Layer:
    shape = (cfg.n_classes, cfg.n_in)
    m = np.stack([g.standard_normal(shape) / np.sqrt(cfg.n_in) for g in replica_rngs(cfg.seed, cfg.replicas, INIT)])
    return Layer(np.full(m.shape, 0.1), m, np.full(m.shape, 0.01))


def loss_and_grads(params: Layer, x, y, eps):
    """Mean cross-entropy per replica (R,) and its gradients with respect to (pi, m, xi).

    ``x`` (R, B, N), ``y`` (R, B), ``eps`` (R, B, C). With ``a = (1 - pi) m`` and
    ``v = (1 - pi)(xi + pi m^2)`` (:func:`mfphys.layers.moments`): ``z = x.a + sqrt(x^2.v) eps``."""
    pi, m, xi = params
    a, v = moments(pi, m, xi)
    mu = np.einsum("rbn,rcn->rbc", x, a)
    s = np.sqrt(np.einsum("rbn,rcn->rbc", x * x, v) + 1e-12)
    z = mu + s * eps
    logp = log_softmax(z)
    oh = onehot(y, z.shape[-1], z.dtype)
    loss = -(oh * logp).sum(axis=-1).mean(axis=-1)
    g = (np.exp(logp) - oh) / z.shape[1]
    da = np.einsum("rbc,rbn->rcn", g, x)
    dv = np.einsum("rbc,rbn->rcn", g * eps / (2 * s), x * x)
    q = 1 - pi
    return loss, Layer(-m * da + (m * m * (1 - 2 * pi) - xi) * dv, q * da + 2 * q * pi * m * dv, q * dv)


def mean_field_accuracy(params: Layer, x, y) -> np.ndarray:
    """Accuracy (R,) of the noise-free mean-field network."""
    a, _ = moments(*params)
    return (np.einsum("pn,rcn->rpc", x, a).argmax(axis=-1) == y).mean(axis=-1)


def sampled_errors(params: Layer, x, y, rngs, samples: int) -> np.ndarray:
    """Test error in percent (R, samples) of sampled networks (docs/model.md section 5)."""
    (w,) = sample_weights((params,), rngs, samples)  # (R, K, C, N)
    return 100.0 * (np.einsum("pn,rkcn->rkpc", x, w).argmax(axis=-1) != y).mean(axis=-1)


# --- the steps -------------------------------------------------------------------------------------


class Setup(NamedTuple):
    config: ToyConfig
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dynamics_every: int
    data: dict


class ToyState(NamedTuple):
    epoch: int
    params: Layer
    gens: dict  # "order"/"noise" -> one Generator per replica
    history: dict  # "train_loss", "test_acc" (R, E); "epoch_seconds" (E,)
    dynamics: Dynamics
    steps: int

    @property
    def rng(self) -> dict:
        """The random streams' states, as run files store them (docs/file-format.md "Checkpoints")."""
        return {k: [g.bit_generator.state for g in gens] for k, gens in self.gens.items()}


class Record(NamedTuple):
    """What a progress callback sees after an epoch."""

    epoch: int
    train_loss: np.ndarray
    test_acc: np.ndarray


class ToyResult(NamedTuple):
    config: ToyConfig
    params: tuple  # (Layer,): the one weight matrix, as every family's results hold a tuple of them
    history: dict
    dynamics: Dynamics
    evaluation: dict | None
    data: dict
    timings: dict
    complete: bool
    state: ToyState | None
    backend: str = "numpy"


def _record_dynamics(dyn: Dynamics, epoch: int, params: Layer) -> Dynamics:
    sample = {k: np.asarray(v) for k, v in order.training_order((params,)).items()}
    snaps, snap_epochs = dyn.snaps, dyn.snap_epochs
    if epoch in order.snapshot_epochs(max(epoch, 1)):
        snaps, snap_epochs = snaps + (order.histogram_snapshot((params,)),), snap_epochs + (epoch,)
    return Dynamics(dyn.epochs + (epoch,), dyn.samples + (sample,), snap_epochs, snaps)


def prepare(cfg: ToyConfig, dynamics_every: int) -> Setup:
    cfg.validate()
    xtr, ytr, xte, yte = teacher_data(cfg)
    return Setup(cfg, xtr, ytr, xte, yte, dynamics_every, {"name": "teacher", "n_train": cfg.n_train,
                                                           "n_test": cfg.n_test})


def init_state(setup: Setup) -> ToyState:
    cfg = setup.config
    params = init_params(cfg)
    gens = {"order": replica_rngs(cfg.seed, cfg.replicas, ORDER), "noise": replica_rngs(cfg.seed, cfg.replicas, NOISE)}
    R = cfg.replicas
    history = {"train_loss": np.zeros((R, 0)), "test_acc": np.zeros((R, 0)), "epoch_seconds": np.zeros(0)}
    return ToyState(0, params, gens, history, _record_dynamics(Dynamics(), 0, params), 0)


def train_epoch(setup: Setup, state: ToyState):
    t0 = time.perf_counter()
    cfg = setup.config
    B, C = cfg.batch_size, cfg.n_classes
    pi, m, xi = state.params
    perms = [g.permutation(cfg.n_train) for g in state.gens["order"]]
    losses = np.zeros(cfg.replicas)
    batches = cfg.n_train // B
    for b in range(batches):
        idx = np.stack([p[b * B:(b + 1) * B] for p in perms])
        eps = np.stack([g.standard_normal((B, C)) for g in state.gens["noise"]])
        loss, grad = loss_and_grads(Layer(pi, m, xi), setup.x_train[idx], setup.y_train[idx], eps)
        pi = np.clip(pi - cfg.lr * grad.pi, 0.0, 1.0)
        m = m - cfg.lr * grad.m
        xi = np.maximum(xi - cfg.lr * grad.xi, 0.0)
        losses += loss / batches
    params, epoch = Layer(pi, m, xi), state.epoch + 1
    acc = mean_field_accuracy(params, setup.x_test, setup.y_test)
    h = state.history
    history = {"train_loss": np.concatenate([h["train_loss"], losses[:, None]], axis=1),
               "test_acc": np.concatenate([h["test_acc"], acc[:, None]], axis=1),
               "epoch_seconds": np.append(h["epoch_seconds"], time.perf_counter() - t0)}
    dyn = state.dynamics
    if dynamics_due(epoch, cfg.epochs, setup.dynamics_every):
        dyn = _record_dynamics(dyn, epoch, params)
    new = ToyState(epoch, params, state.gens, history, dyn, state.steps + batches)
    return new, Record(epoch, losses, acc)


def result_of(setup: Setup, state: ToyState, evaluation=None, *, keep_state: bool = True) -> ToyResult:
    timings = {"train_seconds": float(state.history["epoch_seconds"].sum())}
    return ToyResult(setup.config, (state.params,), state.history, state.dynamics, evaluation, setup.data, timings,
                     evaluation is not None, state if keep_state else None)


def finish(setup: Setup, state: ToyState, keep_state: bool) -> ToyResult:
    cfg = setup.config
    rngs = replica_rngs(cfg.seed, cfg.replicas, EVAL)
    err = sampled_errors(state.params, setup.x_test, setup.y_test, rngs, cfg.eval_samples)
    return result_of(setup, state, {"test_acc_sampled": 1.0 - err.mean(axis=1) / 100.0}, keep_state=keep_state)


# --- the run file ------------------------------------------------------------------------------------


def _var(dims, values, long_name, units="1"):
    import xarray as xr

    return xr.Variable(dims, np.asarray(values), attrs={"long_name": long_name, "units": units})


def run_to_dataset(result: ToyResult, *, command=None, labels=None, tol=order.TOL, xi_tol=order.XI_TOL,
                   xi_zero=order.XI_ZERO):
    import xarray as xr

    from mfphys import storage

    cfg = result.config
    E = result.history["train_loss"].shape[1]
    coords = {"epoch": np.arange(1, E + 1), "replica": np.arange(cfg.replicas), "layer": [1]}
    data = {"train_loss": _var(("replica", "epoch"), result.history["train_loss"], "mean training loss", "nats"),
            "test_acc": _var(("replica", "epoch"), result.history["test_acc"], "mean-field test accuracy"),
            "epoch_seconds": _var(("epoch",), result.history["epoch_seconds"], "time of the epoch", "s")}
    for k, v in zip(("pi", "m", "xi"), result.params[0]):
        data[k] = _var(("replica", "post", "pre"), v, f"{k} of the readout matrix")
    for k, v in order.run_order(result.params, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero).items():
        data[k] = xr.Variable(("replica", "layer"), np.asarray(v), attrs=storage.long_name(k))
    if result.evaluation is not None:
        data["test_acc_sampled"] = _var(("replica",), result.evaluation["test_acc_sampled"],
                                        "test accuracy of sampled networks, mean over draws")
    dyn = {}
    storage.dynamics_variables(result.dynamics, coords, dyn)
    data.update({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in dyn.items()})
    ds = xr.Dataset(data, coords=coords)
    tolerances = {"tol": tol, "xi_tol": xi_tol, "xi_zero": xi_zero}
    ds.attrs = {"mfphys_kind": "run", "model": NAME, "title": f"mfphys toy run: teacher {cfg.n_in}-{cfg.n_classes}",
                "dataset": "teacher", "architecture": f"{cfg.n_in}-{cfg.n_classes}",
                **storage.provenance_attrs(result, tolerances, command or "mfphys_toy"),
                **storage.label_attrs(**(labels or {}))}
    return ds


def checkpoint_to_dataset(result: ToyResult, *, status, writer=None, segments=None, dynamics_every=None,
                          command=None, created=None, history=None, attrs=None):
    from mfphys import storage

    ds = run_to_dataset(result, command=command)
    ds.attrs["step_count"] = int(result.state.steps)
    return storage.checkpoint_attrs(ds, result.state, status=status, writer=writer, segments=segments,
                                    dynamics_every=dynamics_every, created=created, history=history, attrs=attrs)


def check_parameters(ds, path) -> None:
    where = f"{path}: " if path is not None else ""
    missing = [k for k in ("pi", "m", "xi") if k not in ds]
    if missing:
        raise MfphysError(f"{where}damaged run file: {', '.join(missing)} missing")
    shapes = {ds[k].shape for k in ("pi", "m", "xi")}
    if len(shapes) != 1 or not all(np.isfinite(ds[k].values).all() for k in ("pi", "m", "xi")):
        raise MfphysError(f"{where}damaged run file: pi, m and xi differ in shape or are not finite")


def params_from_dataset(ds) -> tuple:
    return (Layer(*(np.asarray(ds[k].values) for k in ("pi", "m", "xi"))),)


def state_from_dataset(ds, path=None) -> ToyState:
    from mfphys import storage

    cfg = ToyConfig.from_json(ds.attrs["config"])
    epoch, steps, rng = storage.checkpoint_header(ds, path, replicas=cfg.replicas, count_attr="step_count",
                                                  check=lambda: check_parameters(ds, path))
    gens = {k: [generator_from_state(s) for s in rng[k]] for k in ("order", "noise")}
    history = {"train_loss": ds["train_loss"].values, "test_acc": ds["test_acc"].values,
               "epoch_seconds": ds["epoch_seconds"].values}
    return ToyState(epoch, params_from_dataset(ds)[0], gens, history, storage.dynamics_from_dataset(ds), steps)


# --- the family --------------------------------------------------------------------------------------

OPTIONS = {"n_in": "int", "n_train": "int", "n_classes": "int", "n_test": "int", "epochs": "int", "batch_size": "int",
           "lr": "float", "replicas": "int", "seed": "int", "teacher_seed": "int", "eval_samples": "int", "mode": "str"}


def _check_cell(config, options) -> None:
    config.validate()


class Toy(ModelFamily):
    """The toy family as mfphys sees it (:class:`mfphys.family.ModelFamily`)."""

    name = NAME
    title = "toy"
    unit = "layer"
    target_option = "matrix"
    connections_text = "connections of the readout matrix"

    @property
    def config_class(self) -> type:
        return ToyConfig

    def presets(self) -> Mapping:
        return {"small": ToyConfig()}

    def describe_config(self, config) -> str:
        return f"{config.n_in}-{config.n_classes}"

    def prepare(self, config, *, data_dir=None, dataset=None, dynamics_every=None):
        from mfphys.dynamics import DYNAMICS_EVERY

        return prepare(config, DYNAMICS_EVERY if dynamics_every is None else dynamics_every)

    def init_state(self, setup):
        return init_state(setup)

    def resume_state(self, setup, checkpoint):
        return checkpoint

    def train_epoch(self, setup, state):
        return train_epoch(setup, state)

    def finished(self, setup, state) -> bool:
        return state.epoch >= setup.config.epochs

    def finish(self, setup, state, *, keep_state: bool = False):
        return finish(setup, state, keep_state)

    def current_result(self, setup, state):
        return result_of(setup, state)

    def run_to_dataset(self, result, *, command=None, labels=None, **options):
        return run_to_dataset(result, command=command, labels=labels, **options)

    def checkpoint_to_dataset(self, result, **kwargs):
        return checkpoint_to_dataset(result, **kwargs)

    def state_from_dataset(self, ds, path=None):
        return state_from_dataset(ds, path)

    def params_from_dataset(self, ds):
        return params_from_dataset(ds)

    def check_parameters(self, ds, path) -> None:
        check_parameters(ds, path)

    def order_reports(self, ds, tolerances: Mapping) -> list:
        return order.layer_reports(params_from_dataset(ds), **tolerances)

    def estimate(self, config, *, state: bool = True, dynamics_every=None):
        c = config
        weights = 3 * c.replicas * c.n_in * c.n_classes * 8
        data = (c.n_train + c.n_test) * (c.n_in + 1) * 8
        samples = len(order.snapshot_epochs(c.epochs)) + c.epochs // max(dynamics_every or 1, 1) + 1
        dynamics = samples * c.replicas * (16 + 3 * (order.N_BINS + 1)) * 8
        disk = weights + 3 * c.replicas * c.epochs * 8 + dynamics + (512 << 10)  # + netCDF headers and attributes
        memory = {"weights": 4 * weights, "data": data, "batch": 4 * c.replicas * c.batch_size * c.n_in * 8}
        return Estimate(memory, sum(memory.values()), disk)

    def cost(self, config) -> float:
        return float(config.epochs * config.n_train * config.n_in * config.replicas)

    def scan_axes(self) -> ScanAxes:
        defaults = ToyConfig()
        return ScanAxes(OPTIONS, ("n_in", "n_train"), ("replicas",),
                        lambda given: {k: getattr(defaults, k) for k in OPTIONS},
                        lambda options: ToyConfig(**{k: options[k] for k in OPTIONS}).validate(),
                        _check_cell, lambda fixed: "teacher-toy")

    def scan_matrices(self, cells) -> list:
        return [1]

    def connections(self, options) -> list[int]:
        return [int(options["n_in"]) * int(options["n_classes"])]

    def perturb_targets(self, config) -> tuple[str, ...]:
        return (MATRIX,)

    def perturb_run(self, run_path, *, target=None, matrix=None, fractions=None, samples: int = 4, seed=None,
                    tol=None, xi_tol=None, exact: bool = False, callback=None, **_):
        """The targeted perturbation (docs/model.md section 7.3) of the readout matrix: the run's seed and
        tolerances unless given, as the built-in families do."""
        from mfphys import storage
        from mfphys.perturbation import FRACTIONS, perturbation_dataset, targeted_removal

        target = target or matrix or MATRIX
        if target != MATRIX:
            raise MfphysError(f"{run_path}: the toy model has one matrix, {MATRIX!r}; got {target!r}")
        ds = storage.read_dataset(run_path)
        check_parameters(ds, run_path)
        cfg = ToyConfig.from_json(ds.attrs["config"])
        tolerances = storage.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
        seed = cfg.seed if seed is None else int(seed)
        _, _, x, y = teacher_data(cfg)
        (layer,) = params_from_dataset(ds)

        def errors(changed):
            rngs = replica_rngs(seed, cfg.replicas, EVAL)
            return sampled_errors(changed, x, y, rngs, samples), 100.0 * (1 - mean_field_accuracy(changed, x, y))

        fr = FRACTIONS if fractions is None else fractions
        res = targeted_removal(layer, errors, fr, samples=samples, seed=seed, tol=tolerances["tol"],
                               xi_tol=tolerances["xi_tol"], callback=callback)
        return perturbation_dataset(res, attrs={"source": str(run_path), "model": NAME, "matrix": MATRIX,
                                                "task": "teacher", "candidates": "every connection",
                                                "config": cfg.to_json(), "samples": samples, "seed": seed,
                                                "tol": tolerances["tol"], "xi_tol": tolerances["xi_tol"]})


FAMILY = Toy()
