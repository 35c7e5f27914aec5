"""The sidebar's entries: the runs, scans and perturbation files of a folder, with what each one is.

:func:`list_entries` gives each entry its kind, status, dataset, architecture, date and, for a
file that cannot be used, the error; it reads only attributes (``mfphys.store.read_attrs``) and
a scan's ``scan.json`` and file names (``mfphys.scan.scan_status``), never a scan's cells, and
caches every entry by its signature (:mod:`.cache`).

A run file exists while it trains (docs/file-format.md, "Status, partial files, checkpoints"):
its entry says how far it is (``running 5/12 ETA 1m05s``, ``starting 0/12``), and whether it
stopped without finishing (``interrupted at 5/12``; ``stopped at 5/12`` when the file still
says running but the process writing it is gone). The writer's liveness is asked at every
listing, since a killed process does not change the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mfphys import store
from mfphys.describe import scan_architecture, scan_state
from mfphys.errors import MfphysError
from mfphys.model import architecture

from .cache import CACHE, run_signature, scan_signature
from .format import duration, one_line, short_date

#: the kinds the TUI shows (``mfphys.store.KINDS`` less the reproduction results)
KINDS = ("run", "scan", "perturbation")
MAX_DEPTH = 3  # how deep list_entries looks for run files inside plain sub-folders


@dataclass(frozen=True)
class Entry:
    """One line of the sidebar: a run, scan or perturbation file, or a file that failed to load."""

    path: Path
    name: str  # relative to the listed folder, without ".nc"
    kind: str  # run, scan, perturbation, or "?" when unknown
    status: str  # done, running, failed, pending, error; runs also interrupted, stopped (writer gone)
    dataset: str = ""
    architecture: str = ""
    date: str = ""  # as stored in the file ("created"), minutes resolution
    mode: str = ""  # gbp or bp for runs
    label: str = ""  # the file's own name (global attribute ``name``, ``mfphys train --name``), if any
    cells: tuple = ()  # scans: (done, failed, running, pending, total)
    error: str = ""
    signature: tuple = field(default=(), compare=True, repr=False)
    cell_status: tuple = field(default=(), repr=False)  # scans: ((key, status), ...) from scan_status
    data_signature: tuple = field(default=(), repr=False)  # scans: scan_signature(markers=False)
    # runs: epochs done and configured (None when the file does not say), when the last epoch
    # is expected to end (Unix time, while running), the writer's JSON (pid, host, boot id)
    epochs_done: int | None = None
    epochs: int | None = None
    eta_at: float | None = None
    writer: str = field(default="", repr=False)
    # the recurrent model (docs/model-rnn.md section 9): runs and perturbation files of a
    # recurrent run say "rnn", their task and preset; a perturbation file the matrix it perturbed
    model: str = ""
    task: str = ""
    preset: str = ""
    matrix: str = ""
    # what the filter finds a run or scan by besides its name: its tags and note (``mfphys train
    # --tag/--note``) and its settings (a run's configuration, a scan's fixed options and grid)
    tags: tuple = ()
    note: str = ""
    settings: tuple = field(default=(), repr=False)  # ((key, value as text), ...)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def partial(self) -> bool:
        """A run file that is not finished: running, starting, stopped or interrupted."""
        return self.kind == "run" and self.status in ("running", "stopped", "interrupted")

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds until a running run's last epoch is expected to end (0 when overdue), or None."""
        if self.status != "running" or self.eta_at is None:
            return None
        return max(self.eta_at - (time.time() if now is None else now), 0.0)

    def progress_text(self, now: float | None = None) -> str:
        """How far a partial run is, in words: ``running 5/12 ETA 1m05s``, ``starting 0/12``,
        ``stopped at 5/12``, ``interrupted at 5/12``; the status alone for anything else."""
        if not self.partial or self.epochs_done is None:
            return self.status
        n = f"{self.epochs_done}/{self.epochs}" if self.epochs is not None else str(self.epochs_done)
        if self.status == "running":
            if self.epochs_done == 0:
                return f"starting {n}"
            eta = self.eta_seconds(now)
            return f"running {n}" + (f" ETA {duration(eta)}" if eta is not None else "")
        return f"{self.status} at {n}"

    @property
    def title(self) -> str:
        """What the app calls the entry: the file's own name when it has one, else its path name."""
        return self.label or self.name

    @property
    def status_text(self) -> str:
        """``done``, ``running 12/120 cells, 1 failed``, ``running 5/12 ETA 1m05s`` ..."""
        if self.kind == "run":
            return self.progress_text()
        if self.kind != "scan" or not self.cells:
            return self.status
        done, failed, running, pending, total = self.cells
        text = f"{self.status} {done}/{total} cells"
        if failed:
            text += f", {failed} failed"
        return text


