"""The feed-forward run file (docs/file-format.md): a :class:`~mfphys.models.ffn.train.TrainResult`
as an ``xarray.Dataset`` and back.

A run file holds the learning curves, the final ``pi``, ``m``, ``Xi`` of every layer, the order
parameters of docs/model.md section 6 and, as attributes, the configuration (JSON), package
version, backend, data checksum and timings, so that a file alone says how it was made. The
pieces every family's run file shares are in :mod:`mfphys.storage`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from ... import order
from ...errors import MfphysError
from ...layers import Layer, architecture
from ...storage import (
    KIND_ATTR,
    STATUSES,
    checkpoint_attrs,
    checkpoint_header,
    config_of,
    dynamics_from_dataset,
    dynamics_variables,
    label_attrs,
    long_name,
    provenance_attrs,
    stored_like,
)


def config_from_attrs(attrs, path=None):
    """The run's :class:`~mfphys.models.ffn.train.TrainConfig`, from its ``config`` attribute (validated)."""
    from .train import TrainConfig

    return config_of(attrs, TrainConfig, path)


def run_to_dataset(result, *, tol: float = order.TOL, xi_tol: float = order.XI_TOL,
                   xi_zero: float = order.XI_ZERO, command: str | None = None, name: str | None = None,
                   tags=(), note: str | None = None) -> xr.Dataset:
    """Build the public-schema Dataset (docs/file-format.md) of a :class:`mfphys.train.TrainResult`.

    ``name``, ``tags`` and ``note`` label the run (attributes ``name``, ``tags`` as a JSON
    list, ``note``; ``mfphys train --name/--tag/--note``); each is left out when not given.
    A finished run gets ``status`` "done"; the part of a run a checkpoint stores (no sampled
    evaluation yet, ``result.complete`` False) gets "running" and no ``test_acc_sampled*`` /
    ``test_acc_vote`` variables (:func:`checkpoint_to_dataset` adds what resuming needs).
    """
    labels = label_attrs(name, tags, note)  # first: `name` is a loop variable below
    cfg = result.config
    params = result.params
    R, E, L = cfg.replicas, result.history["train_loss"].shape[1], len(params)
    coords = {"epoch": np.arange(1, E + 1), "replica": np.arange(R), "layer": np.arange(1, L + 1)}
    data = {}
    for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
        data[k] = (("replica", "epoch"), result.history[k], long_name(k))
    for k in ("lr", "epoch_seconds", "eval_seconds"):
        data[k] = (("epoch",), result.history[k], long_name(k))
    if result.complete:
        coords["draw"] = np.arange(result.sampled_acc.shape[1])
        data["test_acc_sampled"] = (("replica",), result.sampled_acc.mean(axis=1) if result.sampled_acc.size
                                    else np.full(R, np.nan), long_name("test_acc_sampled"))
        data["test_acc_sampled_draw"] = (("replica", "draw"), result.sampled_acc, long_name("test_acc_sampled_draw"))
        data["test_acc_vote"] = (("replica",), result.vote_acc, long_name("test_acc_vote"))
    for l, layer in enumerate(params, start=1):
        dims = ("replica", f"post_{l}", f"pre_{l}")
        for name, v in zip(("pi", "m", "xi"), layer):
            data[f"{name}_{l}"] = (dims, v, {"long_name": f"{name} of layer {l} (from unit pre to unit post)",
                                             "units": "1"})
    live = ~np.asarray(result.dead_inputs, dtype=bool)
    for k, v in order.run_order(params, live_inputs=live, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero).items():
        data[k] = (("replica", "layer"), v, long_name(k))
    edges = order.histogram_edges(params)
    for name, e in edges.items():
        coords[f"{name}_edge"] = e
        counts = np.stack([order.histogram(getattr(layer, name), e) for layer in params], axis=1)
        data[f"hist_{name}"] = (("replica", "layer", f"{name}_bin"), counts,
                                {"long_name": f"histogram of {name} per layer (edges: {name}_edge)",
                                 "units": "connections"})
    data["dead_inputs"] = (("input",), np.asarray(result.dead_inputs, dtype=np.int8),
                           {"long_name": "1 where the input is constant over the training set", "units": "1"})
    if result.dynamics is not None:
        dynamics_variables(result.dynamics, coords, data)
    ds = xr.Dataset({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in data.items()}, coords=coords)
    ds.attrs = {
        KIND_ATTR: "run",
        "title": f"mfphys {cfg.mode} run: {result.data['name']} {architecture(cfg.layers)}",
        "dataset": result.data["name"],
        "architecture": architecture(cfg.layers),
        "data_checksum": result.data["checksum"],
        "data_source": str(result.data["source"]),
        **provenance_attrs(result, dict(tol=tol, xi_tol=xi_tol, xi_zero=xi_zero), command or "mfphys.train"),
    }
    ds.attrs.update(labels)
    return ds


