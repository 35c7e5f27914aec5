"""A scan folder on disk: its layout, ``.running`` markers and whose they are, progress.

Everything here works from file names, scan.json, the small marker JSON files and the scan
index, never from the cell files' arrays (only the attributes of a done cell the index does not
vouch for, once per file), so a monitor (the TUI, :func:`scan_status`) can poll a large running
scan cheaply; no xarray. Layout and contract: :mod:`mfphys.scan`, docs/scans.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import socket
from pathlib import Path
from typing import Mapping, NamedTuple

from .. import registry
from ..errors import MfphysError
from ..fileio import boot_id, check_name_length, check_readable, clip, pid_alive, process_alive, quote, read_json
from .spec import ScanSpec, coerce_option, grid_points

SCAN_JSON = "scan.json"
CELLS = "cells"
KIND = "scan"
#: the folder's lock file: held (an OS lock, ``flock``) by the one process scanning the folder
LOCK = ".lock"
#: the scan index beside the cells (:mod:`mfphys.scan.index`; named here so reading needs no NumPy)
INDEX = "cells.index"
#: the keys every scan.json has (a damaged or hand-edited one is refused with what is missing)
REQUIRED = {"dims": list, "grid": dict, "fixed": dict, "scan_hash": str}
#: the largest scan.json read (a grid of thousands of values is far smaller) and the longest name
SCAN_JSON_LIMIT = 4 << 20
NAME_LIMIT = 255
#: the attribute naming what an mfphys file is (``mfphys.store.KIND_ATTR``, repeated here so
#: that reading a folder's state needs no xarray; a test keeps the two equal)
KIND_ATTR = "mfphys_kind"


# --- layout and markers ---------------------------------------------------------------------------


class _Paths(NamedTuple):
    """Where each file of the scan folder ``folder`` lives (the layout of :mod:`mfphys.scan`)."""

    folder: Path

    @property
    def scan_json(self) -> Path:
        return self.folder / SCAN_JSON

    @property
    def cells(self) -> Path:
        return self.folder / CELLS

    def nc(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.nc"

    def partial(self, key: str) -> Path:
        """A cell's checkpoint while it trains: a run file with status running, removed once the
        cell's own file is written; a rerun of the scan resumes the cell from it."""
        return self.folder / CELLS / f"{key}.partial.nc"

    def failed(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.failed.json"

    @property
    def index(self) -> Path:
        """The scan index: every finished cell's combinable summary (:mod:`mfphys.scan.index`)."""
        return self.folder / INDEX

    @property
    def lock(self) -> Path:
        return self.folder / LOCK

    def running(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.running"


def _owner() -> dict:
    return {"owner_pid": os.getpid(), "owner_host": socket.gethostname(), "boot_id": boot_id()}


def marker_alive(info: Mapping | None) -> bool | None:
    """Whether the scan process that wrote a ``.running`` marker still runs: True/False, or None when
    it ran on another machine (cannot tell). Markers of dead processes are stale and ignored."""
    if not isinstance(info, Mapping):
        return False
    return process_alive(info.get("owner_pid"), info.get("owner_host"), info.get("boot_id"))


# --- reading a scan folder ------------------------------------------------------------------------


def read_scan_json(folder: str | os.PathLike) -> dict:
    """The ``scan.json`` of a scan folder, every value checked (:func:`check_scan_meta`), or one
    clear :class:`MfphysError`."""
    p = _Paths(Path(folder))
    if not p.scan_json.exists():
        raise MfphysError(f"{folder} is not an mfphys scan folder (no {SCAN_JSON})")
    check_readable(p.scan_json, what="scan description")  # a FIFO, a folder, no permission: said as such
    meta = read_json(p.scan_json, limit=SCAN_JSON_LIMIT)
    if meta is None and os.path.getsize(p.scan_json) > SCAN_JSON_LIMIT:
        raise MfphysError(f"{p.scan_json} is larger than {SCAN_JSON_LIMIT >> 20} MB: not a scan description "
                          f"mfphys wrote")
    if not isinstance(meta, dict) or meta.get(KIND_ATTR) != KIND:
        raise MfphysError(f"{p.scan_json} is not an mfphys scan description ({KIND_ATTR} != {quote(KIND)})")
    check_scan_meta(meta, p.scan_json)
    if p.cells.exists() and not p.cells.is_dir():
        raise MfphysError(f"{p.cells} is not a folder: this scan folder is damaged (move that file away)")
    return meta


def check_scan_meta(meta: Mapping, where) -> None:
    """Refuse, in one line, a scan.json whose contents no scan wrote: missing keys, a name that is
    not a short string, a model that is not a registered family, options that are not that
    family's, values not of the option's type (``"2"`` for an integer), an empty grid."""
    for key, kind in REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise MfphysError(f"{where} is damaged: '{key}' is missing or not a {kind.__name__}")
    name = meta.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > NAME_LIMIT):
        raise MfphysError(f"{where} is damaged: its name is not a name of at most {NAME_LIMIT} characters "
                          f"({quote(name)})")
    model = meta.get("model")
    if model is not None and not (isinstance(model, str) and registry.is_family(model)):
        raise MfphysError(f"{where} is damaged: unknown model {quote(model)}; registered families are "
                          f"{', '.join(registry.names())}")
    dims, grid, fixed = meta["dims"], meta["grid"], meta["fixed"]
    if not all(isinstance(d, str) for d in dims) or len(set(dims)) != len(dims):
        raise MfphysError(f"{where} is damaged: its dims {clip(dims)} are not distinct names")
    missing = [d for d in dims if not isinstance(grid.get(d), list) or not grid[d]]
    if missing:
        raise MfphysError(f"{where} is damaged: the grid has no values for {', '.join(map(str, missing))}")
    if set(grid) != set(dims):
        raise MfphysError(f"{where} is damaged: its grid scans {clip(sorted(set(grid) - set(dims)))}, not in its dims")
    family = registry.get(model)
    options = family.scan_axes().options
    # an adaptive scan's grid holds its continuous axes' bounds (real numbers, also of integer
    # options), some of them derived axes (alpha = P / N0) that are no option of a cell
    adaptive = meta.get("adaptive")
    continuous = set(adaptive.get("axes") or {}) if isinstance(adaptive, Mapping) else set()
    for key in continuous & set(grid):
        if key not in family.adaptive_axes():
            raise MfphysError(f"{where} is damaged: {clip(key)} is not a continuous axis of a {family.name} scan")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in grid[key]):
            raise MfphysError(f"{where} is damaged: the bounds of {clip(key)} are not finite numbers")
    for key, values in [*((k, grid[k]) for k in dims if k not in continuous), *((k, [v]) for k, v in fixed.items())]:
        if key not in options:
            raise MfphysError(f"{where} is damaged: {clip(key)} is not an option of a {registry.get(model).name} "
                              f"scan")
        for v in values:
            c = coerce_option(key, v, f"{where} is damaged", model)
            if isinstance(v, str) and not isinstance(c, str) and c is not None:
                raise MfphysError(f"{where} is damaged: {key} takes {options[key].rstrip('?')} values, got "
                                  f"{quote(v)}")


