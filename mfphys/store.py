"""Runs as ``xarray.Dataset`` objects and netCDF files (schema: docs/file-format.md).

The only module that builds xarray objects. A run file holds the learning curves, the
final ``pi``, ``m``, ``Xi`` of every layer, the order parameters of docs/model.md section 6 and,
as attributes, the configuration (JSON), package version, backend, data checksum and
timings, so that a file alone says how it was made. Nothing is pickled.

Files are written atomically: to a temporary file in the same folder, flushed to disk,
then renamed over the target, so a reader (the TUI, a scan being resumed) sees either the
old complete file or the new complete file, never a half-written one.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import platform
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__, order
from .errors import MfphysError
from .fileio import atomic_file, utc_now, write_error
from .model import Layer, architecture

ENGINE = "netcdf4"
KIND_ATTR = "mfphys_kind"
#: held around every netCDF read and write mfphys makes. The netCDF-C and HDF5 libraries are
#: not thread-safe and netCDF4-python releases the GIL in its calls, so two threads of one
#: process that touch netCDF files at once (the TUI reads in worker threads; a test writes a
#: file while the app reads another) can crash the process; xarray serialises only its own
#: calls, not those made through netCDF4 directly (:func:`read_attrs`). Re-entrant, so a
#: caller may hold it around several reads.
NETCDF_LOCK = threading.RLock()

LONG_NAMES = {
    "train_loss": ("mean cross-entropy over the epoch's mini-batches (noisy mean-field)", "nats"),
    "train_acc": ("accuracy on the epoch's mini-batches (noisy mean-field)", "1"),
    "test_loss": ("test cross-entropy, noise-free mean-field (eps = 0)", "nats"),
    "test_acc": ("test accuracy, noise-free mean-field (eps = 0)", "1"),
    "lr": ("learning rate", "1"),
    "epoch_seconds": ("wall-clock time of the epoch, evaluation included", "s"),
    "eval_seconds": ("wall-clock time of the epoch's noise-free test evaluation", "s"),
    "test_acc_sampled": ("test accuracy of sampled sub-networks, mean over draws", "1"),
    "test_acc_sampled_draw": ("test accuracy of each sampled sub-network", "1"),
    "test_acc_vote": ("test accuracy of the majority vote of the sampled sub-networks", "1"),
    "sparsity": ("fraction of absent connections, pi >= 1 - tol", "1"),
    "frac_vip": ("fraction of very important connections (pi <= tol, Xi <= xi_tol)", "1"),
    "frac_uip": ("fraction of unimportant connections (pi >= 1 - tol)", "1"),
    "frac_variable": ("fraction of variable connections", "1"),
    "mean_pi": ("mean of pi over the layer", "1"),
    "mean_xi": ("mean Xi over present connections (pi < 1 - tol)", "1"),
    "weight_var": ("mean weight variance (1-pi) Xi + pi (1-pi) m^2", "1"),
    "entropy": ("mean entropy per connection", "nats"),
    "entropy_median": ("median entropy per connection", "nats"),
    "frac_point": ("fraction of connections with Xi <= xi_zero (point-mass slab)", "1"),
}

#: the values of a run file's ``status`` attribute; a file without one (written before
#: checkpoints existed) is a finished run
STATUSES = ("running", "interrupted", "done")
#: the prefix of the order parameters recorded during training (``dyn_sparsity``, ...) and of
#: the histogram snapshots (``snap_hist_pi``, ...), docs/file-format.md "Dynamics"
DYN, SNAP = "dyn_", "snap_"


def _long(name: str):
    base = name.removesuffix("_exact").removesuffix("_live")
    long, units = LONG_NAMES.get(base, (name, "1"))
    if name.endswith("_exact"):
        long += ", exact equality (tol = xi_tol = 0)"
    if name.endswith("_live"):
        long += ", layer 1 over connections from inputs that vary in the training set"
    return {"long_name": long, "units": units}


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
        data[k] = (("replica", "epoch"), result.history[k], _long(k))
    for k in ("lr", "epoch_seconds", "eval_seconds"):
        data[k] = (("epoch",), result.history[k], _long(k))
    if result.complete:
        coords["draw"] = np.arange(result.sampled_acc.shape[1])
        data["test_acc_sampled"] = (("replica",), result.sampled_acc.mean(axis=1) if result.sampled_acc.size
                                    else np.full(R, np.nan), _long("test_acc_sampled"))
        data["test_acc_sampled_draw"] = (("replica", "draw"), result.sampled_acc, _long("test_acc_sampled_draw"))
        data["test_acc_vote"] = (("replica",), result.vote_acc, _long("test_acc_vote"))
    for l, layer in enumerate(params, start=1):
        dims = ("replica", f"post_{l}", f"pre_{l}")
        for name, v in zip(("pi", "m", "xi"), layer):
            data[f"{name}_{l}"] = (dims, v, {"long_name": f"{name} of layer {l} (from unit pre to unit post)",
                                             "units": "1"})
    live = ~np.asarray(result.dead_inputs, dtype=bool)
    for k, v in order.run_order(params, live_inputs=live, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero).items():
        data[k] = (("replica", "layer"), v, _long(k))
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
        _dynamics_variables(result.dynamics, coords, data)
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


def provenance_attrs(result, tolerances: dict, command: str) -> dict:
    """The attributes every run file has, of either model family: version, configuration,
    mode, backend, data summary, timings, order tolerances, status, creation and history,
    host and conventions (docs/file-format.md)."""
    cfg, now = result.config, utc_now()
    return {
        "mfphys_version": __version__,
        "config": cfg.to_json(),
        "mode": cfg.mode,
        "backend": result.backend,
        "data_summary": json.dumps(result.data, default=str),
        "timings": json.dumps(result.timings),
        "order_tolerances": json.dumps(tolerances),
        "status": "done" if result.complete else "running",
        "created": now,
        "history": f"{now} {command}",
        "host": f"{socket.gethostname()} ({platform.platform()}), python {sys.version.split()[0]}, "
                f"numpy {np.__version__}, xarray {xr.__version__}",
        "Conventions": "CF-1.8",
    }


def label_attrs(name: str | None = None, tags=(), note: str | None = None) -> dict:
    """The attributes that label a run: ``name``, ``tags`` (JSON list of strings), ``note``; only those given."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise MfphysError(f"tags must be a list of strings, got {tags!r}")
    out = {}
    if name:
        out["name"] = str(name)
    if tags:
        out["tags"] = json.dumps(list(tags))
    if note:
        out["note"] = str(note)
    return out


