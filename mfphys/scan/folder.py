"""A scan folder on disk: its layout, ``.running`` markers and whose they are, progress.

Everything here works from file names, scan.json and the small marker JSON files, never
from the netCDF cell files, so a monitor (the TUI, :func:`scan_status`) can poll a large
running scan cheaply; no xarray. Layout and contract: :mod:`mfphys.scan`, docs/scans.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Mapping, NamedTuple

from ..errors import MfphysError
from ..fileio import boot_id, pid_alive, read_json
from .spec import ScanSpec, grid_points

SCAN_JSON = "scan.json"
CELLS = "cells"
KIND = "scan"
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

    def running(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.running"


def _owner() -> dict:
    return {"owner_pid": os.getpid(), "owner_host": socket.gethostname(), "boot_id": boot_id()}


def marker_alive(info: Mapping | None) -> bool | None:
    """Whether the scan process that wrote a ``.running`` marker still runs: True/False, or None when
    it ran on another machine (cannot tell). Markers of dead processes are stale and ignored."""
    if not isinstance(info, Mapping):
        return False
    if info.get("owner_host") != socket.gethostname():
        return None
    if info.get("boot_id", "") != boot_id():
        return False
    try:
        return pid_alive(int(info.get("owner_pid")))
    except (TypeError, ValueError):
        return False


# --- reading a scan folder ------------------------------------------------------------------------


def read_scan_json(folder: str | os.PathLike) -> dict:
    """The ``scan.json`` of a scan folder, or one clear :class:`MfphysError`."""
    p = _Paths(Path(folder))
    if not p.scan_json.exists():
        raise MfphysError(f"{folder} is not an mfphys scan folder (no {SCAN_JSON})")
    meta = read_json(p.scan_json)
    if not isinstance(meta, dict) or meta.get(KIND_ATTR) != KIND:
        raise MfphysError(f"{p.scan_json} is not an mfphys scan description ({KIND_ATTR} != {KIND!r})")
    return meta


def _grid_cells(meta: Mapping) -> list[tuple[tuple, tuple, str]]:
    """(index, coords, key) of every cell of a scan.json, without building configurations."""
    return list(grid_points([(k, meta["grid"][k]) for k in meta["dims"]]))


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
    A cell counts as done as soon as its file exists (files are only ever written whole).
    """
    meta = read_scan_json(folder)
    p = _Paths(Path(folder))
    try:
        names = set(os.listdir(p.cells))
    except OSError:
        names = set()
    cells = {key: _cell_status(p, key, names) for _, _, key in _grid_cells(meta)}
    counts = {s: sum(v == s for v in cells.values()) for s in ("done", "failed", "running", "pending")}
    return {"name": meta.get("name"), "total": len(cells), **counts, "cells": cells}


# --- is this folder ours to write? ----------------------------------------------------------------


def _check_folder(spec: ScanSpec, p: _Paths) -> dict | None:
    """Refuse a folder that is not this scan's (writes nothing). Returns its scan.json or None if new."""
    folder = p.folder
    if folder.exists() and not folder.is_dir():
        raise MfphysError(f"{folder} exists and is not a folder; use another --name or --out")
    if not folder.exists() or not any(folder.iterdir()):
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
    for t in p.cells.glob(".*.tmp"):
        try:
            pid = int(t.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid() or not pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                t.unlink()


def _remove_own_markers(p: _Paths, owner: Mapping) -> None:
    """Remove the markers Dask workers wrote for this scan process (``owner``): a cell they were
    still training when the scan stopped would otherwise count as running for as long as this process lives."""
    for m in p.cells.glob("*.running"):
        info = read_json(m)
        if isinstance(info, dict) and info.get("owner_pid") == owner["owner_pid"] \
                and info.get("owner_host") == owner["owner_host"]:
            with contextlib.suppress(FileNotFoundError):
                m.unlink()
