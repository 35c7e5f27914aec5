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
from . import index as scan_index
from .folder import KIND, _cell_status, _entry_vouches, _file_belongs, _grid_cells, _Paths, read_scan_json, scan_spec
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


def open_scan(folder: str | os.PathLike, *, index: bool = True) -> xr.Dataset:
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
    because a scan is being written. A cell file that is not this scan's (other coordinates,
    or neither the scan's ``scan_hash`` nor the cell's expected ``config_hash``) is left out.

    ``index``: read the finished cells' numbers from the scan index ``cells.index`` where its
    entries are current, reading (and adding to the index) only the cells it lacks
    (docs/scans.md, "The scan index"); False reads every cell file and leaves the index alone.
    The result is the same either way.

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
    # every value of scan.json makes a configuration (else one line); a cell is done only if its
    # file is of this cell's configuration (_entry_vouches, _file_belongs; docs/guarantees.md)
    _check_spec(json.dumps(meta, sort_keys=True), str(p.scan_json))
    dims = tuple(meta["dims"])
    grid, fixed = meta["grid"], meta["fixed"]
    shape = tuple(len(grid[k]) for k in dims)
    R = int(fixed["replicas"])
    family = registry.of_scan(meta)

    cells, options_of, part_values, n_conn, E = _static(json.dumps(meta, sort_keys=True))
    n_conn = n_conn.copy()
    part = family.unit
    L = len(part_values)
    sizes = {"replica": R, part: L, "epoch": E}
    names, stats = _listing(p.cells)
    states = [_cell_status(p, key, names) for _, _, key in cells]
    # the same folder as last time (cell files, statuses, failures, index): the same view
    signature = (index, json.dumps(meta, sort_keys=True), stats, states,
                 [_stat(p.failed(key)) for (_, _, key), st in zip(cells, states) if st == "failed"])
    hit = _VIEWS.get(str(folder.resolve()))
    if hit is not None and hit[0] == signature and hit[1] == (_stat(p.index) if index else None):
        return hit[2].copy(deep=True)  # the caller's own arrays: the kept view stays as built
    entries, size, damaged = scan_index.read(p.index) if index else ({}, 0, 0)

    n = len(cells)
    status = np.full(n, "pending", dtype=object)
    error = np.full(n, "", dtype=object)
    n_conn_live = np.full((n, L), np.nan)
    seconds = np.full(n, np.nan)
    done: list[tuple[int, scan_index.Entry]] = []
    fresh: list[bytes] = []  # records of cells read from their files, for the index
    for row, (_, coords, key) in enumerate(cells):
        options = options_of[row]
        st = states[row]
        if st == "failed":
            info = read_json(p.failed(key)) or {}
            error[row] = str(info.get("error", "failed (no readable record)"))
        if st != "done":
            status[row] = st
            continue
        entry = entries.get(key)
        stat = stats.get(key)
        if not _entry_vouches(meta, key, coords, entry, stat):
            entry = _entry_from_file(p, meta, key, coords, stat)
            if entry == FOREIGN:  # another scan's cell (or another configuration's): reported, never combined
                status[row] = "failed"
                error[row] = (f"cells/{key}.nc was made by another configuration: not combined; move it away and "
                              f"run the scan again to train this cell")
                continue
            if entry is None:  # vanished or not readable: treat as not done
                continue
            fresh.append(entry[1])
            entry = entry[0]
        status[row] = "done"
        n_conn_live[row] = n_conn[row]
        live = family.live_connections(options, int(entry.cell.get("n_dead_inputs") or 0))
        if live is not None:
            n_conn_live[row][: len(live)] = live
        done.append((row, entry))
        if entry.cell.get("train_seconds") is not None:
            seconds[row] = entry.cell["train_seconds"]
    if index and fresh:
        _update_index(p, fresh, entries, {e.cell["key"] for _, e in done}, damaged > size // 2)

    arrays, dyn_epochs, test_error = _stack(done, n, sizes, R)

    def shape_of(arr):  # (cells, ...) -> (grid..., ...)
        return arr.reshape(shape + arr.shape[1:])

    coords_out = {k: np.asarray(grid[k]) for k in dims}
    coords_out.update({"replica": np.arange(R), part: np.asarray(part_values), "epoch": np.arange(1, E + 1)})
    if len(dyn_epochs):
        coords_out["dyn_epoch"] = dyn_epochs
    # a run variable named like a scanned option (the per-epoch `lr` when lr is scanned) is renamed
    data = {(RENAMED.get(name, name + "_cell") if name in dims else name): (dims + vd, shape_of(arr), attrs)
            for name, (vd, arr, attrs) in arrays.items()}
    data["test_error"] = (dims + ("replica",), shape_of(test_error),
                          {"long_name": "test error 1 - test_acc at the cell's last epoch", "units": "1"})
    data["train_seconds"] = (dims, shape_of(seconds), {"long_name": "wall-clock training time of the cell",
                                                       "units": "s"})
    data["n_connections"] = (dims + (part,), shape_of(n_conn), {"long_name": family.connections_text, "units": "1"})
    if family.live_inputs:
        data["n_connections_live"] = (dims + (part,), shape_of(n_conn_live),
                                      {"long_name": f"{family.connections_text}, layer 1 from live inputs only "
                                                    "(NaN until the cell is done)", "units": "1"})
    data["status"] = (dims, shape_of(status.astype("U7")),
                      {"long_name": "cell status: pending, running, done or failed"})
    data["error"] = (dims, shape_of(error.astype(str)), {"long_name": "error of a failed cell ('' when none)"})
    out = xr.Dataset({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in data.items()}, coords=coords_out)
    out.attrs = {store.KIND_ATTR: KIND, "name": meta.get("name", folder.name), "grid": json.dumps(grid),
                 "fixed": json.dumps(fixed), "scan_hash": meta.get("scan_hash", ""),
                 "mfphys_version": meta.get("mfphys_version", ""), "created": meta.get("created", ""),
                 "folder": str(folder), "model": family.name}
    if len(_VIEWS) >= 4:
        _VIEWS.pop(next(iter(_VIEWS)))
    _VIEWS[str(folder.resolve())] = (signature, _stat(p.index) if index else None, out)
    return out.copy(deep=True)


#: the last view of each folder, with the signature it was built for (see :func:`open_scan`)
_VIEWS: dict = {}


def _stat(path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _static(meta_json: str) -> tuple:
    """What a scan.json alone decides, built once per scan and process: the cells ``(index,
    coords, key)``, each cell's options, the parts (layers or matrices) and the connection counts
    ``(cells, parts)`` and the most epochs of a cell."""
    meta = json.loads(meta_json)
    family = registry.of_scan(meta)
    cells = _grid_cells(meta)
    options_of = [{**meta["fixed"], **dict(c)} for _, c, _ in cells]
    part_values = family.scan_matrices(options_of)
    n_conn = np.full((len(cells), len(part_values)), np.nan)
    for row, options in enumerate(options_of):
        conn = family.connections(options)
        n_conn[row][: len(conn)] = conn
    return cells, options_of, part_values, n_conn, max(int(o["epochs"]) for o in options_of)


def _listing(cells: Path) -> tuple[set, dict]:
    """The names in ``cells/`` and the ``(mtime_ns, size)`` of each cell file by key (one scandir)."""
    names, stats = set(), {}
    try:
        with os.scandir(cells) as it:
            for e in it:
                names.add(e.name)
                if e.name.endswith(".nc") and not e.name.endswith(".partial.nc") and not e.name.startswith("."):
                    with contextlib.suppress(OSError):
                        st = e.stat()
                        stats[e.name[:-3]] = (st.st_mtime_ns, st.st_size)
    except OSError:
        pass
    return names, stats


@functools.lru_cache(maxsize=8)
def _check_spec(text: str, where: str) -> None:
    """Refuse, in one line, a scan.json whose values make no configuration (once per scan and process:
    :func:`~mfphys.scan.folder.scan_spec` builds every cell's configuration)."""
    scan_spec(json.loads(text), where)


#: what :func:`_entry_from_file` says of a cell file of another configuration or scan
FOREIGN = "foreign"


def _combined_vars(ds: xr.Dataset) -> list[tuple]:
    return [(name, var.dims, var.values, var.attrs) for name, var in ds.data_vars.items() if _combinable(var.dims)]


def cell_record(ds: xr.Dataset, key: str, coords, stat: tuple[int, int]) -> bytes | None:
    """The index record (:mod:`mfphys.scan.index`) of a cell's dataset, whose file has
    ``stat`` = ``(mtime_ns, size)``: its combinable variables and the per-cell numbers the view
    needs. None when the cell cannot be indexed (it is then read from its file)."""
    seconds = None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        seconds = float(json.loads(ds.attrs.get("timings", "{}"))["train_seconds"])
    dead = ds.attrs.get("n_dead_inputs")
    if dead is None and "dead_inputs" in ds and ds["dead_inputs"].ndim == 1:  # for layer 1's live connections
        dead = ds["dead_inputs"].values.sum()
    cell = {"key": key, "coords": dict(coords), "mtime_ns": int(stat[0]), "size": int(stat[1]),
            "train_seconds": seconds, "n_dead_inputs": None if dead is None else int(dead),
            "config_hash": ds.attrs.get("config_hash"), "scan_hash": ds.attrs.get("scan_hash")}
    dyn = ds["dyn_epoch"].values if "dyn_epoch" in ds.coords else None
    return scan_index.encode(cell, _combined_vars(ds), dyn)


def _entry_from_file(p: _Paths, meta, key: str, coords, stat):
    """A done cell read from its file: (its decoded index entry, its record); None when it vanished
    or cannot be read, :data:`FOREIGN` when it is not this scan's cell."""
    try:
        if stat is None:
            info = os.stat(p.nc(key))
            stat = (info.st_mtime_ns, info.st_size)
        ds = _cell_summary(str(p.nc(key)), *stat)
    except (OSError, MfphysError):
        return None
    if not _file_belongs(ds.attrs, meta, key, coords):
        return FOREIGN
    record = cell_record(ds, key, coords, stat)
    if record is None:
        return None
    entries: dict = {}
    scan_index._parse(memoryview(record), 0, entries)
    return entries[key], record


def _update_index(p: _Paths, fresh: list[bytes], entries: dict, live: set, damaged: bool) -> None:
    """Add the records of cells read from their files to the index; rewrite it whole when most of
    it is dead (entries of cells written again or gone, damaged bytes). A folder we cannot write
    in keeps its index as it is."""
    with contextlib.suppress(OSError, MfphysError):
        scan_index.append(p.index, fresh)
        if damaged or len(entries) > 2 * len(live) + 64:
            scan_index.rewrite(p.index, live)


def _stack(done: list, n: int, sizes: dict, R: int):
    """The combined arrays of the done cells' index entries, ``(n cells, *sizes)`` per variable:
    ``{name: (dims, array, attrs)}`` (in the order of their first cell in the grid), the union
    of the cells' ``dyn_epoch`` and ``test_error`` ``(n, R)``.

    Cells of one layout (the same variables and shapes) are decoded as one array."""
    groups: dict[bytes, list] = {}
    for row, entry in done:
        groups.setdefault(entry.layout, []).append((row, entry))
    layouts = {raw: scan_index.layout(raw) for raw in groups}
    dyn_epochs = np.unique(np.concatenate([np.zeros(0, dtype=np.int64)] + [
        lay.dyn_epoch for lay in layouts.values() if lay.dyn_epoch is not None])).astype(np.int64)
    sizes = {**sizes, "dyn_epoch": len(dyn_epochs)}
    first: dict[str, tuple] = {}  # name -> (first row, place in its layout, dims, attrs)
    for raw, members in groups.items():
        row0 = members[0][0]
        for k, (name, vdims, _, _, attrs, _, _) in enumerate(layouts[raw].vars):
            if _combinable(vdims) and (name not in first or (row0, k) < first[name][:2]):
                first[name] = (row0, k, vdims, attrs)
    arrays = {name: (vdims, np.full((n,) + tuple(sizes[d] for d in vdims), np.nan), dict(attrs))
              for name, (_, _, vdims, attrs) in sorted(first.items(), key=lambda kv: kv[1][:2])}
    test_error = np.full((n, R), np.nan)
    for raw, members in groups.items():
        lay = layouts[raw]
        rows = np.asarray([row for row, _ in members], dtype=np.int64)
        blob = np.frombuffer(b"".join(e.data for _, e in members), dtype=np.uint8).reshape(len(members), -1)
        where_dyn = (np.searchsorted(dyn_epochs, lay.dyn_epoch) if lay.dyn_epoch is not None
                     else np.zeros(0, dtype=np.int64))
        for name, vdims, dtype, vshape, _, offset, nbytes in lay.vars:
            if name not in arrays:
                continue
            values = np.ascontiguousarray(blob[:, offset:offset + nbytes]).view(dtype).reshape((len(rows),) + vshape)
            target = arrays[name][1]
            axes = [where_dyn if d == "dyn_epoch" else np.arange(k) for d, k in zip(vdims, vshape)]
            target[np.ix_(rows, *axes)] = values
            if name == "test_acc" and "epoch" in vdims:
                test_error[rows] = 1.0 - np.take(values, -1, axis=1 + vdims.index("epoch")).reshape(len(rows), -1)
    return arrays, dyn_epochs, test_error


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