def _dynamics_variables(dyn, coords: dict, data: dict, dim: str = "layer", long=None) -> None:
    """The order parameters recorded during training (``dyn_<name>`` (replica, dyn_epoch, layer))
    and the histogram snapshots (``snap_hist_<k>`` (replica, snap_epoch, layer, <k>_bin) with
    their edges ``snap_<k>_edges`` (snap_epoch, edge)), docs/file-format.md "Dynamics".
    A recurrent run has ``dim = "matrix"`` and its own ``long`` (name -> attributes)."""
    long = long or _long
    if dyn.samples:
        coords["dyn_epoch"] = np.asarray(dyn.epochs, dtype=np.int64)
    for name in (dyn.samples[0] if dyn.samples else {}):
        attrs = long(name)
        attrs["long_name"] += ", recorded during training (after epoch dyn_epoch; 0: initial parameters)"
        data[DYN + name] = (("replica", "dyn_epoch", dim), np.stack([s[name] for s in dyn.samples], axis=1),
                            attrs)
    if dyn.snaps:
        coords["snap_epoch"] = np.asarray(dyn.snap_epochs, dtype=np.int64)
    for k in ("pi", "m", "xi") if dyn.snaps else ():
        data[f"{SNAP}hist_{k}"] = (("replica", "snap_epoch", dim, f"{k}_bin"),
                                   np.stack([s[f"hist_{k}"] for s in dyn.snaps], axis=1),
                                   {"long_name": f"histogram of {k} per {dim} after epoch snap_epoch "
                                                 f"(edges: {SNAP}{k}_edges)", "units": "connections"})
        data[f"{SNAP}{k}_edges"] = (("snap_epoch", "edge"), np.stack([s[f"{k}_edges"] for s in dyn.snaps]),
                                    {"long_name": f"bin edges of {SNAP}hist_{k} at each snapshot", "units": "1"})


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