def scan_spec(meta: Mapping, where) -> ScanSpec:
    """The :class:`ScanSpec` a checked scan.json describes (its cells' configurations and hashes),
    or one line when a value, though of the right type, is not one a configuration takes, or
    what the combined view needs is missing (the replicas, the epochs)."""
    for key in ("replicas", "epochs"):
        if key not in meta["fixed"] and key not in meta["grid"]:
            raise MfphysError(f"{where} is damaged: it gives no {key}")
    spec = ScanSpec(tuple((k, tuple(meta["grid"][k])) for k in meta["dims"]),
                    tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in meta["fixed"].items())),
                    meta.get("name"), registry.get(meta.get("model")).name)
    try:
        spec.cells()
    except (MfphysError, TypeError, ValueError) as exc:
        raise MfphysError(f"{where} is damaged: {clip(exc, 200)}") from None
    return spec


def _grid_cells(meta: Mapping) -> list[tuple[tuple, tuple, str]]:
    """(index, coords, key) of every cell of a scan.json, without building configurations."""
    return list(grid_points([(k, meta["grid"][k]) for k in meta["dims"]]))


# --- is a done cell's file this scan's? ---------------------------------------------------------


def _belongs(meta, key: str, coords, cell_coords, scan_hash, cell_config_hash) -> bool:
    """Whether a cell file (or its index entry) is this scan's cell ``key``: its coordinates, and
    the scan's ``scan_hash`` (written by this scan) or the configuration hash the cell must have
    (a cell copied from another scan with ``reuse``)."""
    if cell_coords != dict(coords):
        return False
    if scan_hash is not None and scan_hash == meta.get("scan_hash"):
        return True
    return cell_config_hash is not None and cell_config_hash == _expected_hashes(meta).get(key)


