"""The runs table's model: one row per run file of the folder, with its settings and results.

Each run's numbers are read once per file version (:mod:`.cache`) and only the small
variables are read (the curves, the per-layer sparsity and VIP fractions and the dead-input
mask, through netCDF4 directly): never the per-connection ``pi``, ``m``, ``Xi`` arrays, so a
folder of large MNIST runs lists fast. The same read gives the curves that the run view
overlays for marked runs.

A recurrent run (``model = "rnn"``, docs/model-rnn.md section 9) has matrices instead of layers:
its whole-network fractions weight the input, recurrent and output matrices by their
connections, and its accuracy is the noise-free mean-field one (``test_acc_mf``; the
multisensory task: ``psychometric_acc_mf``, mean over the modalities).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.fileio import quote
from mfphys.live import layer_connections, live_name, network_mean

from ..families import panels_for
from .cache import CACHE, run_signature
from .format import middle_ellipsis, one_line, short
from .listing import Entry

#: the table's columns, in order; every one sorts
COLUMNS = ("name", "dataset", "architecture", "mode", "epochs", "accuracy", "sparsity", "VIP", "date")
#: columns that hold numbers (sorted as numbers, missing values last in either direction)
NUMERIC = ("epochs", "accuracy", "sparsity", "VIP")


@dataclass(frozen=True)
class RunNumbers:
    """The small variables of a run file: curves ``(R, E)`` and whole-network fractions ``(R,)``.

    ``sparsity`` and ``vip`` are connection-weighted means over the layers, layer 1 over live
    inputs when the file records them (``live``: (live inputs, inputs), else None).
    """

    epoch: np.ndarray
    curves: dict  # train_loss, test_acc: (R, E)
    sparsity: np.ndarray
    vip: np.ndarray
    live: tuple | None
    accuracy: np.ndarray | None = None  # (R,) the final accuracy, where not the last test_acc (rnn)


def _floats(var) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(var[:], dtype=float), np.nan)


def _read_numbers(path: Path) -> RunNumbers:
    import netCDF4

    try:
        with store.NETCDF_LOCK, netCDF4.Dataset(path, "r") as nc:  # netCDF is not thread-safe
            names = set(nc.variables)
            for need in ("train_loss", "test_acc"):
                if need not in names:
                    raise MfphysError(f"{path} has no {quote(need)} variable: not a run file of the public schema")
            # (replica, epoch), as written: a file written at the start of its run has 0 epochs
            shape = (nc.dimensions["replica"].size, nc.dimensions["epoch"].size)
            curves = {k: _floats(nc[k]).reshape(shape) for k in ("train_loss", "test_acc")}
            epoch = _floats(nc["epoch"]) if "epoch" in names else np.arange(1, curves["test_acc"].shape[1] + 1)
            n_layers = nc.dimensions["layer"].size if "layer" in nc.dimensions else 0
            widths = [nc.dimensions["pre_1"].size] if "pre_1" in nc.dimensions else []
            widths += [nc.dimensions[f"post_{l}"].size for l in range(1, n_layers + 1) if f"post_{l}" in nc.dimensions]
            dead = _floats(nc["dead_inputs"]) if "dead_inputs" in names else None
            fractions = {q: _floats(nc[live_name(q, names)]) for q in ("sparsity", "frac_vip") if q in names}
            rnn = "matrix" in nc.dimensions and getattr(nc, "model", "") == "rnn"
            if rnn:  # the connections of each matrix: (post, pre) of its parameters
                matrices = [str(m) for m in nc["matrix"][:]] if "matrix" in names else []
                widths = []
                n_layers = len(matrices)
                conn = [nc.dimensions[f"post_{m}"].size * nc.dimensions[f"pre_{m}"].size for m in matrices
                        if f"post_{m}" in nc.dimensions and f"pre_{m}" in nc.dimensions]
                final = None
                if "test_acc_mf" in names:
                    final = _floats(nc["test_acc_mf"])
                elif "psychometric_acc_mf" in names:  # (replica, modality): mean over the modalities
                    final = _floats(nc["psychometric_acc_mf"]).reshape(shape[0], -1).mean(axis=1)
    except MfphysError:
        raise
    except Exception as exc:  # vanished, half-written by a foreign writer, or not netCDF
        raise MfphysError(f"cannot read {path}: {type(exc).__name__}: {one_line(exc)}") from None
    live = None
    if dead is not None and widths and dead.size == widths[0]:
        live = (int((dead == 0).sum()), int(dead.size))
    if rnn:
        conn = np.asarray(conn, dtype=float) if conn and len(conn) == n_layers else None
    else:
        final = None
        conn = layer_connections(widths, live[0] if live else None) if len(widths) == n_layers + 1 else None
    R = curves["test_acc"].shape[0]

    def whole(q):
        if q not in fractions or conn is None:
            return np.full(R, np.nan)
        return network_mean(fractions[q].reshape(R, -1), conn)

    return RunNumbers(epoch, curves, whole("sparsity"), whole("frac_vip"), live, final)


def read_numbers(path: str | os.PathLike) -> RunNumbers:
    """The :class:`RunNumbers` of a run file, cached by its (mtime, size); MfphysError on a problem."""
    path = Path(path)
    return CACHE.get(("run-numbers", path), run_signature(path), lambda: _read_numbers(path))


@dataclass(frozen=True)
class RunRow:
    """One row of the runs table. Numbers are means over replicas (NaN when unknown)."""

    path: Path
    name: str
    dataset: str = ""
    architecture: str = ""
    mode: str = ""
    epochs: float = math.nan
    accuracy: float = math.nan  # mean-field test accuracy at the last epoch
    sparsity: float = math.nan  # whole network, layer 1 over live inputs
    vip: float = math.nan  # fraction of very important connections, same average
    date: str = ""
    error: str = ""
    tags: tuple = ()
    note: str = ""
    settings: tuple = ()  # ((configuration field, value as text), ...): the extra columns' values

    def value(self, column: str):
        """The row's value in ``column`` (a name of :data:`COLUMNS`, ``tags``, ``note`` or a
        configuration field), for sorting."""
        if column in COLUMNS:
            return getattr(self, "vip" if column == "VIP" else column)
        if column == "tags":
            return ",".join(self.tags)
        if column == "note":
            return self.note
        return dict(self.settings).get(column, "")


def differing_columns(rows) -> tuple[str, ...]:
    """The extra columns worth showing for ``rows``: ``tags`` when a run has any, then every
    configuration field whose value differs between the runs (the fixed columns' aside)."""
    shown = {"dataset", "mode", "epochs", "layers", "name"}
    values: dict = {}
    for r in rows:
        for k, v in r.settings:
            values.setdefault(k, set()).add(v)
    for r in rows:  # a field a run does not have differs too
        for k in values:
            if k not in dict(r.settings):
                values[k].add("")
    out = ["tags"] if any(r.tags for r in rows) else []
    return tuple(out + sorted(k for k, v in values.items() if len(v) > 1 and k not in shown))


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _mean(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def run_row(entry: Entry) -> RunRow:
    """The row of one run entry (its file's small variables are read, or taken from the cache)."""
    row = dict(path=entry.path, name=entry.title, dataset=entry.dataset, architecture=entry.architecture,
               mode=entry.mode, date=entry.date, tags=entry.tags, note=entry.note, settings=entry.settings)
    if entry.error:
        return RunRow(**row, error=entry.error)
    try:
        n = read_numbers(entry.path)
    except MfphysError as exc:
        return RunRow(**row, error=one_line(exc))
    # a run file written at the start of its run holds no epoch yet: no accuracy
    accuracy = _mean(n.curves["test_acc"][:, -1]) if n.epoch.size else math.nan
    if n.accuracy is not None:  # a recurrent run: the final mean-field evaluation
        accuracy = _mean(n.accuracy)
    family = panels_for(entry.model)
    if family.tag:  # the model family, and the preset the run started from, in the table's own columns
        row.update(mode=family.mode_label(entry.mode),
                   dataset=f"{entry.dataset} ({entry.preset})" if entry.preset and entry.preset != entry.dataset
                   else entry.dataset)
    return RunRow(**row, epochs=float(n.epoch.size), accuracy=accuracy, sparsity=_mean(n.sparsity), vip=_mean(n.vip))


def run_rows(entries) -> list[RunRow]:
    """The rows of the run entries among ``entries`` (scans and perturbation files are not runs)."""
    return [run_row(e) for e in entries if e.kind == "run"]


def sort_rows(rows, column: str, reverse: bool = False) -> list[RunRow]:
    """``rows`` sorted by ``column`` (one of :data:`COLUMNS`, or an extra column: ``tags``,
    ``note``, a configuration field); text ignores case, a column of numbers sorts as numbers,
    and a missing number sorts last either way."""
    if column not in COLUMNS:
        if column not in ("tags", "note") and not any(column in dict(r.settings) for r in rows):
            raise ValueError(f"no column {column!r}")
        texts = [str(r.value(column)) for r in rows]
        if any(texts) and all(np.isfinite(_number(t)) for t in texts if t):
            have = [r for r, t in zip(rows, texts) if t]
            missing = [r for r, t in zip(rows, texts) if not t]
            return sorted(have, key=lambda r: (_number(r.value(column)), r.name), reverse=reverse) + missing
        return sorted(rows, key=lambda r: (str(r.value(column)).lower(), r.name), reverse=reverse)
    if column in NUMERIC:
        have = [r for r in rows if np.isfinite(r.value(column))]
        missing = [r for r in rows if not np.isfinite(r.value(column))]
        return sorted(have, key=lambda r: (r.value(column), r.name), reverse=reverse) + missing
    return sorted(rows, key=lambda r: (str(r.value(column)).lower(), r.name), reverse=reverse)


#: the name column's width: longer names are shortened in the middle (their ends tell runs apart)
NAME_WIDTH = 28


def row_cells(row: RunRow, extra: tuple = ()) -> list[str]:
    """The row as the table's text cells, in :data:`COLUMNS` order, then the ``extra`` columns."""
    def num(v, width=6):
        return short(v, width) if np.isfinite(v) else "-"

    epochs = str(int(row.epochs)) if np.isfinite(row.epochs) else "-"
    return [middle_ellipsis(row.name, NAME_WIDTH), row.dataset, row.architecture,
            row.mode or ("error" if row.error else ""), epochs, num(row.accuracy), num(row.sparsity), num(row.vip),
            row.date] + [middle_ellipsis(str(row.value(c)), 24) for c in extra]
