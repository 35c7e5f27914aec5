"""The per-epoch scalar log beside a run file (docs/file-format.md "The epoch log").

A run file is rewritten whole at checkpoints, which hold the parameters and the optimiser's
moments (megabytes) and are rationed to a small share of the run time
(:class:`mfphys.runfile.CheckpointPolicy`). So that a watcher (``open_run``, the TUI) sees
every finished epoch, the trainer also appends one line of JSON per epoch to
``<run file>.log.jsonl``: the epoch's losses, accuracies, learning rate and seconds, and the
order parameters at the epochs where the dynamics are recorded (a few hundred bytes; the
values are those the next checkpoint will hold). The line is written and flushed at once; a
line torn by a kill is ignored when read, never a reason to refuse the run.

The run file stays authoritative: resuming starts from its last checkpoint, and the log is
cut back to that epoch when a run resumes (the epochs after it are trained again). The first
line names the run (its ``created`` attribute), so a log left by another run of the same
name is never mixed in. When the run file is finished the log is removed: the file holds
everything.

Part of the shared core: it names no model family. A family says what one epoch's line holds
(:meth:`mfphys.family.ModelFamily.epoch_log`): values keyed by the run file's variable names,
laid out as that variable without its ``epoch`` (or ``dyn_epoch``) dimension.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

#: the log's file name: the run file's name plus this suffix
SUFFIX = ".log.jsonl"
#: the first line's key that marks an mfphys epoch log (its value: the format version)
HEADER = "mfphys_epoch_log"
#: the prefix of the variables recorded at the dynamics epochs (as in the run file)
DYN = "dyn_"


def log_path(path: str | os.PathLike) -> Path:
    """The epoch log of the run file ``path``: ``runs/a.nc`` -> ``runs/a.nc.log.jsonl``."""
    return Path(str(path) + SUFFIX)


def _plain(value):
    """Arrays and NumPy numbers as JSON: nested lists, NaN and infinities as null."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    arr = np.asarray(value)
    if arr.ndim == 0:
        x = arr.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x
    return [_plain(v) for v in arr]


def _line(record: dict) -> str:
    return json.dumps(_plain(record), separators=(",", ":"), allow_nan=False) + "\n"


class EpochLog:
    """The writer's side: :meth:`start` once (a new run empties the log, a resumed one cuts it
    back to its checkpoint's epoch), then :meth:`append` after every epoch. Each call opens,
    writes one whole line, flushes and closes: a reader never waits for a buffer, and a kill
    leaves at most one torn line."""

    def __init__(self, run_path, created: str):
        self.path = log_path(run_path)
        self.created = str(created)

    def start(self, epoch: int) -> None:
        """Begin writing after ``epoch`` (0 for a new run): keep this run's lines up to it."""
        keep = [r for r in read_records(self.path, self.created) if r["epoch"] <= epoch] if epoch > 0 else []
        text = _line({HEADER: 1, "created": self.created}) + "".join(_line(r) for r in keep)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def append(self, record: dict) -> None:
        """One epoch's line (``{"epoch": e, "values": {...}, "dyn": {...}}``), stamped with the
        time it was written (``at``, Unix seconds: a watcher's ETA counts from it)."""
        with open(self.path, "a") as f:
            f.write(_line({**record, "at": round(time.time(), 3)}))
            f.flush()

    def remove(self) -> None:
        """The run file holds every epoch now: the log is not needed any more."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def packed_line(epoch: int, history: dict, curves, a: int, b: int, dyn) -> dict:
    """One packed configuration's line after ``epoch`` (``ModelFamily.packed_epoch_logs``): the
    packed run's ``history`` at that epoch, replicas ``a:b`` of the per-replica ``curves`` and
    the series as they are, and ``dyn`` (its :class:`~mfphys.dynamics.Dynamics`) when it
    recorded the order parameters after that epoch, as the line of the run alone has them."""
    record = {"epoch": epoch, "values": {k: (v[a:b, epoch - 1] if k in curves else v[epoch - 1])
                                         for k, v in history.items()}}
    if dyn.epochs and dyn.epochs[-1] == epoch:
        record["dyn"] = dict(dyn.samples[-1])
    return record


def read_records(path: str | os.PathLike, created: str | None = None) -> list[dict]:
    """The epoch records of a log file, by epoch (the last line of an epoch wins), or [] when
    there is no log, or it belongs to another run (``created`` differs). Lines that are not
    whole JSON objects (a line torn by a kill) are skipped."""
    records: dict[int, dict] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        return []
    header = None
    for text in lines:
        try:
            rec = json.loads(text)
        except ValueError:
            continue  # a torn line (or the empty string after the last newline)
        if not isinstance(rec, dict):
            continue
        if HEADER in rec:
            header = rec
            continue
        epoch = rec.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0:
            records[epoch] = rec
    if header is None or (created is not None and str(header.get("created")) != str(created)):
        return []
    return [records[e] for e in sorted(records)]


def _extend(ds, dim: str, items: list[tuple[int, dict]], prefix: str = ""):
    """``ds`` with the coordinate ``dim`` grown by the epochs of ``items`` and each named
    variable's values set there (the others NaN there)."""
    old = np.asarray(ds[dim].values)
    new = [e for e, _ in items]
    ds = ds.reindex({dim: np.concatenate([old, np.asarray(new, dtype=old.dtype if old.size else np.int64)])})
    variables = ds.variables  # Variable objects: cheap, unlike ds[name] (a DataArray each time)
    filled: dict = {}  # variable -> its grown array, each written once (a Dataset assignment is not cheap)
    for i, (_, values) in enumerate(items, start=old.size):
        for name, value in values.items():
            var = prefix + name
            if var not in ds.data_vars or dim not in variables[var].dims:
                continue
            if var not in filled:
                filled[var] = np.array(variables[var].values)  # a copy: reindex may share the unchanged arrays
            target = np.moveaxis(filled[var], variables[var].dims.index(dim), 0)
            with contextlib.suppress(ValueError, TypeError):
                target[i] = np.asarray(value, dtype=float)
    return ds.assign({var: (variables[var].dims, data, variables[var].attrs) for var, data in filled.items()})


