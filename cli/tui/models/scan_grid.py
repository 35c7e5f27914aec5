"""The scan view's model: a scan's combined dataset reduced to the grid a heatmap draws.

:func:`load_scan` reads the combined dataset once (``mfphys.scan.open_scan``, cached by the
scan's finished and failed cells); :func:`scan_grid` then reduces it, from memory, to a
:class:`Grid` of one parameter and layer over the scanned dimensions, per replica and as mean
and spread over replicas (``mfphys.stats.replica_stats``); :func:`overlay_status` puts the
running / pending / finished marks of ``scan_status`` (file names only) over it in between reads.
:func:`scan_trajectories` takes the same parameter and layer against epoch instead, one line
per cell of the heatmap cursor's row or column (the ``dyn_<name>`` variables the cells
recorded while training, docs/file-format.md "Dynamics"; the learning curves for the errors
and losses).

Both model families: the rows and columns are the scan's own scanned dimensions (those of the
combined dataset's ``status``: ``depth`` x ``n_train`` for a feed-forward scan, ``steps`` x
``n_train`` for a recurrent one), and the parameters are per ``layer`` or per ``matrix``
(:func:`part_dim`); a recurrent scan's recurrent matrix is read with or without its diagonal
(the ``<name>_nodiag`` variables, docs/model-rnn.md section 9).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.fileio import quote
from mfphys.live import LIVE_SUFFIX, live_name
from mfphys.stats import replica_stats

from .cache import CACHE, file_signature, scan_signature
from .format import one_line, plain

#: scan parameters in the order the ``p`` key cycles them; those present in a scan are offered.
#: ``frac_uip`` is left out: it is the same set as ``sparsity`` (pi >= 1 - tol)
SCAN_PARAMS = ("test_error", "sampled_error", "sparsity", "frac_vip", "frac_variable", "mean_pi",
               "mean_xi", "weight_var", "entropy", "train_loss", "test_loss")
#: variables never offered as parameters of their own: the same set as sparsity, and the live
#: variants, which the ``inputs`` choice (key ``i``) reads in place of the plain names
_HIDDEN = ("frac_uip", "frac_uip" + LIVE_SUFFIX)
NETWORK = "all"  # the layer choice "whole network": connection-weighted mean over layers
#: a layer counted from the output is a negative number: -1 the output layer, -2 the one below ...
OUTPUT = -1
_DERIVED = {"test_error": "test_acc", "sampled_error": "test_acc_sampled"}
#: the dimensions a parameter may be "per": feed-forward layers, recurrent matrices
PART_DIMS = ("layer", "matrix")
NODIAG_SUFFIX = "_nodiag"
RECURRENT = "recurrent"
#: per cell, the fraction of inputs that vary in its training set (read from the cell files by load_scan)


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
        if "cell" in ds["status"].dims and "adaptive" in ds.attrs:  # an adaptive scan: its cells where they are
            ds = scan.gridded(ds)
        return ds

    sig = file_signature(path) if path.is_file() else scan_signature(path, markers=False)
    return CACHE.get(("scan", path), sig, load)


def scan_dims(ds) -> list[str]:
    """The scanned dimensions (those of ``status``, in the scan's grid order), the depth (or a
    recurrent scan's steps) first and n_train second when present."""
    dims = list(ds["status"].dims)
    pref = [d for d in ("depth", "steps", "n_train") if d in dims][:2]
    return pref + [d for d in dims if d not in pref]


def part_dim(ds) -> str | None:
    """What a scan's parameters are per: ``"layer"`` (feed-forward), ``"matrix"`` (recurrent:
    input, recurrent, output) or None."""
    return next((d for d in PART_DIMS if d in ds.dims), None)


def _var_part(da) -> str | None:
    return next((d for d in PART_DIMS if d in da.dims), None)


def has_nodiag(ds) -> bool:
    """Whether the scan has order parameters without the recurrent diagonal (``<name>_nodiag``)."""
    return any(str(k).endswith(NODIAG_SUFFIX) and "matrix" in ds[k].dims for k in ds.data_vars)


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
    part = part_dim(ds)
    for k in ds.data_vars:
        v = ds[k]
        if k in _HIDDEN or any(str(k).endswith(x) and str(k)[: -len(x)] in ds for x in (LIVE_SUFFIX, NODIAG_SUFFIX)):
            continue
        if part and k not in avail and {"replica", part} <= set(v.dims) and set(v.dims) <= dims | {"replica", part} \
                and np.issubdtype(v.dtype, np.number):
            avail.append(str(k))
    return avail


def has_live_variant(ds, param: str) -> bool:
    """Whether the scan has ``<param>_live`` (layer 1 over live inputs)."""
    src = _source(ds, param)
    return src is not None and live_name(src, ds.data_vars) != src


def param_has_layer(ds, param: str) -> bool:
    """Whether ``param`` is per layer (or per matrix, in a recurrent scan)."""
    src = _source(ds, param)
    return src is not None and _var_part(ds[src]) is not None


def scan_layers(ds, from_output: bool = False) -> list:
    """Layer choices of a scan: 1..L, then :data:`NETWORK` when connection counts are known.

    ``from_output``: counted from the output instead, -1 (the output layer), -2, ... -L, so
    that networks of different depths line up at their output (needs the connection counts,
    which tell each cell's depth). A recurrent scan: its matrices by name (input, recurrent,
    output), the same either way.
    """
    if part_dim(ds) == "matrix" and "matrix" in ds.coords:
        return [str(m) for m in ds["matrix"].values]
    if "layer" not in ds.coords:
        return []
    network = [NETWORK] if "n_connections" in ds else []
    if from_output and network:
        return [-k for k in range(1, ds.sizes["layer"] + 1)] + network
    return [int(l) for l in ds["layer"].values] + network


def involves_layer_1(ds, layer) -> bool:
    """Whether a layer choice shows layer 1 in some cell, the only layer live inputs change:
    layer 1, the whole network, or a layer counted from the output that is layer 1 of a
    cell (output-d at depth d)."""
    if isinstance(layer, str) and layer != NETWORK:  # a recurrent scan's matrix: no live inputs
        return False
    if isinstance(layer, (int, np.integer)) and layer < 0:
        return bool((ds["n_connections"].notnull().sum("layer") + int(layer) == 0).any())
    return layer == 1 or layer == NETWORK


def layer_label(layer) -> str:
    """``layer 2``, ``whole network``, ``output layer``, ``output-1`` (the layer below the output) ..."""
    if layer == NETWORK:
        return "whole network"
    if isinstance(layer, str):  # a recurrent scan's matrix
        return f"{layer} matrix"
    if isinstance(layer, (int, np.integer)) and layer < 0:
        return "output layer" if layer == OUTPUT else f"output{layer + 1}"
    return f"layer {layer}"


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
    inputs: str | None = None  # layer 1 over "live" or "all" inputs; None: no live variant to choose
    diagonal: bool | None = None  # the recurrent matrix with (True) or without its diagonal; None: no choice

    def shown(self, stat: str) -> np.ndarray:
        return self.spread if stat == "spread" else self.mean


def _param_array(ds, param: str, layer, inputs: str = "live", *, last: bool = True, diagonal: bool = True):
    """``(scan dims..., replica)`` DataArray of one parameter, at the last epoch for curves
    (``last=False``: every epoch kept).

    ``layer``: a layer number, a negative number counting from the output (-1 the output
    layer, at each cell's own depth), or :data:`NETWORK` for the connection-weighted mean over
    the layers that exist (``mfphys.scan.network_mean``). ``inputs="live"`` reads the
    ``_live`` variable where the scan has one: layer 1 over live inputs, and in the whole-network
    mean layer 1 weighted by its live connections only. A recurrent scan: ``layer`` is a matrix
    name, and ``diagonal=False`` reads the recurrent matrix without its diagonal (``_nodiag``).
    """
    src = _source(ds, param)
    if src is None:
        raise MfphysError(f"this scan has no {quote(param)}")
    da = _layer_array(ds, src, layer, inputs, diagonal)
    if "epoch" in da.dims and last:
        da = da.isel(epoch=-1)
    if src not in (param, live_name(param, ds.data_vars)):  # an error rate from an accuracy
        da = 1 - da
    return da


def _layer_array(ds, src: str, layer, inputs: str, diagonal: bool = True):
    """Variable ``src`` at one layer choice (see :func:`_param_array`); other dims kept."""
    from mfphys.scan import network_mean, select_layer

    if "matrix" in ds[src].dims:  # a recurrent scan: one matrix, by name
        if not diagonal and layer == RECURRENT and src + NODIAG_SUFFIX in ds:
            src += NODIAG_SUFFIX
        return ds[src].sel(matrix=layer)
    live = inputs == "live"
    if "layer" in ds[src].dims and layer == NETWORK:
        return network_mean(ds, src, live=live)  # layer 1 weighted by its live connections (n_connections_live)
    if "layer" in ds[src].dims:
        return select_layer(ds, src, int(layer), live=live)  # a negative layer counts from each cell's output
    return ds[src]


def cell_keys(ds) -> np.ndarray:
    """The file key (``depth=2,n_train=400``) of every cell, shaped like ``ds["status"]``."""
    from mfphys.scan import cell_key

    dims = list(ds["status"].dims)
    shape = ds["status"].shape
    values = [ds[d].values.tolist() for d in dims]  # once per dimension: ds[d] builds a DataArray
    keys = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        keys[index] = cell_key([(d, v[i]) for d, v, i in zip(dims, values, index)])
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


def scan_grid(ds, param: str, layer=None, *, inputs: str = "live", overlay=None, diagonal: bool = True) -> Grid:
    """Reduce a combined scan Dataset to the :class:`Grid` a heatmap draws (pure, from memory).

    Rows are the first scanned dimension (depth), columns the second (n_train; a single
    column when only one dimension is scanned); further scanned dimensions are averaged over.
    ``inputs``: ``"live"`` (default, as docs/order-parameters.md recommends) reads layer 1 over
    the inputs that vary where the scan has ``_live`` variables, ``"all"`` over every input.
    ``overlay``: cell statuses to show instead of the stored ones (:func:`overlay_status`).
    A recurrent scan (rows ``steps``): ``layer`` is a matrix name, and ``diagonal=False`` reads
    the recurrent matrix without its diagonal where the scan has ``<param>_nodiag``.
    """
    dims = scan_dims(ds)
    has_layer = param_has_layer(ds, param)
    if has_layer and layer is None:
        layer = scan_layers(ds)[0]
    da = _param_array(ds, param, layer if has_layer else None, inputs, diagonal=diagonal)
    shown_inputs = None  # the choice matters only where layer 1 is part of what is shown
    if has_layer and has_live_variant(ds, param) and involves_layer_1(ds, layer):
        shown_inputs = "live" if inputs == "live" else "all"
    shown_diagonal = None  # the choice matters only for the recurrent matrix
    if has_layer and layer == RECURRENT and _source(ds, param) + NODIAG_SUFFIX in ds:
        shown_diagonal = bool(diagonal)
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
                st, er, extra, shown_inputs, shown_diagonal)


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


