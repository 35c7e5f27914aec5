"""Data for the TUI: pure functions from files to small plain structures (no widgets here).

Everything the app shows comes from this module, so it can be tested without a terminal:

- :func:`list_entries` lists the runs, scans and perturbation files of a folder with their
  kind, status, dataset, architecture, date and, for a file that cannot be used, the error;
- :func:`load_run`, :func:`load_scan`, :func:`load_perturbation` read one entry;
- :func:`scan_grid`, :func:`layer_table`, ... turn what was read into the numbers a view draws
  and exports (mean and spread over replicas, as in ``mfphys.stats``).

Reads go through ``mfphys.store`` (``read_dataset`` / ``open_run``) and ``mfphys.scan``
(``open_scan`` / ``scan_status``), and every exception becomes an error entry or an
:class:`mfphys.errors.MfphysError`, never a crash: a run or scan may be half-written or
vanish between a listing and a read. Results are cached by the file's (mtime, size), or by
the listing of a scan's ``cells/`` folder, so the live refresh re-reads only what changed.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.stats import mean_err

KINDS = ("run", "scan", "perturbation")
#: scan parameters in the order the ``p`` key cycles them; those present in a scan are offered
SCAN_PARAMS = ("test_error", "sampled_error", "sparsity", "frac_vip", "frac_uip", "frac_variable", "mean_pi",
               "mean_xi", "weight_var", "entropy", "train_loss", "test_loss")
#: columns of the run view's per-layer table (docs/model.md section 6)
ORDER_COLUMNS = ("sparsity", "frac_vip", "frac_uip", "frac_variable", "mean_pi", "mean_xi", "weight_var", "entropy")
HIST_NAMES = ("pi", "m", "xi")
MAX_DEPTH = 3  # how deep list_entries looks for run files inside plain sub-folders


@dataclass(frozen=True)
class Entry:
    """One line of the sidebar: a run, scan or perturbation file, or a file that failed to load."""

    path: Path
    name: str  # relative to the listed folder, without ".nc"
    kind: str  # run, scan, perturbation, or "?" when unknown
    status: str  # done, running, failed, pending, error
    dataset: str = ""
    architecture: str = ""
    date: str = ""  # as stored in the file ("created"), minutes resolution
    mode: str = ""  # gbp or bp for runs
    cells: tuple = ()  # scans: (done, failed, running, pending, total)
    error: str = ""
    signature: tuple = field(default=(), compare=True, repr=False)
    cell_status: tuple = field(default=(), repr=False)  # scans: ((key, status), ...) from scan_status
    data_signature: tuple = field(default=(), repr=False)  # scans: scan_signature(markers=False)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def status_text(self) -> str:
        """``done``, ``running 12/120 cells, 1 failed`` ..."""
        if self.kind != "scan" or not self.cells:
            return self.status
        done, failed, running, pending, total = self.cells
        text = f"{self.status} {done}/{total} cells"
        if failed:
            text += f", {failed} failed"
        return text


# --- cache -------------------------------------------------------------------------------------


class _Cache:
    """``(what, path) -> (signature, value)``; a value is reused while the signature holds.

    Thread-safe: the app reads in worker threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._store: dict = {}

    def get(self, key, signature, load):
        with self._lock:
            hit = self._store.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1]
        value = load()
        with self._lock:
            self._store[key] = (signature, value)
        return value

    def clear(self):
        with self._lock:
            self._store.clear()


CACHE = _Cache()


def file_signature(path: Path) -> tuple:
    """(mtime_ns, size) of a file, or () if it vanished."""
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_mtime_ns, st.st_size)


def scan_signature(folder: Path, *, markers: bool = True) -> tuple:
    """The (name, mtime_ns, size) of ``scan.json`` and of the files in ``cells/``: cheap, no reads.

    ``markers=False`` leaves out the ``.running`` markers: the signature of what
    ``open_scan`` reads (finished and failed cells), which decides when to read it again.
    """
    items = []
    for d in (folder, folder / "cells"):
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith(".") or (not markers and e.name.endswith(".running")):
                        continue
                    if e.is_file() and (d != folder or e.name == "scan.json"):
                        try:
                            st = e.stat()
                        except OSError:
                            continue
                        items.append((d.name + "/" + e.name, st.st_mtime_ns, st.st_size))
        except OSError:
            continue
    return tuple(sorted(items))