def _file_entry(path: Path, name: str) -> Entry:
    sig = run_signature(path)
    try:
        attrs = store.read_attrs(path)
    except MfphysError as exc:
        return Entry(path, name, "?", "error", error=one_line(exc), signature=sig)
    try:
        kind = store.file_kind(attrs)
    except MfphysError as exc:  # not an mfphys file, or of an unknown kind
        return Entry(path, name, str(attrs.get(store.KIND_ATTR, "?")), "error", error=one_line(exc), signature=sig)
    if kind not in KINDS:
        return Entry(path, name, kind, "error", signature=sig,
                     error=f"an mfphys {kind} file: the TUI shows runs, scans and perturbation files")
    dataset, arch = str(attrs.get("dataset", "")), str(attrs.get("architecture", ""))
    if kind == "perturbation" and (not dataset or not arch):
        dataset, arch = _perturbation_source(attrs, dataset, arch)
    entry = Entry(path, name, kind, "done", dataset, arch, short_date(attrs.get("created")),
                  str(attrs.get("mode", "")), str(attrs.get("name", "")).strip(), signature=sig,
                  tags=_tags(attrs), note=str(attrs.get("note", "") or ""), settings=_settings(attrs.get("config")),
                  **_model_fields(attrs, kind))
    if kind != "run":
        return entry
    # a run file is written whole (atomically) at its start, at checkpoints and at the end: its
    # attributes say how far it is (docs/file-format.md, "Status, partial files, checkpoints")
    done, total = _int(attrs.get("epochs_done")), _config_epochs(attrs)
    status = store.run_status(attrs)
    if status != "done":
        # the epoch log says how far it is between checkpoints (docs/file-format.md "The epoch log")
        from mfphys.runlog import last_record

        last = last_record(path, attrs.get("created"))
        if last is not None and done is not None and last["epoch"] > done:
            attrs = {**attrs, "updated": _iso(last.get("at")) or attrs.get("updated")}
            done = last["epoch"]
    return dataclasses.replace(entry, status=status, epochs_done=done, epochs=total,
                               eta_at=_eta_at(attrs, done, total) if status == "running" else None,
                               writer=str(attrs.get("writer", "")) if status == "running" else "")


def _iso(seconds) -> str | None:
    """Unix seconds as the ISO time the file's ``updated`` attribute holds."""
    try:
        return datetime.fromtimestamp(float(seconds), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _tags(attrs) -> tuple:
    """A file's ``tags`` attribute (a JSON list) as a tuple of strings; () when absent or damaged."""
    try:
        tags = json.loads(attrs.get("tags", "[]"))
    except (TypeError, ValueError):
        return ()
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ()


def _setting_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_setting_text(v) for v in value)
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def _settings(config, *more: dict) -> tuple:
    """``((key, text), ...)`` of a configuration (JSON text or a dict) and any further dicts:
    what ``key=value`` in the filter compares with."""
    out: dict = {}
    for part in (config, *more):
        if isinstance(part, str):
            try:
                part = json.loads(part)
            except ValueError:
                continue
        if isinstance(part, dict):
            out.update({str(k): _setting_text(v) for k, v in part.items()})
    return tuple(sorted(out.items()))