# --- trajectories: a parameter against epoch, one line per cell of a row or column ---------------


@dataclass(frozen=True)
class Trajectories:
    """One parameter against epoch for the cells of one row or column of a heatmap.

    ``x`` holds the epochs (``dyn_epoch`` for order parameters, ``epoch`` for errors and
    losses); ``mean`` is ``(lines, len(x))``, the mean over replicas (NaN where a cell has no
    value at that epoch); ``labels`` and ``status`` one per line (the coordinate along the line
    dimension, and the cell's status). ``fixed`` says which row or column: ``(dim, value)``.
    """

    param: str
    layer: int | str | None
    along: str  # "row": the cells of the cursor's row (one per column); "column": of its column
    fixed: tuple  # (dim, value) held fixed; () when the scan has one dimension and along == "column"
    line_dim: str
    labels: tuple
    status: tuple
    x: np.ndarray
    mean: np.ndarray
    xlabel: str = "epoch"
    inputs: str | None = None
    diagonal: bool | None = None


def trajectory_source(ds, param: str) -> str | None:
    """The variable holding ``param`` against epoch: ``dyn_<name>`` (recorded while training),
    or a per-epoch curve (``test_error`` from ``test_acc``, ``train_loss``, ``test_loss``); None
    when the scan has none (``sampled_error``: evaluated at the end only)."""
    src = _source(ds, param)
    if src is None:
        return None
    if store.DYN + src in ds and "dyn_epoch" in ds[store.DYN + src].dims:
        return store.DYN + src
    if "epoch" in ds[src].dims:
        return src
    derived = _DERIVED.get(param)  # test_error: the scan keeps the last epoch's; test_acc has them all
    if derived in ds and "epoch" in ds[derived].dims:
        return derived
    return None