# --- listing -----------------------------------------------------------------------------------


def _short_date(text) -> str:
    """``2026-11-27T04:04:36+00:00`` -> ``2026-11-27 04:04`` (as stored, no time-zone conversion)."""
    text = str(text or "")
    return text[:16].replace("T", " ")


def read_attrs(path: Path) -> dict:
    """The global attributes of a netCDF file, without loading its variables.

    The same engine and the same error message as :func:`mfphys.store.read_dataset`, which the
    views use for full reads; a file that vanished or is not netCDF raises :class:`MfphysError`.
    """
    import xarray as xr

    if not path.exists():
        raise MfphysError(f"no such file: {path}")
    try:
        with xr.open_dataset(path, engine=store.ENGINE) as ds:
            return dict(ds.attrs)
    except Exception as exc:  # netCDF4 raises OSError/RuntimeError/ValueError for bad files
        raise MfphysError(f"cannot read {path}: not a readable netCDF file ({type(exc).__name__}: {exc})") from None


def _file_entry(path: Path, name: str) -> Entry:
    sig = file_signature(path)
    try:
        attrs = read_attrs(path)
    except MfphysError as exc:
        return Entry(path, name, "?", "error", error=one_line(exc), signature=sig)
    kind = attrs.get(store.KIND_ATTR)
    if kind is None:
        return Entry(path, name, "?", "error", error=f"not an mfphys file (no '{store.KIND_ATTR}' attribute)",
                     signature=sig)
    kind = str(kind)
    if kind not in KINDS:
        return Entry(path, name, kind, "error", error=f"unknown {store.KIND_ATTR} {kind!r}", signature=sig)
    dataset, arch = str(attrs.get("dataset", "")), str(attrs.get("architecture", ""))
    if kind == "perturbation" and (not dataset or not arch):
        dataset, arch = _perturbation_source(attrs, dataset, arch)
    # run files are written whole (atomically), so one that can be listed is done
    return Entry(path, name, kind, "done", dataset, arch, _short_date(attrs.get("created")),
                 str(attrs.get("mode", "")), signature=sig)