def checkpoint_attrs(ds: xr.Dataset, state, *, status: str, writer: dict | None = None, segments=None,
                     dynamics_every: int | None = None, created: str | None = None, history: str | None = None,
                     attrs: dict | None = None) -> xr.Dataset:
    """The attributes every resumable run file has, whatever its model family (docs/file-format.md
    "Checkpoints"): ``status``, ``epochs_done``, ``rng_state``, ``writer``, ``segments``,
    ``updated``, ``dynamics_every``, and ``created``/``history`` carried over; ``attrs`` added."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    ds.attrs.update({
        "status": status,
        "epochs_done": int(state.epoch),
        "rng_state": json.dumps(state.rng),
        "writer": json.dumps(writer or {}),
        "segments": json.dumps(list(segments or [])),
        "updated": utc_now(),
    })
    if dynamics_every is not None:
        ds.attrs["dynamics_every"] = int(dynamics_every)
    if created:
        ds.attrs["created"] = created
    if history:
        ds.attrs["history"] = history
    ds.attrs.update(attrs or {})
    return ds


def run_status(attrs) -> str:
    """A run file's ``status`` (:data:`STATUSES`) from its attributes; "done" for a file written
    before checkpoints existed (no ``status`` attribute)."""
    status = str(attrs.get("status", "done"))
    return status if status in STATUSES else "done"


def stored_like(ds: xr.Dataset, name: str, like, damaged) -> np.ndarray:
    """The values of ``ds[name]``, which must exist with the shape and dtype of ``like`` (an
    optimiser moment of a parameter); else ``damaged(what)``, the caller's one-line error."""
    if name not in ds:
        raise damaged(f"{name} is missing")
    if ds[name].shape != like.shape or ds[name].dtype != like.dtype:
        raise damaged(f"{name} has shape {ds[name].shape} ({ds[name].dtype}), expected {like.shape} ({like.dtype})")
    return ds[name].values


def checkpoint_header(ds: xr.Dataset, path, *, replicas: int, count_attr: str, kind: str = "run",
                      check=None) -> tuple[int, int, dict]:
    """``(epochs_done, optimiser step count, random-stream states)`` of a checkpoint, each checked,
    for either model family; ``check()`` (the family's parameter check) runs once the file is
    known to hold a checkpoint. One clear :class:`MfphysError` for a file that holds none or a
    damaged one (docs/file-format.md "Checkpoints")."""
    where = f"{path}: " if path is not None else ""
    if "epochs_done" not in ds.attrs or "rng_state" not in ds.attrs:
        which = "run files" if kind == "run" else f"{kind} runs"
        raise MfphysError(f"{where}this {kind} file holds no checkpoint (written by an mfphys without resumable "
                          f"{which}), so it cannot be continued; train it again with another --out")
    if check is not None:
        check()

    def damaged(what):
        return MfphysError(f"{where}damaged run file: {what}")

    try:
        n, count = int(ds.attrs["epochs_done"]), int(ds.attrs.get(count_attr, -1))
        rng = json.loads(ds.attrs["rng_state"])
    except (TypeError, ValueError):
        raise damaged(f"its epochs_done, {count_attr} or rng_state attribute is malformed") from None
    if ds.sizes.get("epoch", 0) != n:
        raise damaged(f"epochs_done is {n} but it holds {ds.sizes.get('epoch', 0)} epochs")
    if count < 0:
        raise damaged(f"no {count_attr} attribute")
    if not (isinstance(rng, dict) and all(isinstance(rng.get(k), list) and len(rng[k]) == replicas
                                          and all(isinstance(s, dict) and "bit_generator" in s for s in rng[k])
                                          for k in ("order", "noise"))):
        raise damaged(f"rng_state does not hold the order and noise streams of {replicas} replicas")
    return n, count, rng


def state_from_dataset(ds: xr.Dataset, path=None):
    """The :class:`mfphys.train.TrainState` (host arrays) a run file stores, to resume it;
    one clear :class:`MfphysError` for a file that has none or a damaged one."""
    from . import optim
    from .train import CURVES, SERIES, TrainState

    if model_of(ds.attrs) == "rnn":  # a recurrent run's state (mfphys.rnn.store)
        from .rnn import store as rnn_store

        return rnn_store.state_from_dataset(ds, path)
    where = f"{path}: " if path is not None else ""
    cfg = config_from_dataset(ds, path)
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


