"""The scan index: every finished cell's combinable summary in one file beside the cells.

:func:`mfphys.scan.open_scan` stacks, per cell, only the small per-layer and per-epoch
variables of the cell files (docs/scans.md, "Reading a scan from Python"). Reading them from
thousands of netCDF files costs tens of milliseconds per cell; the index ``<folder>/cells.index``
holds the same numbers, so a large scan opens by reading one file (docs/scans.md, "The scan
index").

The cell files stay the truth; the index is a cache that is checked against them on every read:

* an entry counts only while its cell file has the ``(mtime_ns, size)`` recorded with it
  (a cell written again, or replaced by hand, is read from its file again);
* an entry is written only for a cell whose file belongs to the scan (its coordinates, and its
  ``scan_hash`` or ``config_hash``, are those of the scan: the same check as for the file);
* done cells without a valid entry are read from their files, and their entries appended,
  so a missing, damaged or stale index is rebuilt by the next reader; an index with more dead
  entries than live ones is rewritten whole (atomically).

The file is a sequence of self-checking records, appended under an OS lock (``flock`` on the
index file, the lock design of the folder itself, :class:`mfphys.scan.folder.FolderLock`), so
the scan process and readers that rebuild entries can add records at the same time. A record::

    8 bytes  MAGIC
    8 bytes  payload length (little-endian)
    4 bytes  CRC-32 of the payload
    payload: u32 length of the cell JSON, u32 length of the layout JSON, cell JSON,
             layout JSON, the variables' bytes (C order, in the layout's order)

The cell JSON holds the key, coordinates, hashes, the cell file's ``(mtime_ns, size)`` and the
per-cell numbers the view needs (``train_seconds``, dead inputs); the layout JSON the variables'
names, dimensions, dtypes, shapes and attributes and the cell's ``dyn_epoch`` values. Cells of
one shape share a layout byte for byte, which lets the reader decode thousands of them as one
array. A record cut short by a killed writer, or damaged, fails its CRC and is skipped (the
reader looks for the next MAGIC); its cell is then read from its file. No xarray here: the
view (:mod:`mfphys.scan.view`) turns datasets into records and records into its arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import numpy as np

from .folder import INDEX  # noqa: F401  (the index file's name inside a scan folder)

MAGIC = b"\x89MFCELL\n"
_HEAD = struct.Struct("<8sQI")
_LENS = struct.Struct("<II")


class Entry(NamedTuple):
    """One decoded record: its cell JSON, its layout JSON bytes and its variables' bytes."""

    cell: dict
    layout: bytes
    data: memoryview
    nbytes: int  # the whole record's size in the file


class Layout(NamedTuple):
    """A parsed layout: ``vars`` = ((name, dims, dtype, shape, attrs, offset, nbytes), ...)."""

    vars: tuple
    dyn_epoch: np.ndarray | None
    nbytes: int


# --- encoding --------------------------------------------------------------------------------------


