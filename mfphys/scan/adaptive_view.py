"""Reading an adaptive scan back (docs/scans.md "Adaptive scans"): its cells where they are.

An adaptive scan's cells lie anywhere between the bounds of its continuous axes, so they are
not a grid: :func:`open_adaptive` (what :func:`mfphys.open_scan` returns for such a folder)
stacks them along a ``cell`` dimension with their coordinates, and :func:`interpolate` puts a
per-cell quantity on a regular grid of the continuous axes for plotting. :func:`adaptive_status`
counts the cells from file names alone, as :func:`mfphys.scan.scan_status` does for a grid
(no netCDF, no xarray: a monitor polls it).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import MfphysError
from ..fileio import read_json
from .folder import _cell_status, _Paths, read_scan_json

STATUSES = ("done", "failed", "running", "pending")


def _keys(names) -> list[str]:
    """The cell keys a listing of ``cells/`` shows: finished, failed or running cells."""
    keys = set()
    for n in names:
        if n.startswith(".") or n.endswith(".partial.nc"):
            continue
        for suffix in (".nc", ".failed.json", ".running"):
            if n.endswith(suffix):
                keys.add(n[: -len(suffix)])
    return sorted(keys)


def adaptive_status(folder: str | os.PathLike, meta: Mapping | None = None) -> dict:
    """Progress of an adaptive scan from file names (the dict of :func:`mfphys.scan.scan_status`):
    its cells are those it has trained, is training or failed; ``pending`` is 0, as the learner
    has not asked for the next cells yet; ``budget`` the cells the last run was given (None)."""
    meta = meta if meta is not None else read_scan_json(folder)
    p = _Paths(Path(folder))
    try:
        names = set(os.listdir(p.cells))
    except OSError:
        names = set()
    cells = {k: _cell_status(p, k, names) for k in _keys(names)}
    cells = {k: s for k, s in cells.items() if s != "pending"}  # a dead marker: nothing there
    counts = {s: sum(v == s for v in cells.values()) for s in STATUSES}
    return {"name": meta.get("name"), "total": len(cells), **counts, "cells": cells, "adaptive": True}


def parse_key(key: str) -> dict:
    """The coordinates a cell key spells (``depth=2,n_train=1000`` -> ``{"depth": 2, "n_train": 1000}``);
    numbers are read back as numbers."""
    out = {}
    for part in key.split(","):
        k, _, v = part.partition("=")
        v = urllib.parse.unquote(v)
        for kind in (int, float):
            with contextlib.suppress(ValueError):
                v = kind(v)
                break
        out[k] = {"true": True, "false": False}.get(v, v) if isinstance(v, str) else v
    return out


def open_adaptive(folder: str | os.PathLike, meta: Mapping | None = None):
    """The cells of an adaptive scan as one ``xarray.Dataset`` along ``cell``.

    Coordinates along ``cell``: every axis (discrete and continuous, the scan.json's ``dims``)
    and the options a derived axis sets (``n_train`` of a teacher-student ``alpha``). Variables as
    :func:`mfphys.open_scan` combines them for a grid (``(cell, replica, layer)``, ``(cell, replica,
    epoch)``, ...), plus ``status``, ``error``, ``test_error``, ``train_seconds``, ``n_connections``
    (``n_connections_live``) and ``target`` (``(cell, target_name)``: the scan's targets, the
    numbers its learner was told). Cells are in coordinate order; running and failed cells are there with
    NaN values. Attribute ``adaptive``: the scan.json's adaptive table (JSON).
    """
    import xarray as xr

    from .. import registry, store
    from .adaptive import spec_from_meta, target_value
    from .view import RENAMED, _cell_summary, _combinable

    folder = Path(folder)
    meta = meta if meta is not None else read_scan_json(folder)
    spec = spec_from_meta(meta)
    family = registry.of_scan(meta)
    p = _Paths(folder)
    fixed = meta["fixed"]
    R = int(fixed["replicas"])
    known = family.adaptive_axes()
    sets = [s for a in spec.axes for s in known[a.name].sets if s != a.name and s not in spec.dims]
    try:
        names = set(os.listdir(p.cells))
    except OSError:
        names = set()

    entries = []  # (coords, status, error, summary or None)
    for key in _keys(names):
        st = _cell_status(p, key, names)
        if st == "pending":
            continue
        coords, ds, error = None, None, ""
        if st == "done":
            try:
                info = os.stat(p.nc(key))
                ds = _cell_summary(str(p.nc(key)), info.st_mtime_ns, info.st_size)
                coords = json.loads(ds.attrs["scan_cell"])
            except (OSError, MfphysError, KeyError, ValueError):
                continue
        elif st == "failed":
            rec = read_json(p.failed(key)) or {}
            coords = rec.get("scan_cell") if isinstance(rec, dict) else None
            error = str(rec.get("error", "failed (no readable record)")) if isinstance(rec, dict) else "failed"
        if not isinstance(coords, dict):
            coords = parse_key(key)
        try:
            combo = tuple((k, coords[k]) for k in spec.base.dims)
            cell = spec.cell(combo, [float(coords[a.name]) for a in spec.axes])
        except (KeyError, ValueError, TypeError, MfphysError):
            continue  # not a cell of this scan
        entries.append((cell, st, error, ds))
    entries.sort(key=lambda e: tuple(str(v) if isinstance(v, str) else v for _, v in e[0].coords))

    n = len(entries)
    options = [spec.options(c) for c, *_ in entries]
    part = family.unit
    part_values = family.scan_matrices(options) if options else family.scan_matrices(
        [spec.options(c) for c in spec.corners()])
    L = len(part_values)
    E = max([int(o["epochs"]) for o in options] or [1])
    done = [(i, ds) for i, (_, st, _, ds) in enumerate(entries) if st == "done" and ds is not None]
    dyn_epochs = np.unique(np.concatenate([np.zeros(0, dtype=np.int64)] + [
        ds["dyn_epoch"].values for _, ds in done if "dyn_epoch" in ds.coords])).astype(np.int64)
    sizes = {"replica": R, part: L, "epoch": E, "dyn_epoch": len(dyn_epochs)}
    targets = list(spec.target)

    n_conn = np.full((n, L), np.nan)
    n_conn_live = np.full((n, L), np.nan)
    seconds = np.full(n, np.nan)
    test_error = np.full((n, R), np.nan)
    target = np.full((n, len(targets)), np.nan)
    arrays: dict = {}
    for i, opts in enumerate(options):
        conn = family.connections(opts)
        n_conn[i][: len(conn)] = conn
    for i, ds in done:
        n_conn_live[i] = n_conn[i]
        live = family.live_connections(options[i], int(ds.attrs.get("n_dead_inputs", 0)))
        if live is not None:
            n_conn_live[i][: len(live)] = live
        if "test_acc" in ds:
            test_error[i] = 1.0 - ds["test_acc"].isel(epoch=-1).values
        with contextlib.suppress(ValueError, KeyError, TypeError):
            seconds[i] = json.loads(ds.attrs.get("timings", "{}"))["train_seconds"]
        for j, t in enumerate(targets):
            with contextlib.suppress(MfphysError, KeyError, ValueError):
                target[i, j] = target_value(ds, t, options[i], spec.model)
        for name, var in ds.data_vars.items():
            if not _combinable(var.dims):
                continue
            if name not in arrays:
                arrays[name] = (var.dims, np.full((n,) + tuple(sizes[d] for d in var.dims), np.nan), dict(var.attrs))
            where = tuple(np.searchsorted(dyn_epochs, ds["dyn_epoch"].values) if d == "dyn_epoch" else slice(0, k)
                          for d, k in zip(var.dims, var.shape))
            arrays[name][1][i][where] = var.values

    dims = list(spec.dims)
    coords_out = {}
    for k in dims + sets:
        col = [dict(c.coords).get(k, o.get(k)) for (c, *_), o in zip(entries, options)]
        coords_out[k] = ("cell", np.asarray(col) if col else np.zeros(0))
    coords_out.update({"cell": np.arange(n), "replica": np.arange(R), part: np.asarray(part_values),
                       "epoch": np.arange(1, E + 1), "target_name": np.asarray(targets)})
    if len(dyn_epochs):
        coords_out["dyn_epoch"] = dyn_epochs
    data = {(RENAMED.get(name, name + "_cell") if name in coords_out else name): (("cell",) + vd, arr, attrs)
            for name, (vd, arr, attrs) in arrays.items()}
    data["test_error"] = (("cell", "replica"), test_error,
                          {"long_name": "test error 1 - test_acc at the cell's last epoch", "units": "1"})
    data["train_seconds"] = (("cell",), seconds, {"long_name": "wall-clock training time of the cell", "units": "s"})
    data["n_connections"] = (("cell", part), n_conn, {"long_name": family.connections_text, "units": "1"})
    if family.live_inputs:
        data["n_connections_live"] = (("cell", part), n_conn_live,
                                      {"long_name": f"{family.connections_text}, layer 1 from live inputs only "
                                                    "(NaN until the cell is done)", "units": "1"})
    data["target"] = (("cell", "target_name"), target,
                      {"long_name": "the adaptive scan's targets (mean over replicas), as its learner was told"})
    data["status"] = (("cell",), np.asarray([e[1] for e in entries], dtype="U7"),
                      {"long_name": "cell status: running, done or failed"})
    data["error"] = (("cell",), np.asarray([e[2] for e in entries], dtype=str).astype(str),
                     {"long_name": "error of a failed cell ('' when none)"})
    out = xr.Dataset({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in data.items()}, coords=coords_out)
    out.attrs = {store.KIND_ATTR: "scan", "name": meta.get("name", folder.name), "grid": json.dumps(meta["grid"]),
                 "fixed": json.dumps(fixed), "scan_hash": meta.get("scan_hash", ""),
                 "mfphys_version": meta.get("mfphys_version", ""), "created": meta.get("created", ""),
                 "folder": str(folder), "model": family.name, "adaptive": json.dumps(meta["adaptive"])}
    return out


def interpolate(ds, values, *, points: int = 64):
    """A per-cell quantity of an adaptive scan (:func:`open_adaptive`) on a regular grid of its
    continuous axes, for plotting: ``values`` is a variable name or a DataArray along ``cell``
    (a ``replica`` dimension is averaged). One continuous axis: linear interpolation between the
    done cells of each combination of the discrete axes; two: linear on the triangulation of the
    cells (``scipy.interpolate.griddata``). NaN outside the cells' hull. The grid is evenly spaced
    on each axis's own scale (log or linear). Returns a DataArray over the discrete axes (those
    with more than one value) and the continuous ones."""
    import xarray as xr

    ad = json.loads(ds.attrs["adaptive"])
    cont = list(ad["axes"])
    disc = [d for d in ad.get("discrete", []) if len(np.unique(ds[d].values)) > 1] if ds.sizes["cell"] else []
    if len(cont) > 2:
        raise MfphysError(f"an interpolated view takes one or two continuous axes; this scan has {', '.join(cont)}")
    da = ds[values] if isinstance(values, str) else values
    if "replica" in da.dims:
        da = da.mean("replica")
    if set(da.dims) != {"cell"}:
        raise MfphysError(f"interpolate: give one number per cell (dims: {', '.join(da.dims)})")
    ok = (ds["status"] == "done").values & np.isfinite(da.values)

    def scale(name, x):
        return np.log10(np.asarray(x, dtype=float)) if ad["axes"][name]["scale"] == "log" else np.asarray(x, float)

    grids = []
    for name in cont:
        lo, hi = ad["axes"][name]["bounds"]
        u = np.linspace(*scale(name, [lo, hi]), points)
        grids.append(10.0 ** u if ad["axes"][name]["scale"] == "log" else u)
    combos = sorted({tuple(ds[d].values[i].item() for d in disc) for i in range(ds.sizes["cell"])}) if disc else [()]
    out = np.full((len(combos),) + (points,) * len(cont), np.nan)
    for c, combo in enumerate(combos):
        sel = ok.copy()
        for d, v in zip(disc, combo):
            sel &= ds[d].values == v
        if not sel.any():
            continue
        y = da.values[sel]
        if len(cont) == 1:
            x = scale(cont[0], ds[cont[0]].values[sel])
            order = np.argsort(x)
            x, y = x[order], y[order]
            g = scale(cont[0], grids[0])
            out[c] = np.where((g >= x[0]) & (g <= x[-1]), np.interp(g, x, y), np.nan)
        else:
            from scipy.interpolate import griddata

            xy = np.stack([scale(n, ds[n].values[sel]) for n in cont], axis=-1)
            gx, gy = np.meshgrid(scale(cont[0], grids[0]), scale(cont[1], grids[1]), indexing="ij")
            if len(y) >= 3:
                with contextlib.suppress(Exception):  # collinear cells: no triangulation yet
                    out[c] = griddata(xy, y, (gx, gy), method="linear")
    coords = {n: g for n, g in zip(cont, grids)}
    if disc:
        index = {d: ("combo", [combo[i] for combo in combos]) for i, d in enumerate(disc)}
        arr = xr.DataArray(out, dims=("combo", *cont), coords={**coords, **index})
        if len(disc) == 1:
            arr = arr.swap_dims(combo=disc[0])
        return arr
    return xr.DataArray(out[0], dims=tuple(cont), coords=coords)


def gridded(ds):
    """An adaptive scan's cells (:func:`open_adaptive`) on the grid of the coordinates they have:
    every distinct value of each axis is a row or column, each cell sits at its own place and
    the places no cell has sampled are ``pending`` (NaN). The dataset then has the shape of a grid
    scan's (:func:`mfphys.open_scan`), for views that draw grids (the TUI's heatmap shows an
    adaptive scan filling in while it runs); its cell keys are the adaptive cells' keys."""
    import xarray as xr

    ad = json.loads(ds.attrs["adaptive"])
    dims = [*ad.get("discrete", []), *ad["axes"]]
    values = {d: np.unique(ds[d].values) for d in dims}
    shape = tuple(len(values[d]) for d in dims)
    index = tuple(np.searchsorted(values[d], ds[d].values) for d in dims)
    data = {}
    for name, var in ds.data_vars.items():
        if "cell" not in var.dims:
            continue
        rest = [d for d in var.dims if d != "cell"]
        arr = np.asarray(var.transpose("cell", *rest).values)
        if name in ("status", "error"):
            fill = np.full(shape + arr.shape[1:], "pending" if name == "status" else "", dtype=object)
        else:
            fill = np.full(shape + arr.shape[1:], np.nan)
        fill[index] = arr
        data[name] = xr.Variable(tuple(dims) + tuple(rest), fill.astype(str) if name in ("status", "error") else fill,
                                 attrs=var.attrs)
    coords = {d: values[d] for d in dims}
    coords.update({k: v for k, v in ds.coords.items() if "cell" not in v.dims and k != "cell"})
    return xr.Dataset(data, coords=coords, attrs=dict(ds.attrs))