def checkpoint_to_dataset(result, *, status: str, writer: dict | None = None, segments=None,
                          dynamics_every: int | None = None, command: str | None = None, created: str | None = None,
                          history: str | None = None, attrs: dict | None = None) -> xr.Dataset:
    """A resumable run file: :func:`run_to_dataset` of ``result`` (finished or, ``result.complete``
    False, the run so far) plus its state ``result.state`` (docs/file-format.md "Checkpoints"):
    Adam's moments ``adam_mu_<k>_<l>``, ``adam_nu_<k>_<l>`` and the attributes ``status``,
    ``epochs_done``, ``adam_count``, ``rng_state``, ``writer``, ``segments``.

    ``created`` and ``history`` carry the first write's date and command lines over to later
    checkpoints; ``attrs`` adds attributes (a scan cell's).
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    state = result.state
    ds = run_to_dataset(result, command=command)
    for l, (mu, nu) in enumerate(zip(state.adam.mu, state.adam.nu), start=1):
        dims = ("replica", f"post_{l}", f"pre_{l}")
        for k in ("pi", "m", "xi"):
            if getattr(mu, k) is None:
                continue
            for which, arr, what in (("mu", mu, "first"), ("nu", nu, "second")):
                ds[f"adam_{which}_{k}_{l}"] = xr.Variable(dims, getattr(arr, k), attrs={
                    "long_name": f"Adam's {what} moment of {k} of layer {l} (checkpoint)", "units": "1"})
    ds.attrs["adam_count"] = int(state.adam.count)
    return checkpoint_attrs(ds, state, status=status, writer=writer, segments=segments,
                            dynamics_every=dynamics_every, created=created, history=history, attrs=attrs)


def state_from_dataset(ds: xr.Dataset, path=None):
    """The :class:`mfphys.train.TrainState` (host arrays) a run file stores, to resume it;
    one clear :class:`MfphysError` for a file that has none or a damaged one."""
    from . import optim
    from .train import CURVES, SERIES, TrainState

    where = f"{path}: " if path is not None else ""
    cfg = config_from_attrs(ds.attrs, path)
    n, count, rng = checkpoint_header(ds, path, replicas=cfg.replicas, count_attr="adam_count",
                                      check=lambda: _check_run_parameters(ds, path))

    def damaged(what):
        return MfphysError(f"{where}damaged run file: {what}")

    trainable = ("m",) if cfg.mode == "bp" else optim.PARAM_NAMES
    params = params_from_dataset(ds)
    mu, nu = [], []
    for l, layer in enumerate(params, start=1):
        for moments, which in ((mu, "mu"), (nu, "nu")):
            arrays = []
            for k in optim.PARAM_NAMES:
                name = f"adam_{which}_{k}_{l}"
                if k not in trainable:
                    arrays.append(None)
                    continue
                arrays.append(stored_like(ds, name, layer.m, damaged))
            moments.append(Layer(*arrays))
    history = {}
    for k in CURVES + SERIES:
        if k not in ds:
            raise damaged(f"{k} is missing")
        history[k] = np.asarray(ds[k].values, dtype=np.float64)
    try:
        seconds = float(json.loads(ds.attrs.get("timings", "{}")).get("train_seconds", 0.0))
    except (TypeError, ValueError, AttributeError):
        seconds = 0.0
    return TrainState(n, params, optim.AdamState(count, tuple(mu), tuple(nu)), rng, history,
                      dynamics_from_dataset(ds), seconds)


def params_from_dataset(ds: xr.Dataset) -> tuple:
    """The (pi, m, Xi) arrays of every layer of a run file, as :class:`mfphys.layers.Layer`."""
    L = int(ds.sizes["layer"])
    return tuple(Layer(*(ds[f"{k}_{l}"].values for k in ("pi", "m", "xi"))) for l in range(1, L + 1))


def _check_run_parameters(ds: xr.Dataset, path) -> None:
    """A damaged or hand-edited run file is refused with what is wrong, before any reader uses it."""
    cfg = config_from_attrs(ds.attrs, path)
    L, R = int(ds.sizes["layer"]), int(ds.sizes.get("replica", 0))
    if len(cfg.layers) != L + 1:
        raise MfphysError(f"{path}: damaged run file: {L} layers but its config has {len(cfg.layers) - 1}")
    for l in range(1, L + 1):
        shape = (R, cfg.layers[l], cfg.layers[l - 1])
        for k in ("pi", "m", "xi"):
            name = f"{k}_{l}"
            if name not in ds:
                raise MfphysError(f"{path}: damaged run file: {name} is missing")
            if ds[name].shape != shape:
                raise MfphysError(f"{path}: damaged run file: {name} has shape {ds[name].shape}, expected {shape}")
            if ds[name].dtype.kind != "f":
                raise MfphysError(f"{path}: damaged run file: {name} is not floating-point ({ds[name].dtype})")


def check_parameters(ds: xr.Dataset, path) -> None:
    """A feed-forward run file must hold the parameters of every layer, of the shapes its
    configuration gives; one line says what is wrong."""
    if "layer" not in ds.sizes or any(f"{k}_1" not in ds for k in ("pi", "m", "xi")):
        raise MfphysError(f"{path} has no pi_1/m_1/xi_1 parameters: not a complete run file")
    _check_run_parameters(ds, path)