def _entry_vouches(meta, key: str, coords, entry, stat) -> bool:
    """Whether the scan index's ``entry`` for cell ``key`` speaks for its file as it is now
    (``stat`` = ``(mtime_ns, size)``) and says the cell is this scan's; else the file is asked."""
    if entry is None or stat is None or (entry.cell.get("mtime_ns"), entry.cell.get("size")) != stat:
        return False
    c = entry.cell
    return _belongs(meta, key, coords, c.get("coords"), c.get("scan_hash"), c.get("config_hash"))


def _file_belongs(attrs, meta, key: str, coords) -> bool:
    try:
        cell_coords = json.loads(attrs["scan_cell"])
    except (KeyError, ValueError, TypeError):
        return False
    return _belongs(meta, key, coords, cell_coords, attrs.get("scan_hash"), attrs.get("config_hash"))


@functools.lru_cache(maxsize=8)
def _expected_hashes_of(text: str) -> dict:
    from .spec import ScanSpec

    meta = json.loads(text)
    try:
        spec = ScanSpec.build(meta["grid"], meta["fixed"], model=meta.get("model"))
        return {c.key: c.config_hash for c in spec.cells()}
    except MfphysError:
        return {}


def _expected_hashes(meta) -> dict:
    """The ``config_hash`` of every cell of a scan.json's grid (built once per scan and process)."""
    return _expected_hashes_of(json.dumps({k: meta.get(k) for k in ("grid", "fixed", "model")}, sort_keys=True))


def _cell_status(p: _Paths, key: str, names: set) -> str:
    """Status of a cell from file names alone (plus the tiny marker JSON)."""
    if f"{key}.nc" in names:
        return "done"
    if f"{key}.running" in names and marker_alive(read_json(p.running(key))) is not False:
        return "running"
    if f"{key}.failed.json" in names:
        return "failed"
    return "pending"


def scan_status(folder: str | os.PathLike) -> dict:
    """Cheap progress of a scan for a monitor: counts from file names and scan.json, no netCDF reads.

    Returns ``{"name", "total", "done", "failed", "running", "pending", "cells": {key: status}}``.
    A cell counts as done as soon as its file exists (files are only ever written whole) and is
    this scan's: its entry in the scan index says so, or else its attributes do (read once per
    file and process). A file of another scan or configuration counts as failed, as
    :func:`mfphys.scan.open_scan` reports it; an unreadable one as pending (a resume retrains it).
    """
    meta = read_scan_json(folder)
    if "adaptive" in meta:  # its cells are the files it wrote, not a grid (docs/scans.md "Adaptive scans")
        from .adaptive_view import adaptive_status

        return adaptive_status(folder, meta)
    p = _Paths(Path(folder))
    try:
        names = set(os.listdir(p.cells))
    except OSError:
        names = set()
    grid = _grid_cells(meta)
    cells = {key: _cell_status(p, key, names) for _, _, key in grid}
    _check_done(p, meta, grid, cells)
    counts = {s: sum(v == s for v in cells.values()) for s in ("done", "failed", "running", "pending")}
    return {"name": meta.get("name"), "total": len(cells), **counts, "cells": cells}