def _perturbation_source(attrs: dict, dataset: str, arch: str) -> tuple[str, str]:
    """Dataset and architecture of a perturbation file, from its copy of the run's configuration."""
    try:
        cfg = json.loads(attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return dataset, arch
    if isinstance(cfg, dict):
        dataset = dataset or str(cfg.get("dataset", ""))
        arch = arch or ("-".join(str(n) for n in cfg["layers"]) if "layers" in cfg else "")
    return dataset, arch


def _scan_entry(folder: Path, name: str) -> Entry:
    from mfphys import scan

    sig = scan_signature(folder)
    try:
        meta = scan.read_scan_json(folder)
        counts = scan.scan_status(folder)
    except Exception as exc:
        return Entry(folder, name, "scan", "error", error=one_line(exc), signature=sig)
    cells = tuple(int(counts.get(k, 0)) for k in ("done", "failed", "running", "pending", "total"))
    done, failed, running, pending, total = cells
    if total and done == total:
        status = "done"
    elif running:
        status = "running"
    elif failed and not pending:
        status = "failed"
    else:
        status = "pending"
    fixed = meta.get("fixed") if isinstance(meta.get("fixed"), dict) else {}
    return Entry(folder, name, "scan", status, str(fixed.get("dataset", "")), _scan_architecture(meta),
                 _short_date(meta.get("created")), cells=cells, signature=sig,
                 cell_status=tuple(counts.get("cells", {}).items()),
                 data_signature=scan_signature(folder, markers=False))


def _scan_architecture(meta: dict) -> str:
    """``784-100xd-10`` (depth d scanned), or the fixed architecture, from scan.json."""
    fixed = meta.get("fixed") if isinstance(meta.get("fixed"), dict) else {}
    grid = meta.get("grid") if isinstance(meta.get("grid"), dict) else {}
    try:
        n0, width = fixed.get("input_dim", grid.get("input_dim", ["?"])), fixed.get("width", grid.get("width"))
        depth = fixed.get("depth", grid.get("depth"))
        n0 = n0[0] if isinstance(n0, list) and len(n0) == 1 else n0
        if isinstance(depth, list) and len(depth) == 1:
            depth = depth[0]
        if isinstance(depth, list) or isinstance(width, list) or isinstance(n0, list):
            return f"{n0 if not isinstance(n0, list) else 'N0'}-{width if not isinstance(width, list) else 'W'}xd-10"
        return "-".join([str(n0)] + [str(width)] * int(depth) + ["10"])
    except (TypeError, ValueError):
        return ""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (for a sidebar line or a notice)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def list_entries(root: str | os.PathLike) -> list[Entry]:
    """Runs, scans and perturbation files under ``root``, sorted by name.

    A scan is a folder with ``scan.json`` (its cells are not listed separately); ``.nc`` files
    are listed from ``root`` and plain sub-folders (up to :data:`MAX_DEPTH` deep). Hidden files
    (the temporary files of atomic writes start with a dot) are skipped. Problem files are
    listed with ``status == "error"`` and the reason in ``error``.
    """
    root = Path(root)
    if not root.is_dir():
        raise MfphysError(f"no such folder: {root} (make runs with `mfphys train`, or give a folder)")
    out: list[Entry] = []

    def walk(folder: Path, prefix: str, depth: int):
        try:
            children = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError:
            return
        for p in children:
            if p.name.startswith("."):
                continue
            name = prefix + p.name
            try:
                is_dir = p.is_dir()
            except OSError:
                continue
            if is_dir:
                if (p / "scan.json").exists():
                    out.append(CACHE.get(("scan-entry", p), scan_signature(p), lambda p=p, n=name: _scan_entry(p, n)))
                elif depth < MAX_DEPTH:
                    walk(p, name + "/", depth + 1)
            elif p.suffix == ".nc":
                out.append(CACHE.get(("file-entry", p), file_signature(p),
                                     lambda p=p, n=name: _file_entry(p, n.removesuffix(".nc"))))

    walk(root, "", 1)
    return sorted(out, key=lambda e: e.name)


def filter_entries(entries, text: str) -> list[Entry]:
    """Entries whose name, kind, status, dataset, architecture, date or error contain every word of ``text``."""
    words = text.lower().split()
    if not words:
        return list(entries)

    def hay(e: Entry) -> str:
        return " ".join((e.name, e.kind, e.status_text, e.dataset, e.architecture, e.date, e.mode, e.error)).lower()

    return [e for e in entries if all(w in hay(e) for w in words)]


def find_baseline(entry: Entry, entries) -> Entry | None:
    """The BP baseline of a gBP run: a run in the same folder with mode bp, same dataset and architecture.

    The newest one (by stored date, then name) when there are several.
    """
    if entry.kind != "run" or entry.mode == "bp":
        return None
    same = [e for e in entries if e.kind == "run" and e.ok and e.mode == "bp" and e.path.parent == entry.path.parent
            and e.dataset == entry.dataset and e.architecture == entry.architecture]
    return max(same, key=lambda e: (e.date, e.name)) if same else None


# --- run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """What the run view draws: learning curves, per-layer order parameters, histograms.

    Arrays are plain NumPy: curves ``(R, E)``, order parameters ``(R, L)``, histogram counts
    ``(R, L, B)`` with edges ``(B + 1,)``. The parameters themselves are not kept.
    """

    name: str
    title: str
    mode: str
    dataset: str
    architecture: str
    created: str
    epoch: np.ndarray
    curves: dict  # train_loss, test_acc, (test_loss, train_acc): (R, E)
    layers: np.ndarray
    order: dict  # ORDER_COLUMNS present: (R, L)
    hist: dict  # pi/m/xi -> (edges, counts)
    final: dict  # test_acc (last epoch), test_acc_sampled, test_acc_vote: (R,)
    baseline_name: str = ""
    baseline: dict = field(default_factory=dict)  # train_loss, test_acc of the BP run: (R, E)
    baseline_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def replicas(self) -> int:
        return int(self.curves["train_loss"].shape[0])


def _values(ds, name):
    return np.asarray(ds[name].values, dtype=float)


def _run_parts(path: Path) -> dict:
    ds = store.open_run(path)
    if ds.attrs.get(store.KIND_ATTR) != "run":
        raise MfphysError(f"{path} is a {ds.attrs.get(store.KIND_ATTR)} file, not a run")
    for need in ("train_loss", "test_acc"):
        if need not in ds:
            raise MfphysError(f"{path} has no {need!r} variable: not a run file of the public schema")
    curves = {k: _values(ds, k).reshape(-1, ds.sizes["epoch"]) for k in ("train_loss", "test_acc", "test_loss",
                                                                       "train_acc") if k in ds}
    order = {k: _values(ds, k) for k in ORDER_COLUMNS if k in ds}
    hist = {}
    for n in HIST_NAMES:
        if f"hist_{n}" in ds and f"{n}_edge" in ds.coords:
            hist[n] = (np.asarray(ds[f"{n}_edge"].values, dtype=float), np.asarray(ds[f"hist_{n}"].values))
    final = {"test_acc": curves["test_acc"][:, -1]}
    for k in ("test_acc_sampled", "test_acc_vote"):
        if k in ds:
            final[k] = _values(ds, k)
    a = ds.attrs
    return dict(title=str(a.get("title", "")), mode=str(a.get("mode", "")), dataset=str(a.get("dataset", "")),
                architecture=str(a.get("architecture", "")), created=_short_date(a.get("created")),
                epoch=np.asarray(ds["epoch"].values), curves=curves,
                layers=np.asarray(ds["layer"].values) if "layer" in ds.coords else np.zeros(0, int),
                order=order, hist=hist, final=final)


def load_run(path: str | os.PathLike, *, name: str = "", baseline: str | os.PathLike | None = None) -> RunSummary:
    """Read a run file (and its BP baseline's curves) into a :class:`RunSummary`; cached by (mtime, size).

    Raises :class:`MfphysError` (one line) for any problem with the run; a baseline that cannot
    be read is left out.
    """
    path = Path(path)
    parts = CACHE.get(("run", path), file_signature(path), lambda: _run_parts(path))
    base, base_name, base_epoch = {}, "", np.zeros(0)
    if baseline is not None:
        bpath = Path(baseline)
        try:
            b = CACHE.get(("run", bpath), file_signature(bpath), lambda: _run_parts(bpath))
        except MfphysError:
            b = None
        if b is not None:
            base = {k: b["curves"][k] for k in ("train_loss", "test_acc") if k in b["curves"]}
            base_name, base_epoch = bpath.stem, b["epoch"]
    return RunSummary(name=name or path.stem, baseline_name=base_name, baseline=base, baseline_epoch=base_epoch,
                      **parts)


def layer_table(run: RunSummary) -> tuple[list[str], list[list[str]]]:
    """Per-layer order parameters as text, one row per parameter and one column per layer,
    ``mean ± error`` over replicas (``mfphys.stats.format_stat``)."""
    from mfphys.stats import format_stat

    header = ["order parameter"] + [f"layer {int(l)}" for l in run.layers]
    rows = [[c] + [format_stat(run.order[c][:, i]) for i in range(run.layers.size)]
            for c in ORDER_COLUMNS if c in run.order]
    return header, rows


def curve_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over replicas of ``(R, E)`` curves, per epoch (NaNs ignored)."""
    stats = np.array([mean_err(values[:, e]) for e in range(values.shape[1])]).reshape(-1, 2)
    return stats[:, 0], stats[:, 1]


def hist_counts(run: RunSummary, name: str, layer_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges and counts (summed over replicas) of ``pi``, ``m`` or ``xi`` in one layer."""
    edges, counts = run.hist[name]
    return edges, np.asarray(counts[:, layer_index, :]).sum(axis=0)


# --- scan --------------------------------------------------------------------------------------


def _open_scan(folder: Path):
    from mfphys.scan import open_scan

    return open_scan(folder)


def network_mean(ds, name: str):
    from mfphys.scan import network_mean as mean

    return mean(ds, name)


def load_scan(path: str | os.PathLike):
    """The combined Dataset of a scan (folder: ``mfphys.scan.open_scan``; a saved ``.nc``: ``read_dataset``).

    Read once and cached by the folder's listing of finished and failed cells
    (:func:`scan_signature` without markers), so the heatmap draws from memory; the running
    and pending marks come from :func:`overlay_status` (file names only) in between reads.
    Raises :class:`MfphysError` (one line) on any problem.
    """
    path = Path(path)

    def load():
        try:
            ds = store.read_dataset(path) if path.is_file() else _open_scan(path)
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


_DERIVED = {"test_error": "test_acc", "sampled_error": "test_acc_sampled"}
NETWORK = "all"  # the layer choice "whole network": connection-weighted mean over layers


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
    finite = np.isfinite(values)
    n = finite.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(finite, values, 0).sum(axis=-1)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        dev = np.where(finite, values - mean[..., None], 0)
        spread = np.where(n > 1, np.sqrt((dev ** 2).sum(axis=-1) / np.maximum(n - 1, 1)), np.nan)
        sem = np.where(n > 1, spread / np.sqrt(np.maximum(n, 1)), np.where(n == 1, 0.0, np.nan))
    return Grid(param, layer if has_layer else None, row_dim, np.asarray(ds[row_dim].values), col_dim,
                np.asarray(ds[col_dim].values) if col_dim else np.array([""]), values, mean, spread, sem, n,
                st, er, extra)


def scan_layers(ds) -> list:
    """Layer choices of a scan: 1..L, then :data:`NETWORK` when connection counts are known."""
    if "layer" not in ds.coords:
        return []
    return [int(l) for l in ds["layer"].values] + ([NETWORK] if "n_connections" in ds else [])


def grid_table(grid: Grid) -> tuple[list[str], list[list]]:
    """The numbers of a heatmap as CSV rows: one per cell, with every replica's value."""
    R = grid.values.shape[-1]
    header = [grid.row_dim] + ([grid.col_dim] if grid.col_dim else []) + [
        "status", f"{grid.param}_mean", f"{grid.param}_std", f"{grid.param}_sem", "n_replicas",
        *(f"replica_{r}" for r in range(R))]
    rows = []
    for i, rv in enumerate(grid.rows):
        for j, cv in enumerate(grid.cols):
            rows.append([_plain(rv)] + ([_plain(cv)] if grid.col_dim else []) + [
                str(grid.status[i, j]), grid.mean[i, j], grid.spread[i, j], grid.sem[i, j], int(grid.n[i, j]),
                *grid.values[i, j]])
    return header, rows


def _plain(v):
    return v.item() if hasattr(v, "item") else v


# --- perturbation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerturbationSummary:
    """Test error (%) vs fraction of removed connections: ``error_vip`` and ``error_variable`` ``(F, R)``."""

    name: str
    title: str
    fraction: np.ndarray
    errors: dict
    attrs: dict


def _perturbation_parts(path: Path) -> dict:
    ds = store.open_run(path)
    if ds.attrs.get(store.KIND_ATTR) != "perturbation":
        raise MfphysError(f"{path} is a {ds.attrs.get(store.KIND_ATTR)} file, not a perturbation file")
    if "fraction" not in ds.coords:
        raise MfphysError(f"{path} has no 'fraction' coordinate")
    errors = {}
    for k in ("error_vip", "error_variable", "error_vip_mf", "error_variable_mf"):
        if k in ds:
            errors[k] = np.asarray(ds[k].transpose("fraction", ...).values, dtype=float).reshape(ds.sizes["fraction"],
                                                                                                  -1)
    keep = {k: str(v) for k, v in ds.attrs.items() if k in ("layer", "source", "run", "dataset", "architecture",
                                                           "created")}
    return dict(title=str(ds.attrs.get("title", "perturbation")), fraction=np.asarray(ds["fraction"].values, float),
                errors=errors, attrs=keep)


def load_perturbation(path: str | os.PathLike, *, name: str = "") -> PerturbationSummary:
    path = Path(path)
    parts = CACHE.get(("perturbation", path), file_signature(path), lambda: _perturbation_parts(path))
    return PerturbationSummary(name=name or path.stem, **parts)


def perturbation_table(p: PerturbationSummary) -> tuple[list[str], list[list]]:
    """One row per fraction: mean and standard error over replicas of each error."""
    header = ["fraction"]
    for k in p.errors:
        header += [f"{k}_mean", f"{k}_sem"]
    rows = []
    for i, f in enumerate(p.fraction):
        row = [float(f)]
        for v in p.errors.values():
            row += list(mean_err(v[i]))
        rows.append(row)
    return header, rows