def fill_from_log(ds, path):
    """The run file's dataset ``ds`` with the epochs its log has past the last checkpoint.

    Only the per-epoch variables (dimension ``epoch``, and ``dyn_epoch`` for the order
    parameters recorded while training) grow; the parameters, final order parameters and
    histograms stay the checkpoint's. The grown epochs are flagged by the coordinates
    ``from_log`` (epoch) and ``dyn_from_log`` (dyn_epoch), True where a value came from the
    log, and the attribute ``log_epochs`` (how many epochs did). ``ds`` is returned as it is
    when the log has nothing newer (a finished run, or none)."""
    if "epoch" not in ds.dims:
        return ds
    records = read_records(log_path(path), ds.attrs.get("created"))
    last = int(ds["epoch"].values.max()) if ds.sizes["epoch"] else 0
    newer = [r for r in records if r["epoch"] > last]
    if not newer:
        return ds
    n_old = ds.sizes["epoch"]
    ds = _extend(ds, "epoch", [(r["epoch"], r.get("values") or {}) for r in newer])
    flags = np.zeros(ds.sizes["epoch"], bool)
    flags[n_old:] = True
    ds = ds.assign_coords(from_log=("epoch", flags, {"long_name": "epoch read from the epoch log, after the run "
                                                                   "file's last checkpoint", "units": "1"}))
    if "dyn_epoch" in ds.dims:
        dlast = int(ds["dyn_epoch"].values.max()) if ds.sizes["dyn_epoch"] else -1
        dyn = [(r["epoch"], r["dyn"]) for r in newer if isinstance(r.get("dyn"), dict) and r["epoch"] > dlast]
        if dyn:
            d_old = ds.sizes["dyn_epoch"]
            ds = _extend(ds, "dyn_epoch", dyn, prefix=DYN)
            dflags = np.zeros(ds.sizes["dyn_epoch"], bool)
            dflags[d_old:] = True
            ds = ds.assign_coords(dyn_from_log=("dyn_epoch", dflags, {"long_name": "dynamics sample read from the "
                                                                      "epoch log", "units": "1"}))
    ds.attrs["log_epochs"] = len(newer)
    return ds


def last_record(path: str | os.PathLike, created: str | None = None) -> dict | None:
    """The newest record of the epoch log of the run file ``path`` (None: no log, or another run's)."""
    records = read_records(log_path(path), created)
    return records[-1] if records else None