def _check_done(p: _Paths, meta, grid, cells: dict) -> None:
    """Mark done cells whose file is not this scan's as failed (in place), from the index's
    entries where they match the file, else from the file's attributes."""
    from .index import read

    entries = None
    cells_dir = os.path.join(p.cells, "")  # plain strings: a monitor polls this for every cell
    for _, coords, key in grid:
        if cells[key] != "done":
            continue
        path = f"{cells_dir}{key}.nc"
        try:
            info = os.stat(path)
        except OSError:  # went away since the listing
            cells[key] = "pending"
            continue
        stat = (info.st_mtime_ns, info.st_size)
        if entries is None:
            entries = read(p.index)[0]
        if _entry_vouches(meta, key, coords, entries.get(key), stat):
            ours = True
        else:
            attrs = _cell_attrs(path, stat)
            ours = None if attrs is None else _file_belongs(attrs, meta, key, coords)
        if ours is None:  # damaged: the runner trains it again, the view leaves it out
            cells[key] = "pending"
        elif not ours:
            cells[key] = "failed"


@functools.lru_cache(maxsize=65536)
def _cell_attrs(path: str, stat: tuple) -> dict | None:
    """What tells whose a cell file (as of ``stat``) is: its ``scan_cell``, ``scan_hash`` and
    ``config_hash`` attributes; None when they cannot be read (a damaged file: the runner
    retrains it, the view skips it)."""
    from ..storage import read_attrs

    try:
        attrs = read_attrs(path)
    except MfphysError:
        return None
    return {k: attrs[k] for k in ("scan_cell", "scan_hash", "config_hash") if k in attrs}


# --- is this folder ours to write? ----------------------------------------------------------------


def _check_folder(spec: ScanSpec, p: _Paths) -> dict | None:
    """Refuse a folder that is not this scan's (writes nothing). Returns its scan.json or None if new."""
    folder = check_name_length(p.folder, what="--out")
    if folder.exists() and not folder.is_dir():
        raise MfphysError(f"{folder} exists and is not a folder; use another --name or --out")
    if not folder.exists() or _is_fresh(p):
        return None
    if not p.scan_json.exists():
        raise MfphysError(f"{folder} is not empty and holds no {SCAN_JSON}: it is not an mfphys scan "
                          "folder; use another --name or --out (nothing was written)")
    meta = read_scan_json(folder)
    if meta.get("scan_hash") != spec.scan_hash():
        raise MfphysError(f"{folder} was made by a different scan configuration ({_describe_diff(meta, spec)}); "
                          "use another --name or delete it")
    owners = [i for i in (read_json(m) for m in p.cells.glob("*.running")) if marker_alive(i)]
    owners = [i for i in owners if i.get("owner_pid") != os.getpid()]
    if owners:
        raise MfphysError(f"{folder} is being scanned right now by process {owners[0]['owner_pid']} on "
                          f"{owners[0]['owner_host']}; wait for it to finish or stop it")
    return meta


def _is_fresh(p: _Paths) -> bool:
    """A folder with nothing of a scan in it yet: empty, or only what a scan killed before its
    scan.json landed can leave (the lock file, its dead writers' hidden temporaries, an empty
    ``cells`` folder). Such a folder is taken as new, so the rerun starts the scan."""
    for entry in p.folder.iterdir():
        if entry.name == LOCK:
            continue
        if entry.name == CELLS and entry.is_dir() and not any(entry.iterdir()):
            continue
        if _dead_temporary(entry):
            continue
        return False
    return True


