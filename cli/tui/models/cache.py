"""Results cached by the signature of their files, so the live refresh re-reads only what changed.

A file's signature is its (mtime, size); a scan folder's is the listing of ``scan.json`` and
of its ``cells/`` folder (names, mtimes, sizes: no reads).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class Cache:
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


#: the one cache of the app's reads (listing entries, runs, scans, perturbation files); ``r`` clears it
CACHE = Cache()


def file_signature(path: Path) -> tuple:
    """(mtime_ns, size) of a file, or () if it vanished."""
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_mtime_ns, st.st_size)


def run_signature(path: Path) -> tuple:
    """:func:`file_signature` of a run file and of its epoch log (:mod:`mfphys.runlog`): a run
    that trains changes with every epoch, not only at its checkpoints."""
    from mfphys.runlog import log_path

    return file_signature(path) + file_signature(log_path(path))


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