def _attr_json(value):
    """A netCDF attribute as JSON (NumPy scalars and arrays tagged so they come back as they were)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return {"__np__": value.dtype.str, "v": value.item()}
    if isinstance(value, np.ndarray):
        return {"__np__": value.dtype.str, "v": value.tolist(), "a": 1}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_attr_json(v) for v in value]}
    raise TypeError(f"attribute of type {type(value).__name__}")


def _attr_value(value):
    if isinstance(value, dict):
        if "__list__" in value:
            return [_attr_value(v) for v in value["__list__"]]
        dtype = np.dtype(value["__np__"])
        return np.asarray(value["v"], dtype=dtype) if value.get("a") else dtype.type(value["v"])
    return value


def encode(cell: Mapping, variables: Iterable[tuple], dyn_epoch) -> bytes | None:
    """One record: ``cell`` (JSON-able), ``variables`` = ``(name, dims, ndarray, attrs)`` in order,
    ``dyn_epoch`` (the cell's ``dyn_epoch`` values or None). None when a variable cannot be stored
    (not numeric): such a cell is read from its file."""
    specs, chunks = [], []
    try:
        for name, dims, values, attrs in variables:
            values = np.ascontiguousarray(values)
            if values.dtype.kind not in "biuf":
                return None
            specs.append([str(name), list(dims), values.dtype.str, list(values.shape),
                          {str(k): _attr_json(v) for k, v in attrs.items()}])
            chunks.append(values.tobytes())
    except TypeError:
        return None
    layout = {"vars": specs, "dyn_epoch": None if dyn_epoch is None else [int(e) for e in dyn_epoch]}
    cell_b = json.dumps(dict(cell), sort_keys=True).encode()
    layout_b = json.dumps(layout).encode()
    payload = b"".join([_LENS.pack(len(cell_b), len(layout_b)), cell_b, layout_b, *chunks])
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def parse_layout(raw: bytes) -> Layout:
    doc = json.loads(raw)
    out, offset = [], 0
    for name, dims, dtype, shape, attrs in doc["vars"]:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        out.append((name, tuple(dims), dtype, tuple(shape), {k: _attr_value(v) for k, v in attrs.items()},
                    offset, nbytes))
        offset += nbytes
    dyn = doc.get("dyn_epoch")
    return Layout(tuple(out), None if dyn is None else np.asarray(dyn, dtype=np.int64), offset)


def _parse(buf: memoryview, start: int, entries: dict) -> tuple[int, int]:
    """Parse records of ``buf`` from ``start`` into ``entries`` (key -> latest :class:`Entry`).
    Returns (where parsing stopped: the end of the last whole record, bytes skipped as damaged)."""
    pos, end, skipped, good_end = start, len(buf), 0, start
    raw = buf.obj if isinstance(buf.obj, bytes) else bytes(buf)
    while pos + _HEAD.size <= end:
        magic, length, crc = _HEAD.unpack_from(buf, pos)
        body = pos + _HEAD.size
        if magic == MAGIC and body + length <= end:
            payload = buf[body:body + length]
            if zlib.crc32(payload) == crc and length >= _LENS.size:
                n_cell, n_layout = _LENS.unpack_from(payload, 0)
                a = _LENS.size
                try:
                    cell = json.loads(bytes(payload[a:a + n_cell]))
                    key = cell["key"]
                except (ValueError, KeyError, TypeError):
                    cell = key = None
                if key is not None:
                    layout = bytes(payload[a + n_cell:a + n_cell + n_layout])
                    entries[key] = Entry(cell, layout, payload[a + n_cell + n_layout:], _HEAD.size + length)
                pos = good_end = body + length
                continue
        # damaged, or cut short by a killed writer: go on at the next record; a record cut short
        # with nothing after it may still be being written, and is read again next time
        nxt = raw.find(MAGIC, pos + 1)
        if nxt < 0:
            break
        skipped += nxt - pos
        pos = nxt
    return good_end, skipped


# --- reading, cached per process -------------------------------------------------------------------


class _Parsed(NamedTuple):
    ino: int
    size: int
    mtime_ns: int
    end: int  # bytes parsed (up to the last whole record)
    entries: dict
    skipped: int


_CACHE: dict[str, _Parsed] = {}
_LAYOUTS: dict[bytes, Layout] = {}
_CACHE_LOCK = threading.Lock()


def layout(raw: bytes) -> Layout:
    """The parsed layout of a record (cached: a scan has few)."""
    hit = _LAYOUTS.get(raw)
    if hit is None:
        if len(_LAYOUTS) > 256:
            _LAYOUTS.clear()
        hit = _LAYOUTS[raw] = parse_layout(raw)
    return hit


def read(path: str | os.PathLike) -> tuple[dict, int, int]:
    """``(entries, file size, damaged bytes)`` of an index file: key -> latest :class:`Entry`.

    Cached per process by the file's identity: an unchanged file is not read again, and a
    file that only grew (records appended) is read from where the last read stopped, so a
    monitor re-opening a running scan reads only the new records. A missing or unreadable
    file is an empty index.
    """
    path = str(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}, 0, 0
    try:
        st = os.fstat(fd)
        with _CACHE_LOCK:
            old = _CACHE.get(path)
        if old is not None and old.ino == st.st_ino and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            return old.entries, old.size, old.skipped
        start, entries, skipped = 0, {}, 0
        if old is not None and old.ino == st.st_ino and st.st_size >= old.size:  # only appended to
            start, entries, skipped = old.end, dict(old.entries), old.skipped
        with open(fd, "rb", closefd=False) as fh:
            fh.seek(start)
            data = fh.read(st.st_size - start)
    except OSError:
        return {}, 0, 0
    finally:
        os.close(fd)
    end, bad = _parse(memoryview(data), 0, entries)
    parsed = _Parsed(st.st_ino, start + len(data), st.st_mtime_ns, start + end, entries, skipped + bad)
    with _CACHE_LOCK:
        _CACHE[path] = parsed
    return entries, parsed.size, parsed.skipped


# --- writing ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path):
    """The index file open for appending, under its OS lock; reopened when a rewrite replaced it."""
    import fcntl

    for _ in range(100):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # closing releases the lock
    raise OSError(f"{path} keeps being replaced")


def append(path: str | os.PathLike, records: Iterable[bytes]) -> None:
    """Append records to the index (created if missing), under its lock, in one write."""
    blob = b"".join(r for r in records if r)
    if not blob:
        return
    with _locked(Path(path)) as fd:
        os.write(fd, blob)


def rewrite(path: str | os.PathLike, keep: Iterable[str]) -> None:
    """Rewrite the index with only the latest records of the keys in ``keep`` (atomically, under
    the lock: appenders wait, then reopen the new file)."""
    from ..fileio import atomic_file

    path = Path(path)
    keep = set(keep)
    with _locked(path):
        entries, _, _ = read(path)
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            for key, e in entries.items():
                if key in keep:
                    fh.write(_reencode(e))


def _reencode(e: Entry) -> bytes:
    cell_b = json.dumps(e.cell, sort_keys=True).encode()
    payload = b"".join([_LENS.pack(len(cell_b), len(e.layout)), cell_b, e.layout, bytes(e.data)])
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
