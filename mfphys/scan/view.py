"""The combined view of a scan: every cell file of a folder as one ``xarray.Dataset``.

:func:`open_scan` stacks the small per-layer and per-epoch variables of the finished cells
over the grid (docs/scans.md, "Reading a scan from Python"); the per-connection arrays stay
in the cell files (:func:`cell_path`). Each cell file is read once per version (a cache keyed
by path, mtime and size), so a monitor can re-open a large running scan every few seconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from .. import registry, store
from ..errors import MfphysError
from ..fileio import read_json
from .folder import KIND, _cell_status, _grid_cells, _Paths, read_scan_json, scan_spec
from .spec import cell_key

#: new names of run variables that collide with a scanned coordinate (others get a "_cell" suffix)
RENAMED = {"lr": "lr_schedule"}


def _combinable(dims: tuple) -> bool:
    # "matrix": the per-matrix order parameters of recurrent cells (docs/file-format.md "Recurrent runs")
    return bool(dims) and set(dims) <= {"replica", "layer", "matrix", "epoch", "dyn_epoch"}


@functools.lru_cache(maxsize=8192)
def _cell_summary(path: str, mtime_ns: int, size: int) -> xr.Dataset:
    """The combinable variables of one cell file, read once per (path, mtime, size).

    Only what the combined view keeps is loaded (not the per-connection pi/m/Xi arrays or the
    histograms), and an unchanged file is never read twice in a process, so refreshing a
    large running scan (the TUI does it every few seconds) reads only the cells that changed.
    The cached datasets are shared: callers must not modify them.
    """
    try:
        with store.NETCDF_LOCK, xr.open_dataset(path, engine=store.ENGINE) as ds:
            keep = [k for k, v in ds.data_vars.items() if _combinable(v.dims)]
            out = ds[keep].load()
            if "dead_inputs" in ds and ds["dead_inputs"].ndim == 1:  # for layer 1's live connections
                out.attrs["n_dead_inputs"] = int(ds["dead_inputs"].values.sum())
            return out
    except Exception as exc:  # vanished, half-written by a foreign writer, or not netCDF
        raise MfphysError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def open_scan(folder: str | os.PathLike) -> xr.Dataset:
    """One in-memory ``xarray.Dataset`` of a whole scan (docs/scans.md, "Reading a scan from Python").

    Dimensions: the scanned options in grid order (e.g. ``depth``, ``n_train``), then
    ``replica``, ``layer`` (1..max depth + 1), ``epoch`` and ``dyn_epoch`` (the epochs at which
    any cell recorded its order parameters while training). Every ``(replica, layer)``,
    ``(replica, epoch)``, ``(replica,)``, ``(epoch,)`` and ``(replica, dyn_epoch, layer)``
    (``dyn_<name>``, docs/file-format.md "Dynamics") variable of the cell files is combined,
    NaN where a cell is not done, a layer does not exist at that depth or a cell did not
    record that epoch; plus
    ``status`` ("pending" / "running" / "done" / "failed") and ``error`` per cell,
    ``test_error`` (1 - test_acc at the cell's last epoch), ``train_seconds``,
    ``n_connections`` (per layer, for network-wide averages, see :func:`network_mean`) and
    ``n_connections_live`` (the same, layer 1 counting only connections from live inputs).
    Per-connection arrays and histograms stay in the cell files (``cell_path``). A run variable
    named like a scanned option is renamed (the per-epoch ``lr`` becomes ``lr_schedule`` when
    lr is scanned).
    Cells that vanish or cannot be read while this runs count as pending; it never fails
    because a scan is being written.

    An adaptive scan (:mod:`mfphys.scan.adaptive`) gives its cells along a ``cell`` dimension
    instead of a grid (:func:`mfphys.scan.adaptive_view.open_adaptive`).

    A scan of a family whose weight matrices are named (the recurrent one) has ``matrix`` (input, recurrent,
    output) in place of ``layer``: its grid ``steps`` x ``n_train`` [x other options], then
    ``replica``, ``matrix``, ``epoch``; the per-matrix order parameters (``frac_uip``,
    ``frac_vip``, ``entropy``, ... and their ``_nodiag`` twins, the recurrent matrix without
    its diagonal), the accuracies of every evaluation mode (``test_acc_mf``, ``test_acc_noisy``,
    ``test_acc_quenched``, ``test_acc_annealed``, ``test_acc_quenched_vote``), the epoch curves
    (``train_loss``, ``test_acc``), ``test_error`` and ``n_connections`` per matrix.
    """
    folder = Path(folder)
    meta = read_scan_json(folder)
    if "adaptive" in meta:  # cells along `cell`, not a grid (docs/scans.md "Adaptive scans")
        from .adaptive_view import open_adaptive

        return open_adaptive(folder, meta)
    p = _Paths(folder)
    # a cell is done only if its file is of this cell's configuration (docs/guarantees.md)
    expected = {c.key: c.config_hash for c in scan_spec(meta, p.scan_json).cells()}
    dims = tuple(meta["dims"])
    grid, fixed = meta["grid"], meta["fixed"]
    shape = tuple(len(grid[k]) for k in dims)
    R = int(fixed["replicas"])
    family = registry.of_scan(meta)

    def opt(coords, k):
        return dict(coords).get(k, fixed.get(k))

    cells = _grid_cells(meta)
    E = max(int(opt(c, "epochs")) for _, c, _ in cells)
    part = family.unit
    part_values = family.scan_matrices([{**fixed, **dict(c)} for _, c, _ in cells])
    L = len(part_values)
    sizes = {"replica": R, part: L, "epoch": E}
    try:
        names = set(os.listdir(p.cells))
    except OSError:
        names = set()

    status = np.full(shape, "pending", dtype=object)
    error = np.full(shape, "", dtype=object)
    n_conn = np.full(shape + (L,), np.nan)
    n_conn_live = np.full(shape + (L,), np.nan)
    seconds = np.full(shape, np.nan)
    test_error = np.full(shape + (R,), np.nan)
    arrays: dict[str, tuple[tuple, np.ndarray, dict]] = {}
    done: list[tuple[tuple, xr.Dataset]] = []
    for index, coords, key in cells:
        options = {**fixed, **dict(coords)}
        conn = family.connections(options)
        n_conn[index][: len(conn)] = conn
        st = _cell_status(p, key, names)
        if st == "failed":
            info = read_json(p.failed(key)) or {}
            error[index] = str(info.get("error", "failed (no readable record)"))
        if st != "done":
            status[index] = st
            continue
        try:
            info = os.stat(p.nc(key))
            ds = _cell_summary(str(p.nc(key)), info.st_mtime_ns, info.st_size)
        except (OSError, MfphysError):  # vanished or not readable: treat as not done
            continue
        if ds.attrs.get("config_hash") != expected[key]:
            # another scan's cell (or another configuration's): reported, never combined
            status[index] = "failed"
            error[index] = (f"cells/{key}.nc was made by another configuration: not combined; move it away and "
                            f"run the scan again to train this cell")
            continue
        with contextlib.suppress(TypeError, ValueError):
            if json.loads(ds.attrs.get("scan_cell", "null")) != dict(coords):
                continue
        status[index] = "done"
        n_conn_live[index] = n_conn[index]
        live = family.live_connections(options, int(ds.attrs.get("n_dead_inputs", 0)))
        if live is not None:
            n_conn_live[index][: len(live)] = live
        done.append((index, ds))
        if "test_acc" in ds:
            test_error[index] = 1.0 - ds["test_acc"].isel(epoch=-1).values
        with contextlib.suppress(ValueError, KeyError, TypeError):
            seconds[index] = json.loads(ds.attrs.get("timings", "{}"))["train_seconds"]

    # the order parameters recorded during training: every cell's samples on the union of their epochs
    dyn_epochs = np.unique(np.concatenate([np.zeros(0, dtype=np.int64)] + [
        ds["dyn_epoch"].values for _, ds in done if "dyn_epoch" in ds.coords])).astype(np.int64)
    sizes["dyn_epoch"] = len(dyn_epochs)
    for index, ds in done:
        for name, var in ds.data_vars.items():
            if not _combinable(var.dims):
                continue
            if name not in arrays:
                arrays[name] = (var.dims, np.full(shape + tuple(sizes[d] for d in var.dims), np.nan),
                                dict(var.attrs))
            target = arrays[name][1][index]
            where = tuple(np.searchsorted(dyn_epochs, ds["dyn_epoch"].values) if d == "dyn_epoch" else slice(0, n)
                          for d, n in zip(var.dims, var.shape))
            target[where] = var.values  # one index array among slices: NumPy keeps the axis order

    coords_out = {k: np.asarray(grid[k]) for k in dims}
    coords_out.update({"replica": np.arange(R), part: np.asarray(part_values), "epoch": np.arange(1, E + 1)})
    if len(dyn_epochs):
        coords_out["dyn_epoch"] = dyn_epochs
    # a run variable named like a scanned option (the per-epoch `lr` when lr is scanned) is renamed
    data = {(RENAMED.get(name, name + "_cell") if name in dims else name): (dims + vd, arr, attrs)
            for name, (vd, arr, attrs) in arrays.items()}
    data["test_error"] = (dims + ("replica",), test_error,
                          {"long_name": "test error 1 - test_acc at the cell's last epoch", "units": "1"})
    data["train_seconds"] = (dims, seconds, {"long_name": "wall-clock training time of the cell", "units": "s"})
    data["n_connections"] = (dims + (part,), n_conn, {"long_name": family.connections_text, "units": "1"})
    if family.live_inputs:
        data["n_connections_live"] = (dims + (part,), n_conn_live,
                                      {"long_name": f"{family.connections_text}, layer 1 from live inputs only "
                                                    "(NaN until the cell is done)", "units": "1"})
    data["status"] = (dims, status.astype("U7"), {"long_name": "cell status: pending, running, done or failed"})
    data["error"] = (dims, error.astype(str), {"long_name": "error of a failed cell ('' when none)"})
    out = xr.Dataset({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in data.items()}, coords=coords_out)
    out.attrs = {store.KIND_ATTR: KIND, "name": meta.get("name", folder.name), "grid": json.dumps(grid),
                 "fixed": json.dumps(fixed), "scan_hash": meta.get("scan_hash", ""),
                 "mfphys_version": meta.get("mfphys_version", ""), "created": meta.get("created", ""),
                 "folder": str(folder), "model": family.name}
    return out


def cell_path(folder: str | os.PathLike, **coords) -> Path:
    """The run file of one cell, e.g. ``cell_path("runs/s", depth=2, n_train=1000)``."""
    meta = read_scan_json(folder)
    missing = set(meta["dims"]) - set(coords)
    if missing or set(coords) - set(meta["dims"]):
        raise MfphysError(f"give exactly the scanned coordinates {', '.join(meta['dims'])}")
    return _Paths(Path(folder)).nc(cell_key([(k, coords[k]) for k in meta["dims"]]))


def _order_variable(ds: xr.Dataset, name: str, live: bool) -> xr.DataArray:
    """``name``, or with ``live`` its ``<name>_live`` twin (layer 1 over live inputs) where the scan has one."""
    if live and f"{name}_live" in ds:
        return ds[f"{name}_live"]
    return ds[name]


def network_mean(ds: xr.Dataset, name: str, *, live: bool = True) -> xr.DataArray:
    """A per-layer order parameter averaged over the whole network, weighted by connections.

    E.g. ``network_mean(open_scan(f), "sparsity")`` is the fraction of the connections that are
    absent; layers that do not exist (NaN) drop out. With ``live`` (the default, as in
    ``scan-plot``, the scan table and the TUI), layer 1 counts only the connections from inputs
    that vary over the training set (the ``<name>_live`` numbers, weighted by
    ``n_connections_live``): the numbers docs/order-parameters.md says scans and plots should
    show, since a dead input's connections keep their initial values. ``live=False``: over all
    connections, dead inputs' included.
    Other dimensions are kept: ``network_mean(ds, "dyn_frac_vip", live=True)`` is the fraction
    against ``dyn_epoch`` (docs/file-format.md "Dynamics").
    """
    from ..live import network_mean as weighted_mean  # the one formula, on NumPy arrays

    values = _order_variable(ds, name, live)
    weights = ds["n_connections_live"] if live and f"{name}_live" in ds and "n_connections_live" in ds \
        else ds["n_connections"]
    values, weights = xr.broadcast(values, weights)
    return xr.apply_ufunc(weighted_mean, values, weights, input_core_dims=[["layer"], ["layer"]])


def select_layer(ds: xr.Dataset, name: str, layer: int, *, live: bool = True) -> xr.DataArray:
    """One layer of a per-layer variable in every cell, counted from the input or from the output.

    ``layer >= 1`` is that layer (1 = from the inputs); ``layer <= -1`` counts from the output
    in each cell, so that cells of different depths line up: ``-1`` is the output layer
    (layer 2 at depth 1, layer 3 at depth 2), ``-2`` the last hidden layer. NaN where a cell
    has no such layer. ``live``: as in :func:`network_mean`. Other dimensions (``dyn_epoch`` of
    the ``dyn_*`` variables) are kept.
    """
    values = _order_variable(ds, name, live)
    if layer == 0:
        raise MfphysError("layers are counted from 1 (the inputs' layer) or from -1 (the output layer), not 0")
    if layer > 0:
        if layer not in ds["layer"].values:
            return xr.full_like(values.isel(layer=0, drop=True), np.nan)
        return values.sel(layer=layer, drop=True)
    target = ds["n_connections"].notnull().sum("layer") + 1 + layer  # per cell, 1-based
    valid = target >= 1
    picked = values.sel(layer=target.where(valid, 1).astype(int))
    return picked.where(valid).drop_vars("layer", errors="ignore")
