"""The scan view's model: a scan's combined dataset reduced to the grid a heatmap draws.

:func:`load_scan` reads the combined dataset once (``mfphys.scan.open_scan``, cached by the
scan's finished and failed cells); :func:`scan_grid` then reduces it, from memory, to a
:class:`Grid` of one parameter and layer over the scanned dimensions, per replica and as mean
and spread over replicas (``mfphys.stats.replica_stats``); :func:`overlay_status` puts the
running / pending / finished marks of ``scan_status`` (file names only) over it in between reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.stats import replica_stats

from .cache import CACHE, file_signature, scan_signature
from .format import one_line, plain

#: scan parameters in the order the ``p`` key cycles them; those present in a scan are offered
SCAN_PARAMS = ("test_error", "sampled_error", "sparsity", "frac_vip", "frac_uip", "frac_variable", "mean_pi",
               "mean_xi", "weight_var", "entropy", "train_loss", "test_loss")
NETWORK = "all"  # the layer choice "whole network": connection-weighted mean over layers
_DERIVED = {"test_error": "test_acc", "sampled_error": "test_acc_sampled"}


def load_scan(path: str | os.PathLike):
    """The combined Dataset of a scan (folder: ``mfphys.scan.open_scan``; a saved ``.nc``: ``read_dataset``).

    Read once and cached by the folder's listing of finished and failed cells
    (:func:`~.cache.scan_signature` without markers), so the heatmap draws from memory; the
    running and pending marks come from :func:`overlay_status` (file names only) in between
    reads. Raises :class:`MfphysError` (one line) on any problem.
    """
    path = Path(path)

    def load():
        from mfphys import scan

        try:
            ds = store.read_dataset(path) if path.is_file() else scan.open_scan(path)
        except MfphysError:
            raise
        except Exception as exc:
            raise MfphysError(f"cannot open scan {path}: {one_line(exc)}") from None
        if "status" not in ds:
            raise MfphysError(f"{path} is not a combined scan dataset (no 'status' variable)")
        return ds

    sig = file_signature(path) if path.is_file() else scan_signature(path, markers=False)
    return CACHE.get(("scan", path), sig, load)


def scan_dims(ds) -> list[str]:
    """The scanned dimensions (those of ``status``), depth first and n_train second when present."""
    dims = list(ds["status"].dims)
    pref = [d for d in ("depth", "n_train") if d in dims]
    return pref + [d for d in dims if d not in pref]


def _source(ds, param: str) -> str | None:
    """The variable a parameter is read from (``test_error`` may be derived from ``test_acc``)."""
    if param in ds:
        return param
    src = _DERIVED.get(param)
    return src if src in ds else None


def scan_params(ds) -> list[str]:
    """Parameters the scan view can show: :data:`SCAN_PARAMS` present, then other (replica, layer) variables."""
    avail = [p for p in SCAN_PARAMS if _source(ds, p) is not None and "replica" in ds[_source(ds, p)].dims]
    dims = set(scan_dims(ds))
    for k in ds.data_vars:
        v = ds[k]
        if k not in avail and {"replica", "layer"} <= set(v.dims) and set(v.dims) <= dims | {"replica", "layer"} \
                and np.issubdtype(v.dtype, np.number):
            avail.append(str(k))
    return avail


def param_has_layer(ds, param: str) -> bool:
    src = _source(ds, param)
    return src is not None and "layer" in ds[src].dims


def scan_layers(ds) -> list:
    """Layer choices of a scan: 1..L, then :data:`NETWORK` when connection counts are known."""
    if "layer" not in ds.coords:
        return []
    return [int(l) for l in ds["layer"].values] + ([NETWORK] if "n_connections" in ds else [])


@dataclass(frozen=True)
class Grid:
    """A scan parameter over two scanned dimensions, per replica and reduced over replicas.

    ``values`` is ``(rows, cols, R)``; ``mean``, ``spread`` (standard deviation over replicas,
    NaN with fewer than two), ``sem`` and ``n`` (finite replicas) are ``(rows, cols)``;
    ``status`` and ``error`` are per cell (text).
    """

    param: str
    layer: int | str | None  # a layer number, NETWORK, or None (not per layer)
    row_dim: str
    rows: np.ndarray
    col_dim: str
    cols: np.ndarray
    values: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    sem: np.ndarray
    n: np.ndarray
    status: np.ndarray
    error: np.ndarray
    reduced: tuple = ()  # further scanned dims averaged over

    def shown(self, stat: str) -> np.ndarray:
        return self.spread if stat == "spread" else self.mean


def _param_array(ds, param: str, layer):
    """``(scan dims..., replica)`` DataArray of one parameter, at the last epoch for curves.

    ``layer``: a layer number, or :data:`NETWORK` for the connection-weighted mean over the
    layers that exist (``mfphys.scan.network_mean``).
    """
    src = _source(ds, param)
    if src is None:
        raise MfphysError(f"this scan has no {param!r}")
    if "layer" in ds[src].dims and layer == NETWORK:
        from mfphys.scan import network_mean

        da = network_mean(ds, src)
    else:
        da = ds[src]
        if "layer" in da.dims:
            da = da.sel(layer=layer)
    if "epoch" in da.dims:
        da = da.isel(epoch=-1)
    if src != param:  # an error rate from an accuracy
        da = 1 - da
    return da


def cell_keys(ds) -> np.ndarray:
    """The file key (``depth=2,n_train=400``) of every cell, shaped like ``ds["status"]``."""
    from mfphys.scan import cell_key

    dims = list(ds["status"].dims)
    shape = ds["status"].shape
    keys = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        keys[index] = cell_key([(d, ds[d].values[i].item()) for d, i in zip(dims, index)])
    return keys


def overlay_status(ds, cell_status) -> np.ndarray:
    """Cell statuses now (from ``scan_status``, cheap) over those of the last full read.

    A cell that finished after the last read shows ``unread`` until the next read; a cell
    without fresh news keeps the status it had.
    """
    old = np.asarray(ds["status"].values).astype(object)
    fresh = dict(cell_status)
    if not fresh:
        return old.astype(str)
    keys = cell_keys(ds)
    out = old.copy()
    for index in np.ndindex(*old.shape):
        now = fresh.get(keys[index])
        if now is None:
            continue
        out[index] = "unread" if now == "done" and old[index] != "done" else now
    return out.astype(str)


def scan_grid(ds, param: str, layer=None, *, overlay=None) -> Grid:
    """Reduce a combined scan Dataset to the :class:`Grid` a heatmap draws (pure, from memory).

    Rows are the first scanned dimension (depth), columns the second (n_train; a single
    column when only one dimension is scanned); further scanned dimensions are averaged over.
    ``overlay``: cell statuses to show instead of the stored ones (:func:`overlay_status`).
    """
    dims = scan_dims(ds)
    has_layer = param_has_layer(ds, param)
    if has_layer and layer is None:
        layer = scan_layers(ds)[0]
    da = _param_array(ds, param, layer if has_layer else None)
    row_dim = dims[0]
    col_dim = dims[1] if len(dims) > 1 else ""
    extra = tuple(dims[2:])
    status, error = ds["status"], ds.get("error", None)
    if overlay is not None:  # statuses from overlay_status, newer than the last read
        status = status.copy(data=np.asarray(overlay).astype(str))
    if extra:
        da = da.mean(dim=list(extra), skipna=True)
        status = status.isel({d: 0 for d in extra})
        error = error.isel({d: 0 for d in extra}) if error is not None else None
    order = [row_dim] + ([col_dim] if col_dim else []) + (["replica"] if "replica" in da.dims else [])
    values = np.asarray(da.transpose(*order).values, dtype=float)
    if "replica" not in da.dims:
        values = values[..., None]
    if not col_dim:
        values = values[:, None, :]
    st = np.asarray(status.transpose(*order[:2 if col_dim else 1]).values).astype(str)
    er = (np.asarray(error.transpose(*order[:2 if col_dim else 1]).values).astype(str) if error is not None
          else np.full(st.shape, "", dtype=object))
    if not col_dim:
        st, er = st[:, None], er[:, None]
    er = np.where(np.isin(er, ("nan", "None")), "", er)
    mean, spread, sem, n = replica_stats(values, axis=-1)
    return Grid(param, layer if has_layer else None, row_dim, np.asarray(ds[row_dim].values), col_dim,
                np.asarray(ds[col_dim].values) if col_dim else np.array([""]), values, mean, spread, sem, n,
                st, er, extra)


def grid_table(grid: Grid) -> tuple[list[str], list[list]]:
    """The numbers of a heatmap as CSV rows: one per cell, with every replica's value."""
    R = grid.values.shape[-1]
    header = [grid.row_dim] + ([grid.col_dim] if grid.col_dim else []) + [
        "status", f"{grid.param}_mean", f"{grid.param}_std", f"{grid.param}_sem", "n_replicas",
        *(f"replica_{r}" for r in range(R))]
    rows = []
    for i, rv in enumerate(grid.rows):
        for j, cv in enumerate(grid.cols):
            rows.append([plain(rv)] + ([plain(cv)] if grid.col_dim else []) + [
                str(grid.status[i, j]), grid.mean[i, j], grid.spread[i, j], grid.sem[i, j], int(grid.n[i, j]),
                *grid.values[i, j]])
    return header, rows
