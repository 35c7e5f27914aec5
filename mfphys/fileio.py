"""Small file helpers every writer in mfphys shares: atomic writes, small JSON files, timestamps.

No xarray and no UI here, so the lightest modules (data, scan folder state) can use them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from pathlib import Path

from .errors import MfphysError


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string to the second, e.g. ``2026-11-28T01:02:03+00:00``."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def temp_name(path: str | os.PathLike) -> Path:
    """The hidden temporary name beside ``path`` that this process writes before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Write a file atomically: yield a temporary path beside ``path`` to write to; on success
    it is flushed to disk and renamed over ``path``, on failure removed.

    A reader sees the old complete file or the new complete file, never half of one. Every
    file mfphys writes (runs, scans, reproductions, figures, exports, downloads) goes through
    here; an ``OSError`` becomes one clear :class:`MfphysError`.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):  # renamed already, or its folder never was
                tmp.unlink()
    except OSError as exc:
        raise MfphysError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json_atomic(obj, path: str | os.PathLike) -> None:
    """``obj`` as JSON to ``path``, atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1))


def read_json(path: str | os.PathLike):
    """A small JSON file, or None if it is missing, half-gone or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
