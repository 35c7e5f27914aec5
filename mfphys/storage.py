"""The run-file storage every model family shares: netCDF reading and writing, the attributes
every run file has, the dynamics variables, checkpoints' common attributes (schema:
docs/file-format.md).

Part of the shared core: it names no model family. Each family builds its own run-file
``xarray.Dataset`` from these pieces (``mfphys/models/<name>/store.py``); :mod:`mfphys.store`
opens any run file through the family registry. Nothing is pickled.

Files are written atomically: to a temporary file in the same folder, flushed to disk,
then renamed over the target, so a reader (the TUI, a scan being resumed) sees either the
old complete file or the new complete file, never a half-written one.
"""

from __future__ import annotations

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
from .fileio import atomic_file, check_name_length, check_readable, quote, utc_now, write_error

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


def long_name(name: str):
    base = name.removesuffix("_exact").removesuffix("_live")
    long, units = LONG_NAMES.get(base, (name, "1"))
    if name.endswith("_exact"):
        long += ", exact equality (tol = xi_tol = 0)"
    if name.endswith("_live"):
        long += ", layer 1 over connections from inputs that vary in the training set"
    return {"long_name": long, "units": units}


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
        raise MfphysError(f"tags must be a list of strings, got {quote(tags)}")
    out = {}
    if name:
        out["name"] = str(name)
    if tags:
        out["tags"] = json.dumps(list(tags))
    if note:
        out["note"] = str(note)
    return out


def dynamics_variables(dyn, coords: dict, data: dict, dim: str = "layer", long=None) -> None:
    """The order parameters recorded during training (``dyn_<name>`` (replica, dyn_epoch, layer))
    and the histogram snapshots (``snap_hist_<k>`` (replica, snap_epoch, layer, <k>_bin) with
    their edges ``snap_<k>_edges`` (snap_epoch, edge)), docs/file-format.md "Dynamics".
    A recurrent run has ``dim = "matrix"`` and its own ``long`` (name -> attributes)."""
    long = long or long_name
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


def dynamics_from_dataset(ds: xr.Dataset, dim: str = "layer"):
    """The :class:`mfphys.train.Dynamics` a run file records (empty for an older file); ``dim``
    is "matrix" for a recurrent run."""
    from .dynamics import Dynamics

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


def _check_is_file(path: Path) -> None:
    """A missing path or a folder is refused with what to do, before netCDF says "Unknown file format";
    anything else that is not a regular file (a FIFO would block forever) is refused before it is
    opened (:func:`mfphys.fileio.check_readable`)."""
    check_name_length(path, what="file")
    if not path.exists():
        raise MfphysError(f"no such file: {path}")
    if path.is_dir():
        if (path / "scan.json").is_file():
            raise MfphysError(f"{path} is a scan folder, not a file: use mfphys scan-plot {path} (or "
                              f"mfphys.open_scan in Python), or give one of its cells, {path / 'cells'}/<key>.nc")
        raise MfphysError(f"{path} is a folder, not an mfphys file (.nc)")
    check_readable(path, what="file")


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


def open_run(path: str | os.PathLike, *, log: bool = True) -> xr.Dataset:
    """Open an mfphys run file as an in-memory ``xarray.Dataset`` (public schema, docs/file-format.md).

    ``log``: a run that is training (or was killed) has its per-epoch values after the last
    checkpoint filled in from its epoch log (:func:`mfphys.runlog.fill_from_log`: flagged by
    the coordinate ``from_log``); ``log=False`` gives the last checkpoint alone."""
    ds = read_dataset(path)
    if KIND_ATTR not in ds.attrs:
        raise MfphysError(f"{path} is a netCDF file but not an mfphys file (no '{KIND_ATTR}' attribute)")
    if log and ds.attrs.get(KIND_ATTR) == "run" and run_status(ds.attrs) != "done":
        from .runlog import fill_from_log

        ds = fill_from_log(ds, path)
    return ds


def open_family_run(path, model: str, title: str, *, unlabelled: bool = False) -> xr.Dataset:
    """:func:`open_run` for a family's own functions: the file must be a run file of family
    ``model`` (one line saying what it is otherwise); ``unlabelled``: a file without a ``model``
    attribute (written before there were families) is this family's. Its parameters are the
    family's to check."""
    return check_family_run(open_run(path), path, model, title, unlabelled=unlabelled)


def check_family_run(ds: xr.Dataset, path, model: str, title: str, *, unlabelled: bool = False) -> xr.Dataset:
    """The checks of :func:`open_family_run` on a dataset already read."""
    kind = ds.attrs.get(KIND_ATTR)
    if kind != "run":
        raise MfphysError(f"{path} is an mfphys {kind} file, not a run file (made by mfphys train)")
    found = ds.attrs.get("model", model if unlabelled else None)
    if found != model:
        raise MfphysError(f"{path} is not a {title} run (its model is {found or 'not this family'})")
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
        raise MfphysError(f"{prefix}unknown {KIND_ATTR} {quote(kind)}")
    if expect is not None and kind != expect:
        raise MfphysError(f"{prefix}an mfphys {kind} file, not a {expect} file")
    return kind
