"""Small file helpers every writer in mfphys shares: atomic writes, small JSON files, timestamps.

No xarray and no UI here, so the lightest modules (data, scan folder state) can use them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import stat
from pathlib import Path

from .errors import MfphysError


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string to the second, e.g. ``2026-11-28T01:02:03+00:00``."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def temp_name(path: str | os.PathLike) -> Path:
    """The hidden temporary name beside ``path`` that this process writes before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def boot_id() -> str:
    """This machine's boot id (Linux), so that a pid from before a reboot is not taken as alive."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    try:  # a killed child that was not reaped yet is a zombie: dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_alive(pid, host, boot) -> bool | None:
    """Whether the process ``pid`` on machine ``host`` (booted as ``boot``, a :func:`boot_id`)
    still runs: True or False, or None when it ran on another machine (cannot tell). The one
    liveness rule of scan markers, folder locks and run files' writers."""
    import socket

    if host != socket.gethostname():
        return None
    if (boot or "") != boot_id():
        return False
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    return pid == os.getpid() or pid_alive(pid)


def check_destination(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Refuse, with one clear line, a destination that is not a new name or a regular file.

    ``os.replace`` replaces whatever is there: without this check a run written to a device
    (``--out /dev/null``), a FIFO or a socket would replace it by a netCDF file.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return path
    except OSError as exc:  # e.g. a parent that is a file: "Not a directory"
        raise MfphysError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MfphysError(f"{what} {path} is a directory: give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise MfphysError(f"{what} {path} exists and is not a regular file (a device, FIFO or socket): "
                          f"mfphys only writes new files or replaces its own regular files")
    return path


def make_folder(path: str | os.PathLike, *, what: str = "folder") -> Path:
    """``mkdir -p`` with one clear line instead of a traceback (a parent that is a file, no permission)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfphysError(f"cannot create the {what} {path}: {exc.strerror or exc}") from None
    return path


def check_writable(path: str | os.PathLike, *, what: str = "--out", nbytes: int | None = None) -> Path:
    """Fail early, with one clear line, if ``path`` cannot be written (before hours of work):
    not a new name or a regular file, an uncreatable or unwritable folder, or (``nbytes``
    given) too little free space. Temporaries that killed writers left beside it are removed."""
    path = check_destination(path, what=what)
    make_folder(path.parent)
    tmp = temp_name(path)
    try:
        try:
            tmp.write_bytes(b"")
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise MfphysError(f"cannot write {path}: {exc.strerror or exc}") from None
    remove_stale_temps(path)
    if nbytes is not None:
        check_free_space(path, nbytes)
    return path


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporaries (``.NAME.PID.tmp``) that killed processes left beside
    ``path``; those of live processes stay. Returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the file system that will hold ``path`` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def check_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse, before any work, a file of about ``nbytes`` that cannot fit on its disk."""
    free = free_bytes(path)
    if free is not None and nbytes + (1 << 20) > free:
        raise MfphysError(f"No space left on device for {path} (needs about {mib(nbytes)}, {mib(free)} free)")


def mib(nbytes: float) -> str:
    """Bytes as a short human number: ``12.3 MB``, ``4.1 GB`` (powers of 1024)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def write_error(path: str | os.PathLike, exc: BaseException) -> MfphysError:
    """One clear line for a failed write (``OSError``, or the netCDF library's ``RuntimeError``
    such as "NetCDF: HDF error", which is what a full disk looks like from netCDF4)."""
    errno_ = getattr(exc, "errno", None)
    free = free_bytes(path)
    if errno_ == 28 or (free is not None and free < (1 << 20)):
        return MfphysError(f"cannot write {path}: No space left on device ({mib(free or 0)} free)")
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return MfphysError(f"cannot write {path}: {text}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Write a file atomically: yield a temporary path beside ``path`` to write to; on success
    it is flushed to disk and renamed over ``path``, on failure removed.

    A reader sees the old complete file or the new complete file, never half of one. Every
    file mfphys writes (runs, scans, reproductions, figures, exports, downloads) goes through
    here. Only a new name or a regular file is ever replaced (:func:`check_destination`); an
    ``OSError`` becomes one clear :class:`MfphysError` (:func:`write_error`).
    """
    path = check_destination(path, what="cannot write")
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            check_destination(path, what="cannot write")  # it may have appeared meanwhile
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):  # renamed already, or its folder never was
                tmp.unlink()
    except OSError as exc:
        raise write_error(path, exc) from None


def write_json_atomic(obj, path: str | os.PathLike) -> None:
    """``obj`` as JSON to ``path``, atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1))


def dataclass_from_json(cls, text: str):
    """An instance of the dataclass ``cls`` from a JSON object; keys that are not fields of
    ``cls`` are ignored (a file written by a later version opens). ValueError for JSON that is
    not an object; the dataclass's own validation runs."""
    import dataclasses

    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError("a configuration is a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def read_json(path: str | os.PathLike):
    """A small JSON file, or None if it is missing, half-gone or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def config_differences(old, new, *, ignore=("epochs",)) -> list[str]:
    """What differs between two run configurations, dataclasses of any family (``--lr 0.1 in the
    file, 0.05 here``), ``ignore`` left out."""
    a, b = dataclasses.asdict(old), dataclasses.asdict(new)

    def show(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return [f"--{k.replace('_', '-')} {show(a[k])} in the file, {show(b[k])} here"
            for k in a if k not in ignore and a[k] != b[k]]