def dynamics_from_dataset(ds: xr.Dataset, dim: str = "layer"):
    """The :class:`mfphys.train.Dynamics` a run file records (empty for an older file); ``dim``
    is "matrix" for a recurrent run."""
    from .train import Dynamics

    names = [k[len(DYN):] for k in ds.data_vars if k.startswith(DYN) and ds[k].dims == ("replica", "dyn_epoch",
                                                                                          dim)]
    epochs = tuple(int(e) for e in ds["dyn_epoch"].values) if "dyn_epoch" in ds.coords else ()
    samples = tuple({k: ds[DYN + k].values[:, i] for k in names} for i in range(len(epochs))) if names else ()
    snap_epochs = tuple(int(e) for e in ds["snap_epoch"].values) if "snap_epoch" in ds.coords else ()
    snaps = ()
    if snap_epochs and all(f"{SNAP}hist_{k}" in ds for k in ("pi", "m", "xi")):
        snaps = tuple({**{f"hist_{k}": ds[f"{SNAP}hist_{k}"].values[:, i] for k in ("pi", "m", "xi")},
                       **{f"{k}_edges": ds[f"{SNAP}{k}_edges"].values[i] for k in ("pi", "m", "xi")}}
                      for i in range(len(snap_epochs)))
    else:
        snap_epochs = ()
    return Dynamics(epochs if samples else (), samples, snap_epochs, snaps)


#: the values of a run file's ``model`` attribute: feed-forward (no attribute in files written
#: before the recurrent model existed) and recurrent (docs/file-format.md "Recurrent runs")
MODELS = ("ffn", "rnn")


def model_of(attrs) -> str:
    """The model family of a run file, from its attributes: "ffn" (no ``model`` attribute) or "rnn"."""
    model = str(attrs.get("model", "ffn"))
    if model not in MODELS:
        raise MfphysError(f"unknown model {model!r} in the run file: one of {', '.join(MODELS)}")
    return model


def params_from_dataset(ds: xr.Dataset) -> tuple:
    """The (pi, m, Xi) arrays of every layer of a run file, as :class:`mfphys.model.Layer`
    (a recurrent run: :class:`mfphys.rnn.RnnParams`, its input, recurrent and output matrices)."""
    if model_of(ds.attrs) == "rnn":
        from .rnn import store as rnn_store

        return rnn_store.params_from_dataset(ds)
    L = int(ds.sizes["layer"])
    return tuple(Layer(*(ds[f"{k}_{l}"].values for k in ("pi", "m", "xi"))) for l in range(1, L + 1))


def config_from_dataset(ds: xr.Dataset, path=None):
    """The run's :class:`~mfphys.train.TrainConfig`, from its ``config`` attribute (validated)."""
    return config_from_attrs(ds.attrs, path)


def config_from_attrs(attrs, path=None):
    """:func:`config_from_dataset` from a file's attributes alone (:func:`read_attrs`); a
    recurrent run's :class:`mfphys.rnn.RnnConfig` for a file with ``model = "rnn"``."""
    from .train import TrainConfig

    if model_of(attrs) == "rnn":
        from .rnn.config import RnnConfig

        return config_of(attrs, RnnConfig, path, what="a recurrent configuration")
    return config_of(attrs, TrainConfig, path)


def config_of(attrs, cls, path=None, *, what: str = "a configuration"):
    """The ``config`` attribute of a run file as ``cls`` (validated), or one line saying what is wrong."""
    where = f"{path}: " if path is not None else ""
    text = attrs.get("config")
    if not isinstance(text, str):
        raise MfphysError(f"{where}damaged run file: no 'config' attribute")
    try:
        return cls.from_json(text)
    except (ValueError, TypeError) as exc:  # malformed JSON, or not an object
        raise MfphysError(f"{where}damaged run file: its 'config' attribute is not {what} ({exc})") from None
    except MfphysError as exc:
        raise MfphysError(f"{where}damaged run file: its 'config' attribute has {exc}") from None


