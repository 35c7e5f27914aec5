"""Run files of any model family as ``xarray.Dataset`` objects (schema: docs/file-format.md).

What a script and the front ends call: :func:`open_run`, :func:`open_trained_run`,
:func:`open_runs`, :func:`save_run`, :func:`run_to_dataset`, and a run file's family,
configuration, parameters and state (:func:`family_of`, :func:`config_from_attrs`,
:func:`params_from_dataset`, :func:`state_from_dataset`). Each goes through the family registry
(:mod:`mfphys.registry`): a file's ``model`` attribute names its family, and the family reads its
own schema. The pieces every family's file shares (netCDF reading and writing, attributes,
dynamics) are in :mod:`mfphys.storage`, re-exported here.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from . import registry
from ._compat import legacy_getattr
from .errors import MfphysError
from .storage import *  # noqa: F403 (the shared storage helpers are part of this module's public names)
from .storage import KIND_ATTR, config_of, file_kind, label_attrs, open_run, read_attrs, write_atomic


def family_of(attrs):
    """The model family (:class:`mfphys.family.ModelFamily`) of a run file, from its attributes."""
    return registry.of_attrs(attrs)


def model_of(attrs) -> str:
    """The name of a run file's model family, from its attributes (no ``model`` attribute: the
    family of the files written before there were families, :data:`mfphys.registry.DEFAULT`)."""
    return registry.of_attrs(attrs).name


def config_from_dataset(ds: xr.Dataset, path=None):
    """The run's configuration (its family's class), from its ``config`` attribute (validated)."""
    return config_from_attrs(ds.attrs, path)


def config_from_attrs(attrs, path=None):
    """:func:`config_from_dataset` from a file's attributes alone (:func:`read_attrs`)."""
    family = registry.of_attrs(attrs)
    return config_of(attrs, family.config_class, path,
                     what="a configuration" if family.name == registry.DEFAULT else f"a {family.title} configuration")


def params_from_dataset(ds: xr.Dataset):
    """The (pi, m, Xi) arrays of every weight matrix of a run file, as its family holds them
    (a tuple of :class:`mfphys.layers.Layer` per layer, or the family's own container)."""
    return registry.of_attrs(ds.attrs).params_from_dataset(ds)


def state_from_dataset(ds: xr.Dataset, path=None):
    """The training state (host arrays) a run file stores, to resume it; one clear
    :class:`MfphysError` for a file that has none or a damaged one."""
    return registry.of_attrs(ds.attrs).state_from_dataset(ds, path)


def run_to_dataset(result, *, command: str | None = None, name: str | None = None, tags=(),
                   note: str | None = None, **options) -> xr.Dataset:
    """The public-schema Dataset (docs/file-format.md) of a finished training result of any
    family. ``name``, ``tags`` and ``note`` label the run (attributes ``name``, ``tags`` as a
    JSON list, ``note``; ``mfphys train --name/--tag/--note``); ``options``: the order
    parameters' tolerances (``tol``, ``xi_tol``, ``xi_zero``) and the family's own extras."""
    labels = label_attrs(name, tags, note)
    return registry.of_result(result).run_to_dataset(result, command=command, labels=labels, **options)


def checkpoint_to_dataset(result, **kwargs) -> xr.Dataset:
    """A resumable run file of a result of any family (docs/file-format.md "Checkpoints")."""
    return registry.of_result(result).checkpoint_to_dataset(result, **kwargs)


def save_run(result, path, **kwargs) -> Path:
    """Build the run's Dataset and write it atomically to ``path``."""
    return write_atomic(run_to_dataset(result, **kwargs), path)


def open_trained_run(path: str | os.PathLike) -> xr.Dataset:
    """:func:`open_run`, refusing scan/perturbation files and runs without their parameters
    (each family checks its own, :meth:`mfphys.family.ModelFamily.check_parameters`)."""
    ds = open_run(path)
    kind = ds.attrs.get(KIND_ATTR)
    if kind != "run":
        raise MfphysError(f"{path} is an mfphys {kind} file, not a run file (made by mfphys train)")
    registry.of_attrs(ds.attrs).check_parameters(ds, path)
    return ds


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
    Runs of different lengths are aligned on ``epoch`` (and ``replica``, ``draw``), NaN-padded;
    the coordinate ``last_epoch`` (``dim``) holds each run's last epoch, so that
    ``runs.test_acc.sel(epoch=runs.last_epoch)`` is every run's last value (where
    ``isel(epoch=-1)`` would be NaN for a shorter run).
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
    families = [registry.of_attrs(ds.attrs) for ds in runs]
    other = [(f.name, fam) for fam, f in zip(families, files) if not fam.stackable]
    if other:
        stackable = [fam.title for fam in registry.families().values() if fam.stackable]
        raise MfphysError(f"open_runs stacks {' and '.join(stackable)} runs; {', '.join(n for n, _ in other)} "
                          f"{'is a' if len(other) == 1 else 'are'} {other[0][1].title} "
                          f"run{'' if len(other) == 1 else 's'} (open each with mfphys.open_run)")
    configs = [config_from_dataset(ds, f) for ds, f in zip(runs, files)]
    if params:
        labels = [fam.describe_config(c) for fam, c in zip(families, configs)]
        if len(set(labels)) > 1:
            shown = ", ".join(f"{label} ({f.name})" for label, f in zip(labels, files))
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
        # an epoch log's flags (docs/file-format.md "The epoch log") differ from run to run: stacked as variables
        ds = ds.reset_coords([c for c in ("from_log", "dyn_from_log") if c in ds.coords])
        edges = [e for e in _HIST_EDGES if e in ds.coords]
        ds = ds.assign({f"{e}s": (e, ds[e].values, ds[e].attrs) for e in edges}).drop_vars(edges)
        ds = ds.rename({k: RUNS_RENAMED.get(k, k + "_run") for k in ds.data_vars if k in differ})
        parts.append(ds)
    out = xr.concat(parts, dim=dim, data_vars="all", coords="minimal", join="outer", compat="override",
                    combine_attrs="override")
    last = [int(ds["epoch"].values.max()) if ds.sizes.get("epoch") else 0 for ds in runs]
    out = out.assign_coords({dim: names, "file": (dim, [str(f) for f in files]),
                             "last_epoch": (dim, np.asarray(last, dtype=np.int64),
                                            {"long_name": "the last epoch each run has (runs.x.sel(epoch="
                                                          "runs.last_epoch): every run's last value)", "units": "1"}),
                             **{k: (dim, _coordinate(v)) for k, v in differ.items()}})
    shared = {k: v for k, v in runs[0].attrs.items()
              if k not in _PER_RUN_ATTRS and all(k in r.attrs and str(r.attrs[k]) == str(v) for r in runs)}
    out.attrs = {"title": f"{len(files)} mfphys runs along {dim!r}", **shared}  # not a run file: no mfphys_kind
    return out


__getattr__ = legacy_getattr(__name__)