def _model_fields(attrs, kind: str) -> dict:
    """``model``, ``task``, ``preset`` (and a perturbation's ``matrix``) of a recurrent run's file;
    nothing for a feed-forward one (no ``model`` attribute, or ``ffn``); another family: its name."""
    model = str(attrs.get("model", ""))
    if model in ("", "ffn"):
        return {}
    if model != "rnn":
        return dict(model=model)
    out = dict(model="rnn", task=str(attrs.get("task", "")), preset=str(attrs.get("preset", "")))
    if kind == "perturbation":
        out["matrix"] = str(attrs.get("matrix", ""))
        if str(attrs.get("candidates", "")).startswith("off-diagonal"):
            out["matrix"] += " nodiag"
    return out


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _config_epochs(attrs) -> int | None:
    """The epochs the run is configured for (``config``'s ``epochs``), without validating the rest."""
    try:
        cfg = json.loads(attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return None
    return _int(cfg.get("epochs")) if isinstance(cfg, dict) else None


def _timestamp(text) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except (TypeError, ValueError):
        return None


def _eta_at(attrs, done: int | None, total: int | None) -> float | None:
    """When a running run's last epoch should end: the last write (``updated``) plus the epochs
    left at the time per epoch so far. That time is the larger of the training time the file
    records per epoch (``timings``' ``train_seconds`` over ``epochs_done``) and the wall time of
    this command's epochs (its segment's ``started`` to ``updated``, which also counts the
    checkpoints and whatever else slowed the process). None before the first epoch."""
    updated = _timestamp(attrs.get("updated"))
    if done is None or total is None or updated is None or done <= 0:
        return None
    rates = []
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        seconds = float(json.loads(attrs.get("timings", "{}")).get("train_seconds", 0.0))
        if seconds > 0:
            rates.append(seconds / done)
    with contextlib.suppress(TypeError, ValueError, AttributeError, IndexError, KeyError):
        segment = json.loads(attrs.get("segments", "[]"))[-1]
        started, first = _timestamp(segment["started"]), int(segment["from_epoch"])
        if started is not None and done > first:
            rates.append((updated - started) / (done - first))
    if not rates:
        return None
    return updated + max(total - done, 0) * max(rates)


def _writer_gone(entry: Entry) -> Entry:
    """A run marked running whose writer is no longer alive is ``stopped`` (killed, or the
    machine rebooted): asked at every listing, since the file does not change when that happens."""
    if entry.kind != "run" or entry.status != "running":
        return entry
    from mfphys.runfile import writer_alive

    if writer_alive({"status": "running", "writer": entry.writer}) is False:
        return dataclasses.replace(entry, status="stopped", eta_at=None)
    return entry


def _perturbation_source(attrs: dict, dataset: str, arch: str) -> tuple[str, str]:
    """Dataset and architecture of a perturbation file, from its copy of the run's configuration."""
    try:
        cfg = json.loads(attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return dataset, arch
    if isinstance(cfg, dict):
        dataset = dataset or str(cfg.get("dataset", ""))
        with contextlib.suppress(TypeError, ValueError):  # layers that are not widths: no label
            arch = arch or (architecture(cfg["layers"]) if "layers" in cfg else "")
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
    fixed = meta.get("fixed") if isinstance(meta.get("fixed"), dict) else {}
    grid = meta.get("grid") if isinstance(meta.get("grid"), dict) else {}
    # a recurrent scan (its cells are recurrent runs): "rnn" in the sidebar, its preset in the filter
    rnn = dict(model="rnn", preset=str(fixed.get("preset", "")), task=str(fixed.get("task", "") or _task_of(fixed))
               ) if "rnn" in (meta.get("model"), fixed.get("model")) or "steps" in grid else {}
    if not rnn and str(meta.get("model") or "ffn") != "ffn":  # another family: its name, for its panels
        rnn = dict(model=str(meta["model"]))
    dataset = str(fixed.get("dataset", "")) or (rnn.get("task") or "")
    return Entry(folder, name, "scan", scan_state(counts), dataset, scan_architecture(meta),
                 short_date(meta.get("created")), cells=cells, signature=sig, settings=_settings(fixed, grid),
                 cell_status=tuple(counts.get("cells", {}).items()),
                 data_signature=scan_signature(folder, markers=False), **rnn)


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
                out.append(_writer_gone(CACHE.get(("file-entry", p), run_signature(p),
                                                  lambda p=p, n=name: _file_entry(p, n.removesuffix(".nc")))))

    walk(root, "", 1)
    return sorted(out, key=lambda e: e.name)


def filter_entries(entries, text: str) -> list[Entry]:
    """Entries that match every word of ``text`` (docs/tui.md "Finding runs"):

    - ``key=value`` (``lr=0.05``, ``epochs=100``, ``depth=1,2``): a setting of the run's
      configuration (a scan's fixed options and grid) equal to ``value``; numbers compare as
      numbers, so ``lr=0.050`` finds ``0.05``; ``key>value`` and ``key<value`` compare numbers;
    - ``tag:NAME``: a run with that tag (``mfphys train --tag``);
    - any other word: contained in the name (file or own), kind, status, dataset, architecture,
      date, mode, tags, note or error.
    """
    words = text.lower().split()
    if not words:
        return list(entries)

    def hay(e: Entry) -> str:
        return " ".join((e.name, e.label, e.kind, e.status, e.status_text, e.dataset, e.architecture, e.date,
                         e.mode, e.model, e.task, e.preset, e.matrix, e.error, *e.tags, e.note)).lower()

    def matches(e: Entry, word: str) -> bool:
        if word.startswith("tag:"):
            return word[4:] in (t.lower() for t in e.tags)
        for op in ("=", ">", "<"):
            key, sep, want = word.partition(op)
            if sep and key and want and not any(c in key for c in "=<>"):
                have = {k.lower(): v.lower() for k, v in e.settings}
                if key not in have:
                    return False
                return _compare(have[key], op, want)
        return word in hay(e)

    return [e for e in entries if all(matches(e, w) for w in words)]


def _compare(have: str, op: str, want: str) -> bool:
    """``have op want`` for a setting: numbers as numbers (each of a list, for ``=``), else text."""
    try:
        h, w = float(have), float(want)
    except ValueError:
        if op != "=":
            return False
        parts, wants = have.split(","), want.split(",")
        if len(wants) == 1 and len(parts) > 1:  # a scan's grid: one of its values
            return any(_compare(p, "=", want) for p in parts)
        try:
            return [float(p) for p in parts] == [float(x) for x in wants]
        except ValueError:
            return have == want
    return h == w if op == "=" else h > w if op == ">" else h < w


def find_baseline(entry: Entry, entries) -> Entry | None:
    """The BP baseline of a gBP run: a run in the same folder with mode bp, same dataset and architecture.

    The newest one (by stored date, then name) when there are several.
    """
    if entry.kind != "run" or entry.mode == "bp":
        return None
    same = [e for e in entries if e.kind == "run" and e.ok and e.mode == "bp" and e.path.parent == entry.path.parent
            and e.dataset == entry.dataset and e.architecture == entry.architecture and e.model == entry.model]
    return max(same, key=lambda e: (e.date, e.name)) if same else None


def _task_of(fixed: dict) -> str:
    """The task of a recurrent scan's preset (scan.json names the preset, default row_mnist)."""
    from mfphys.errors import MfphysError
    from mfphys.rnn import preset

    try:
        return preset(str(fixed.get("preset") or "row_mnist")).task
    except (MfphysError, KeyError, ValueError):
        return ""