def scan_trajectories(ds, param: str, layer=None, *, inputs: str = "live", along: str = "row",
                      cursor: tuple[int, int] = (0, 0), overlay=None, diagonal: bool = True) -> Trajectories | None:
    """``param`` (at ``layer``, as the heatmap shows it) against epoch, mean over replicas, one
    line per cell of the cursor's row (``along="row"``: the cells along the second scanned
    dimension) or column (``"column"``: along the first); further scanned dimensions averaged
    over, as :func:`scan_grid` does. None when the scan recorded no trajectory of ``param``.

    The order parameters are the cells' ``dyn_<name>`` variables (``mfphys.scan.open_scan``
    puts them on the union of the cells' ``dyn_epoch``); whole-network means and layers
    counted from the output work as in the heatmap (``mfphys.scan.network_mean``, ``select_layer``
    keep the ``dyn_epoch`` dimension).
    """
    src = trajectory_source(ds, param)
    if src is None:
        return None
    dims = scan_dims(ds)
    has_layer = _var_part(ds[src]) is not None
    if has_layer and layer is None:
        layer = scan_layers(ds)[0]
    da = _layer_array(ds, src, layer if has_layer else None, inputs, diagonal)
    if not src.startswith(store.DYN) and src not in (param, live_name(param, ds.data_vars)):
        da = 1 - da  # an error rate from an accuracy
    xdim = "dyn_epoch" if "dyn_epoch" in da.dims else "epoch"
    row_dim, col_dim, extra = dims[0], (dims[1] if len(dims) > 1 else ""), dims[2:]
    status = ds["status"] if overlay is None else ds["status"].copy(data=np.asarray(overlay).astype(str))
    if extra:
        da = da.mean(dim=list(extra), skipna=True)
        status = status.isel({d: 0 for d in extra})
    i, j = cursor
    if along == "row" and col_dim:
        fixed, line_dim = (row_dim, plain(ds[row_dim].values[i])), col_dim
        da, status = da.isel({row_dim: i}), status.isel({row_dim: i})
    elif col_dim:
        fixed, line_dim = (col_dim, plain(ds[col_dim].values[j])), row_dim
        da, status = da.isel({col_dim: j}), status.isel({col_dim: j})
    elif along == "row":  # one scanned dimension: a row is one cell
        fixed, line_dim = (row_dim, plain(ds[row_dim].values[i])), row_dim
        da, status = da.isel({row_dim: [i]}), status.isel({row_dim: [i]})
    else:
        fixed, line_dim = (), row_dim
    order = [line_dim] + (["replica"] if "replica" in da.dims else []) + [xdim]
    values = np.asarray(da.transpose(*order).values, dtype=float)
    mean = replica_stats(values, axis=1)[0] if "replica" in da.dims else values
    shown_inputs = None
    if has_layer and src.removeprefix(store.DYN) + LIVE_SUFFIX in ds and involves_layer_1(ds, layer):
        shown_inputs = "live" if inputs == "live" else "all"
    shown_diagonal = bool(diagonal) if has_layer and layer == RECURRENT and src + NODIAG_SUFFIX in ds else None
    return Trajectories(param, layer if has_layer else None, along, fixed, line_dim,
                        tuple(plain(v) for v in da[line_dim].values),
                        tuple(str(v) for v in np.asarray(status.values).ravel()),
                        np.asarray(ds[xdim].values), mean, xlabel="epoch", inputs=shown_inputs,
                        diagonal=shown_diagonal)