def _dead_temporary(path: Path) -> bool:
    """A hidden ``.NAME.PID.tmp`` whose writer is gone (killed mid-write)."""
    if not (path.name.startswith(".") and path.name.endswith(".tmp")):
        return False
    try:
        pid = int(path.name.rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return False
    return pid != os.getpid() and not pid_alive(pid)


# --- one scan process per folder, one trainer per cell ---------------------------------------------


class FolderLock:
    """The exclusive claim of a scan folder: an OS lock (``flock``) on ``<folder>/.lock``.

    Two scans of one folder started at the same instant cannot both pass: the second finds the
    lock held and is refused (the check of markers alone was check-then-act). The lock dies
    with its process, so a killed scan never leaves the folder locked. Cells are claimed too
    (:func:`claim_cell`), for file systems whose locks do not reach other hosts.
    """

    def __init__(self, p: _Paths, owner: Mapping):
        self.p, self.owner, self.fd = p, dict(owner), None

    def __enter__(self):
        import fcntl

        try:
            self.fd = os.open(self.p.lock, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise MfphysError(f"cannot write in {self.p.folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = {}
            with contextlib.suppress(OSError, ValueError):
                holder = json.loads(os.pread(self.fd, 4096, 0) or b"{}")
            os.close(self.fd)
            self.fd = None
            who = (f"process {holder.get('owner_pid')} on {holder.get('owner_host')}" if holder
                   else "another process")
            raise MfphysError(f"{self.p.folder} is being scanned right now by {who}; "
                              "wait for it to finish or stop it") from None
        data = json.dumps(self.owner).encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the lock; the file stays (removing it would race a waiting locker)
            self.fd = None
        return False


def claim_cell(p: _Paths, key: str, owner: Mapping) -> bool:
    """Claim cell ``key`` for this scan process: create its ``.running`` marker exclusively
    (``O_CREAT | O_EXCL``). False if another live process holds it (the cell is skipped);
    a marker left by a dead process on this machine is taken over."""
    path = p.running(key)
    info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), **owner}).encode()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_json(path)
            if held is not None and marker_alive(held) is False:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            if held is None:  # being written this instant: someone else's
                return False
            return held.get("owner_pid") == owner.get("owner_pid") and held.get("owner_host") == owner.get("owner_host")
        try:
            os.write(fd, info)
        finally:
            os.close(fd)
        return True
    return False


def _describe_diff(meta: Mapping, spec: ScanSpec) -> str:
    def show(v):
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)

    old_g, old_f = meta.get("grid", {}), meta.get("fixed", {})
    new_g, new_f = spec.grid_dict, spec.fixed_dict
    diffs = []
    if list(meta.get("dims", [])) != list(spec.dims) and set(meta.get("dims", [])) == set(spec.dims):
        diffs.append(f"grid order differs: {','.join(meta['dims'])} there, {','.join(spec.dims)} here")
    for k in sorted(set(old_g) | set(old_f) | set(new_g) | set(new_f)):
        old = ("scanned", old_g[k]) if k in old_g else ("fixed", old_f[k]) if k in old_f else ("absent", None)
        new = ("scanned", new_g[k]) if k in new_g else ("fixed", new_f[k]) if k in new_f else ("absent", None)
        if old == new:
            continue
        if old[0] == new[0]:
            diffs.append(f"{k} differs: {show(old[1])} there, {show(new[1])} here")
        else:
            diffs.append(f"{k} is {old[0]} there" + (f" ({show(old[1])})" if old[1] is not None else "")
                         + f", {new[0]} here" + (f" ({show(new[1])})" if new[1] is not None else ""))
    if not diffs:
        diffs.append("scan_hash differs")
    return "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")


# --- cleaning up after processes that are gone ----------------------------------------------------


def _clean_stale(p: _Paths) -> None:
    """Remove markers of dead scan processes and temp files they left (killed mid-write)."""
    for m in p.cells.glob("*.running"):
        if not marker_alive(read_json(m)):
            with contextlib.suppress(FileNotFoundError):
                m.unlink()
    for t in [*p.cells.glob(".*.tmp"), *p.folder.glob(".*.tmp")]:
        if _dead_temporary(t):
            with contextlib.suppress(FileNotFoundError):
                t.unlink()


def _remove_own_markers(p: _Paths, owner: Mapping) -> None:
    """Remove the markers of this scan process (``owner``): its own claims and those Dask workers
    wrote for it; a cell still claimed when the scan stopped would otherwise count as running
    for as long as this process lives."""
    for m in p.cells.glob("*.running"):
        info = read_json(m)
        if isinstance(info, dict) and info.get("owner_pid") == owner["owner_pid"] \
                and info.get("owner_host") == owner["owner_host"]:
            with contextlib.suppress(FileNotFoundError):
                m.unlink()