# --- files ------------------------------------------------------------------------------------


def write_atomic(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        try:
            with NETCDF_LOCK:
                ds.to_netcdf(tmp, engine=ENGINE)
        except RuntimeError as exc:  # the netCDF library's errors ("NetCDF: HDF error" on a full disk)
            raise write_error(path, exc) from None
    return Path(path)


def save_run(result, path, **kwargs) -> Path:
    """Build the run's Dataset and write it atomically to ``path``."""
    return write_atomic(run_to_dataset(result, **kwargs), path)


def _check_is_file(path: Path) -> None:
    """A missing path or a folder is refused with what to do, before netCDF says "Unknown file format"."""
    if not path.exists():
        raise MfphysError(f"no such file: {path}")
    if path.is_dir():
        if (path / "scan.json").is_file():
            raise MfphysError(f"{path} is a scan folder, not a file: use mfphys scan-plot {path} (or "
                              f"mfphys.open_scan in Python), or give one of its cells, {path / 'cells'}/<key>.nc")
        raise MfphysError(f"{path} is a folder, not an mfphys file (.nc)")


def read_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a whole netCDF file into memory and close it (no handle stays open)."""
    path = Path(path)
    _check_is_file(path)
    try:
        with NETCDF_LOCK, xr.open_dataset(path, engine=ENGINE) as ds:
            return ds.load()
    except Exception as exc:  # netCDF4 raises OSError/RuntimeError/ValueError for bad files
        raise MfphysError(f"cannot read {path}: not a readable netCDF file ({type(exc).__name__}: {exc})") from None


def read_attrs(path: str | os.PathLike) -> dict:
    """The global attributes of a netCDF file, without reading any variable (cheap on large
    files: scan resume and the TUI's folder listing use it). The same errors as
    :func:`read_dataset`."""
    import netCDF4

    path = Path(path)
    _check_is_file(path)
    try:
        with NETCDF_LOCK, netCDF4.Dataset(path, "r") as nc:
            return {k: nc.getncattr(k) for k in nc.ncattrs()}
    except Exception as exc:  # netCDF4 raises OSError/RuntimeError/ValueError for bad files
        raise MfphysError(f"cannot read {path}: not a readable netCDF file ({type(exc).__name__}: {exc})") from None


def open_run(path: str | os.PathLike) -> xr.Dataset:
    """Open an mfphys run file as an in-memory ``xarray.Dataset`` (public schema, docs/file-format.md)."""
    ds = read_dataset(path)
    if KIND_ATTR not in ds.attrs:
        raise MfphysError(f"{path} is a netCDF file but not an mfphys file (no '{KIND_ATTR}' attribute)")
    return ds


def live_inputs(ds: xr.Dataset):
    """(N_0,) bool mask of the inputs that vary over the training set (docs/model.md section 6,
    dead inputs), or None when the file does not record them."""
    if "dead_inputs" not in ds or ds["dead_inputs"].ndim != 1:
        return None
    if "pi_1" in ds and ds["dead_inputs"].shape[0] != ds["pi_1"].shape[-1]:
        return None  # does not match the inputs: not usable
    return ds["dead_inputs"].values == 0


def run_tolerances(ds: xr.Dataset, *, tol=None, xi_tol=None, xi_zero=None, exact: bool = False) -> dict:
    """The category thresholds to use for a run file: those given, else those its stored order
    parameters were computed with (attribute ``order_tolerances``), else the defaults."""
    try:
        stored = json.loads(ds.attrs.get("order_tolerances", "{}"))
    except (ValueError, TypeError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    # a hand-edited value that is not a number is ignored (the default applies), never a crash
    stored = {k: float(v) for k, v in stored.items()
              if k in ("tol", "xi_tol", "xi_zero") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return order.resolve_tolerances(stored, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero, exact=exact)


def open_trained_run(path: str | os.PathLike) -> xr.Dataset:
    """:func:`open_run`, refusing scan/perturbation files and runs without their parameters."""
    ds = open_run(path)
    kind = ds.attrs.get(KIND_ATTR)
    if kind != "run":
        raise MfphysError(f"{path} is an mfphys {kind} file, not a run file (made by mfphys train)")
    if model_of(ds.attrs) == "rnn":
        from .rnn import store as rnn_store

        rnn_store.check_parameters(ds, path)
        return ds
    if "layer" not in ds.sizes or any(f"{k}_1" not in ds for k in ("pi", "m", "xi")):
        raise MfphysError(f"{path} has no pi_1/m_1/xi_1 parameters: not a complete run file")
    _check_run_parameters(ds, path)
    return ds


def _check_run_parameters(ds: xr.Dataset, path) -> None:
    """A damaged or hand-edited run file is refused with what is wrong, before any reader uses it."""
    cfg = config_from_dataset(ds, path)
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


# --- several runs as one dataset -------------------------------------------------------------------

#: run variables renamed when the configuration field of the same name becomes a coordinate
#: (as :func:`mfphys.scan.open_scan` renames them): the per-epoch ``lr`` when the runs' lr differ
RUNS_RENAMED = {"lr": "lr_schedule"}
_HIST_EDGES = ("pi_edge", "m_edge", "xi_edge")
#: attributes that describe one run only, never kept on the stacked dataset
_PER_RUN_ATTRS = ("title", "config", "created", "history", "host", "timings", "name", "tags", "note", KIND_ATTR)


def _run_files(paths) -> list[Path]:
    """Paths and glob patterns -> run files, in the order given (each pattern's matches sorted).

    A pattern's matches that are other mfphys files (perturbation results next to the runs)
    are left out; a path named explicitly must be a run file.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for item in items:
        text = os.path.expanduser(str(item))
        if any(c in text for c in "*?["):
            matched = [Path(f) for f in sorted(glob.glob(text)) if Path(f).is_file()]
            runs = []
            for f in matched:
                try:
                    if file_kind(read_attrs(f)) == "run":
                        runs.append(f)
                except MfphysError:
                    pass  # not an mfphys file: not a run to stack
            if not runs:
                raise MfphysError(f"no run files match {item}")
            files += runs
        else:
            files.append(Path(text))
    if not files:
        raise MfphysError("open_runs: no files given")
    unique = list(dict.fromkeys(f.resolve() for f in files))
    return [next(f for f in files if f.resolve() == u) for u in unique]


def _coordinate(values: list) -> np.ndarray:
    """Configuration values of several runs as one coordinate: numbers stay numbers (None -> NaN),
    tuples become ``784,100,10`` text."""
    if all(isinstance(v, (bool, int, float)) or v is None for v in values):
        if any(v is None for v in values):
            return np.array([np.nan if v is None else float(v) for v in values])
        return np.asarray(values)
    return np.array([",".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values])


def open_runs(paths, dim: str = "run", *, params: bool = True) -> xr.Dataset:
    """Several run files as one in-memory ``xarray.Dataset``, stacked along a new dimension ``dim``.

    ``paths``: a glob pattern (``"runs/mnist-*.nc"``), a path, or a list of paths and patterns.
    Along ``dim`` the coordinate is each run's ``name`` attribute (``mfphys train --name``),
    else its file name without ``.nc`` (the file names when names repeat), with the extra
    coordinate ``file`` (the path) and one coordinate per configuration field whose value
    differs between the runs (e.g. ``seed``, ``lr``; ``layers`` as ``784,100,10`` text).
    Runs of different lengths are aligned on ``epoch`` (and ``replica``, ``draw``), NaN-padded.
    A run variable named like such a field is renamed (:data:`RUNS_RENAMED`: the per-epoch
    ``lr`` becomes ``lr_schedule``). The histograms' bin edges differ from run to run: they
    become the variables ``pi_edges``, ``m_edges``, ``xi_edges`` (``dim``, ``*_edge``).

    The per-connection parameters (``pi_<l>``, ``m_<l>``, ``xi_<l>``) and ``dead_inputs`` can
    only be stacked for runs of one architecture: other runs are refused, with one line,
    unless ``params=False``, which leaves them out (the order parameters, learning curves and
    accuracies stay). The attributes the runs share (``dataset``, ``mode``, ...) are kept; the
    others (``config``, ``created``, ``name``, ...) stay in the files.
    """
    files = _run_files(paths)
    runs = [open_trained_run(f) for f in files]
    recurrent = [f.name for ds, f in zip(runs, files) if model_of(ds.attrs) == "rnn"]
    if recurrent:
        raise MfphysError(f"open_runs stacks feed-forward runs; {', '.join(recurrent)} "
                          f"{'is a recurrent run' if len(recurrent) == 1 else 'are recurrent runs'} "
                          f"(open each with mfphys.open_run)")
    configs = [config_from_dataset(ds, f) for ds, f in zip(runs, files)]
    if params:
        archs = {architecture(c.layers) for c in configs}
        if len(archs) > 1:
            shown = ", ".join(f"{architecture(c.layers)} ({f.name})" for c, f in zip(configs, files))
            raise MfphysError(f"open_runs: runs of different architectures ({shown}): their per-connection "
                              f"parameters cannot be stacked; pass params=False to leave them out")
    names = [str(ds.attrs.get("name") or f.stem) for ds, f in zip(runs, files)]
    if len(set(names)) < len(names):
        names = [f.stem for f in files] if len({f.stem for f in files}) == len(files) else [str(f) for f in files]
    fields = [f.name for f in dataclasses.fields(type(configs[0]))]
    differ = {k: [getattr(c, k) for c in configs] for k in fields
              if len({json.dumps(getattr(c, k)) for c in configs}) > 1}
    parts = []
    for ds in runs:
        if not params:
            ds = ds.drop_vars([k for k in ds.data_vars if k.split("_")[0] in ("pi", "m", "xi")
                               and k.split("_")[-1].isdigit()] + ["dead_inputs"], errors="ignore")
        edges = [e for e in _HIST_EDGES if e in ds.coords]
        ds = ds.assign({f"{e}s": (e, ds[e].values, ds[e].attrs) for e in edges}).drop_vars(edges)
        ds = ds.rename({k: RUNS_RENAMED.get(k, k + "_run") for k in ds.data_vars if k in differ})
        parts.append(ds)
    out = xr.concat(parts, dim=dim, data_vars="all", coords="minimal", join="outer", compat="override",
                    combine_attrs="override")
    out = out.assign_coords({dim: names, "file": (dim, [str(f) for f in files]),
                             **{k: (dim, _coordinate(v)) for k, v in differ.items()}})
    shared = {k: v for k, v in runs[0].attrs.items()
              if k not in _PER_RUN_ATTRS and all(k in r.attrs and str(r.attrs[k]) == str(v) for r in runs)}
    out.attrs = {"title": f"{len(files)} mfphys runs along {dim!r}", **shared}  # not a run file: no mfphys_kind
    return out


# --- the kind of an mfphys file -----------------------------------------------------------------

#: the values of the ``mfphys_kind`` attribute (:data:`KIND_ATTR`): runs (``mfphys train``), scans
#: (``scan.json`` and combined scan datasets, ``mfphys.scan``), perturbation results
#: (``mfphys.perturb``) and the other results of ``mfphys.reproduce``
KINDS = ("run", "scan", "perturbation", "reproduction")


def file_kind(attrs, *, expect: str | None = None, where: str = "") -> str:
    """The kind of an mfphys file, one of :data:`KINDS`, from its global attributes
    (:func:`read_attrs`, or a Dataset's ``attrs``).

    Raises :class:`MfphysError` for a file that is not an mfphys file (no :data:`KIND_ATTR`,
    as :func:`open_run` refuses it), of an unknown kind, or, with ``expect``, of another kind
    (as :func:`open_trained_run` refuses a scan or perturbation file). The message starts with
    ``where: `` when given (a path); without it, it names no file, for a caller that shows the
    file already (a listing).
    """
    prefix = f"{where}: " if where else ""
    kind = attrs.get(KIND_ATTR)
    if kind is None:
        raise MfphysError(f"{prefix}not an mfphys file (no '{KIND_ATTR}' attribute)")
    kind = str(kind)
    if kind not in KINDS:
        raise MfphysError(f"{prefix}unknown {KIND_ATTR} {kind!r}")
    if expect is not None and kind != expect:
        raise MfphysError(f"{prefix}an mfphys {kind} file, not a {expect} file")
    return kind
