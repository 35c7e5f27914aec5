"""Recurrent runs as ``xarray.Dataset`` objects (schema: docs/file-format.md "Recurrent runs").

The recurrent counterpart of :func:`mfphys.store.run_to_dataset`, with the same conventions
(``mfphys_kind = "run"``, the configuration as JSON, provenance attributes, ``long_name`` and
``units`` on every variable) and the attribute ``model = "rnn"`` that tells the two families
apart (a feed-forward file has none, or ``"ffn"``). As a feed-forward run file, it exists while
the run trains and holds its state (:func:`rnn_checkpoint_to_dataset`, read back by
:func:`state_from_dataset`), so that :mod:`mfphys.runfile` can continue it (docs/model-rnn.md
section 9, docs/file-format.md "Checkpoints").
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from ... import order as order_mod
from ...errors import MfphysError
from ...layers import Layer, architecture
from .config import RnnConfig
from .evaluate import EVAL_MODES
from .model import MATRICES, RnnParams
from .order import matrix_order
from .tasks import Multisensory

MODEL = "rnn"
#: the sampled evaluation modes (docs/model-rnn.md section 5): a draw axis
SAMPLED = ("quenched", "annealed")

_MODE_TEXT = {"mf": "noise-free mean-field network (eps = 0)", "noisy": "mean-field dynamics with fresh noise",
              "quenched": "sampled networks, weights drawn once per sequence",
              "annealed": "sampled networks, weights drawn afresh at every step"}


def _v(dims, values, long_name, units="1"):
    return xr.Variable(dims, np.asarray(values), attrs={"long_name": long_name, "units": units})


def _mode_name(mode: str) -> str:
    """The evaluation mode ``mean`` is stored as ``mf`` (as the perturbation files' ``error_*_mf``):
    "mean" would read as a mean over draws."""
    return "mf" if mode == "mean" else mode


def architecture_label(config: RnnConfig) -> str:
    """``28-100-10 x28``: N_in-N-N_out and the number of steps (the multisensory task: ``5-150-2``)."""
    n_in, n_out = config.io
    label = architecture((n_in, config.n, n_out))
    return f"{label} x{config.steps}" if config.task == "mnist" else label


def rnn_run_to_dataset(result, *, tol: float = order_mod.TOL, xi_tol: float = order_mod.XI_TOL,
                       xi_zero: float = order_mod.XI_ZERO, command: str | None = None, labels: dict | None = None,
                       preset: str | None = None) -> xr.Dataset:
    """The run-file Dataset of a :class:`mfphys.rnn.RnnResult` (docs/file-format.md "Recurrent runs").

    ``labels``: the ``name``/``tags``/``note`` attributes (:func:`mfphys.store.label_attrs`);
    ``preset``: the preset the run started from, stored as the attribute ``preset``. The part
    of a run a checkpoint stores (``result.complete`` False: not evaluated yet) gets status
    "running" and no evaluation variables (:func:`rnn_checkpoint_to_dataset` adds its state).
    """
    cfg: RnnConfig = result.config
    R = cfg.replicas
    E = result.history["train_loss"].shape[1]
    coords = {"epoch": np.arange(1, E + 1), "replica": np.arange(R), "matrix": list(MATRICES)}
    data = {
        "train_loss": _v(("replica", "epoch"), result.history["train_loss"],
                         "mean training loss over the epoch's mini-batches (noisy mean field; NaN once stopped)",
                         "nats" if cfg.task == "mnist" else "1"),
        "test_acc": _v(("replica", "epoch"), result.history["test_acc"],
                       "test accuracy after the epoch, noise-free mean field (NaN: multisensory task)"),
        "epoch_seconds": _v(("epoch",), result.history["epoch_seconds"], "wall-clock time of the epoch", "s"),
        "stop_epoch": _v(("replica",), np.asarray(result.stop_epoch, dtype=np.int64),
                         "the last epoch the replica trained (stop rule, docs/model-rnn.md section 7)"),
    }
    ev = result.evaluation if result.evaluation is not None else {}
    draws = 0
    if cfg.task == "mnist":
        for mode in EVAL_MODES:
            if f"acc_{mode}" not in ev:
                continue
            name, acc = f"test_acc_{_mode_name(mode)}", np.asarray(ev[f"acc_{mode}"], dtype=float)
            if mode in SAMPLED:
                draws = acc.shape[1]
                data[name] = _v(("replica",), acc.mean(axis=1), f"test accuracy, {_MODE_TEXT[mode]}, mean over draws")
                data[f"{name}_draw"] = _v(("replica", "draw"), acc, f"test accuracy of each draw, {_MODE_TEXT[mode]}")
            else:
                data[name] = _v(("replica",), acc, f"test accuracy, {_MODE_TEXT[_mode_name(mode)]}")
        if "acc_quenched_vote" in ev:
            data["test_acc_quenched_vote"] = _v(("replica",), ev["acc_quenched_vote"],
                                                "test accuracy of the majority vote of the quenched draws")
    elif ev:
        task = Multisensory()
        coords["modality"] = list(task.modalities)
        coords["rate"] = xr.Variable(("rate",), np.asarray(task.freqs, dtype=float),
                                     attrs={"long_name": "event rate of the stimulus", "units": "Hz"})
        for mode in EVAL_MODES:
            if f"p_high_{mode}" not in ev:
                continue
            m, p, acc = _mode_name(mode), np.asarray(ev[f"p_high_{mode}"]), np.asarray(ev[f"psychometric_acc_{mode}"])
            lead = ("replica", "draw") if mode in SAMPLED else ("replica",)
            if mode in SAMPLED:
                draws = p.shape[1]
            data[f"p_high_{m}"] = _v(lead + ("modality", "rate"), p,
                                     f"P(choose high) per modality and event rate, {_MODE_TEXT[m]}")
            data[f"psychometric_acc_{m}"] = _v(lead + ("modality",), acc,
                                               f"fraction of correct choices per modality, {_MODE_TEXT[m]}")
    if draws:
        coords["draw"] = np.arange(draws)
    for matrix, layer in zip(MATRICES, result.params):
        dims = ("replica", f"post_{matrix}", f"pre_{matrix}")
        for k, v in zip(("pi", "m", "xi"), layer):
            data[f"{k}_{matrix}"] = _v(dims, v, f"{k} of the {matrix} matrix (from unit pre to unit post)")
    for k, v in matrix_order(result.params, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero).items():
        data[k] = xr.Variable(("replica", "matrix"), v, attrs=_order_attrs(k))
    edges = order_mod.histogram_edges(result.params)
    for k, e in edges.items():
        coords[f"{k}_edge"] = e
        counts = np.stack([order_mod.histogram(getattr(layer, k), e) for layer in result.params], axis=1)
        data[f"hist_{k}"] = _v(("replica", "matrix", f"{k}_bin"), counts,
                               f"histogram of {k} per matrix (edges: {k}_edge)", "connections")
    if result.dynamics is not None:
        from ...storage import dynamics_variables

        dyn = {}
        dynamics_variables(result.dynamics, coords, dyn, dim="matrix", long=_order_attrs)
        data.update({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in dyn.items()})
    ds = xr.Dataset(data, coords=coords)
    from ...storage import provenance_attrs

    arch = architecture_label(cfg)
    dataset = result.data.get("name", cfg.task)
    ds.attrs = {
        "mfphys_kind": "run",
        "model": MODEL,
        "title": f"mfphys rnn {cfg.mode} run: {dataset} {arch}",
        "task": cfg.task,
        "dataset": str(dataset),
        "architecture": arch,
        **provenance_attrs(result, dict(tol=tol, xi_tol=xi_tol, xi_zero=xi_zero), command or "mfphys.rnn.train_rnn"),
    }
    if "checksum" in result.data:
        ds.attrs["data_checksum"] = str(result.data["checksum"])
    if preset:
        ds.attrs["preset"] = preset
    ds.attrs.update(labels or {})
    return ds


def _order_attrs(name: str) -> dict:
    attrs = order_mod_attrs(name.removesuffix("_nodiag"))
    if name.endswith("_nodiag"):
        attrs["long_name"] += ", recurrent matrix without its diagonal (other matrices unchanged)"
    return attrs


def rnn_checkpoint_to_dataset(result, *, status: str, writer: dict | None = None, segments=None,
                              dynamics_every: int | None = None, command: str | None = None,
                              created: str | None = None, history: str | None = None,
                              attrs: dict | None = None) -> xr.Dataset:
    """A resumable recurrent run file: :func:`rnn_run_to_dataset` of ``result`` (finished or the
    run so far) plus its state ``result.state`` (docs/file-format.md "Checkpoints"): the
    optimizer's moments ``opt_mu_<k>_<matrix>`` (Adam) and ``opt_nu_<k>_<matrix>``, ``active``
    (replica,), and the attributes of every resumable file (:func:`mfphys.store.checkpoint_attrs`)
    with ``opt_count``. ``attrs`` (the labels, ``preset``, a scan cell's) are added to the file."""
    from ...storage import checkpoint_attrs

    state = result.state
    ds = rnn_run_to_dataset(result, command=command)
    name = result.config.optimizer.name
    for matrix, mu, nu in zip(MATRICES, state.opt.mu, state.opt.nu):
        dims = ("replica", f"post_{matrix}", f"pre_{matrix}")
        for k in ("pi", "m", "xi"):
            for which, arr, what in (("mu", mu, "first moment"), ("nu", nu, "average of the squared gradient")):
                if getattr(arr, k) is not None:
                    ds[f"opt_{which}_{k}_{matrix}"] = _v(dims, getattr(arr, k),
                                                         f"{name}'s {what} of {k} of the {matrix} matrix (checkpoint)")
    ds["active"] = _v(("replica",), np.asarray(state.active, dtype=np.int8),
                      "1 while the replica trains, 0 once it stopped (stop rule, docs/model-rnn.md section 7)")
    ds.attrs["opt_count"] = int(state.opt.count)
    ds.attrs["replicas_active"] = int(np.count_nonzero(state.active))
    return checkpoint_attrs(ds, state, status=status, writer=writer, segments=segments,
                            dynamics_every=dynamics_every, created=created, history=history, attrs=attrs)


def state_from_dataset(ds: xr.Dataset, path=None):
    """The :class:`mfphys.rnn.train.RnnState` (host arrays) a recurrent run file stores, to
    resume it; one clear :class:`MfphysError` for a file that has none or a damaged one."""
    from ...storage import checkpoint_header, dynamics_from_dataset, stored_like
    from .optim import OptState
    from .train import CURVES, SERIES, RnnState

    where = f"{path}: " if path is not None else ""
    cfg = config_from_attrs(ds.attrs, path)
    n, count, rng = checkpoint_header(ds, path, replicas=cfg.replicas, count_attr="opt_count",
                                      kind="recurrent run", check=lambda: check_parameters(ds, path))
    R = cfg.replicas

    def damaged(what):
        return MfphysError(f"{where}damaged run file: {what}")

    params = params_from_dataset(ds)
    trainable = cfg.spec().trainable(bp=cfg.mode == "bp")
    moments = {}
    for which in ("mu", "nu"):
        layers = []
        for matrix, layer, kinds in zip(MATRICES, params, trainable):
            arrays = []
            for k in ("pi", "m", "xi"):
                name = f"opt_{which}_{k}_{matrix}"
                if k not in kinds or (which == "mu" and cfg.optimizer.name != "adam"):
                    arrays.append(None)
                    continue
                arrays.append(stored_like(ds, name, layer.m, damaged))
            layers.append(Layer(*arrays))
        moments[which] = RnnParams(*layers)
    history = {}
    for k in CURVES + SERIES:
        if k not in ds:
            raise damaged(f"{k} is missing")
        history[k] = np.asarray(ds[k].values, dtype=np.float64)
    for k in ("active", "stop_epoch"):
        if k not in ds or ds[k].shape != (R,):
            raise damaged(f"{k} is missing or has the wrong shape")
    try:
        seconds = float(json.loads(ds.attrs.get("timings", "{}")).get("train_seconds", 0.0))
    except (TypeError, ValueError, AttributeError):
        seconds = 0.0
    return RnnState(n, params, OptState(count, moments["mu"], moments["nu"]), rng, ds["active"].values.astype(bool),
                    ds["stop_epoch"].values.astype(np.int64), history, dynamics_from_dataset(ds, "matrix"), seconds)


def order_mod_attrs(name: str) -> dict:
    """``long_name`` and ``units`` of an order parameter, as the feed-forward files have them."""
    from ...storage import long_name

    return long_name(name)


def config_from_attrs(attrs, path=None) -> RnnConfig:
    """The :class:`RnnConfig` of a recurrent run file, from its ``config`` attribute (validated)."""
    from ...storage import config_of

    return config_of(attrs, RnnConfig, path, what="a recurrent configuration")


def params_from_dataset(ds: xr.Dataset) -> RnnParams:
    """The (pi, m, Xi) arrays of the three matrices of a recurrent run file."""
    return RnnParams(*(Layer(*(ds[f"{k}_{matrix}"].values for k in ("pi", "m", "xi"))) for matrix in MATRICES))


def check_parameters(ds: xr.Dataset, path) -> None:
    """A damaged or hand-edited recurrent run file is refused with what is wrong (one line)."""
    cfg = config_from_attrs(ds.attrs, path)
    R = int(ds.sizes.get("replica", 0))
    for matrix, shape in zip(MATRICES, cfg.spec().shapes):
        for k in ("pi", "m", "xi"):
            name = f"{k}_{matrix}"
            if name not in ds:
                raise MfphysError(f"{path}: damaged run file: {name} is missing (a recurrent run has pi, m, xi of "
                                  f"the {', '.join(MATRICES)} matrices)")
            if ds[name].shape != (R, *shape):
                raise MfphysError(f"{path}: damaged run file: {name} has shape {ds[name].shape}, expected "
                                  f"{(R, *shape)}")
            if ds[name].dtype.kind != "f":
                raise MfphysError(f"{path}: damaged run file: {name} is not floating-point ({ds[name].dtype})")