def trajectory_table(t: Trajectories) -> tuple[list[str], list[list]]:
    """The lines of :func:`scan_trajectories` as CSV rows: one per epoch, one column per cell."""
    header = ["epoch"] + [f"{t.line_dim}={v}" for v in t.labels]
    return header, [[plain(x)] + list(t.mean[:, k]) for k, x in enumerate(t.x)]


class ScanPayload:
    """A loaded scan: the combined Dataset, its parameters and layers, and the grids drawn so far.

    ``signature``: the scan's data signature when read; ``loaded_at``, ``seconds``: when and
    how long the read took (for throttling re-reads of a scan being written).
    """

    def __init__(self, ds, signature=(), loaded_at: float = 0.0, seconds: float = 0.0):
        self.ds = ds
        self.signature = signature
        self.loaded_at = loaded_at
        self.seconds = seconds
        self.params = scan_params(ds)
        self.layers = scan_layers(ds)
        self._from_output = scan_layers(ds, from_output=True)
        self.grids: dict = {}

    def layers_for(self, from_output: bool) -> list:
        """The layer choices, counted from the input (1, 2, ...) or from the output (-1, -2, ...)."""
        return self._from_output if from_output else self.layers

    def grid(self, param: str, layer, *, inputs: str, cell_status, diagonal: bool) -> Grid:
        """The heatmap's numbers for these choices, with the running / pending marks of
        ``cell_status`` over them; kept, so that keys going back and forth read nothing again."""
        key = (param, layer, inputs, cell_status, diagonal)
        if key not in self.grids:
            overlay = overlay_status(self.ds, cell_status) if cell_status else None
            self.grids = {k: v for k, v in self.grids.items() if k[3] == cell_status}  # drop stale marks
            self.grids[key] = scan_grid(self.ds, param, layer, inputs=inputs, overlay=overlay, diagonal=diagonal)
        return self.grids[key]
