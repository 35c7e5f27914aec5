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

from .errors import MfphysError, clip, quote  # noqa: F401 (clip, quote: re-exported)


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


#: the longest file name (bytes of one path component) mfphys writes: the file system's 255
#: less room for the hidden temporary and claim files beside it (``.NAME.PID.tmp``, ``.NAME.lock``)
MAX_NAME_BYTES = 255 - 32
def check_name_length(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Refuse, in one line, a path whose components are too long for a file system (ENAMETOOLONG
    would otherwise surface as a traceback from the first ``stat``)."""
    path = Path(path)
    for part in path.parts:
        n = len(os.fsencode(part))
        if n > MAX_NAME_BYTES:
            raise MfphysError(f"{what} {quote(path)}: a file or folder name of {n} bytes is too long "
                              f"(at most {MAX_NAME_BYTES})")
    return path


def check_readable(path: str | os.PathLike, *, what: str = "file") -> Path:
    """Refuse, in one line and before opening it, what a reader must not open: a missing path or
    anything that is not a regular file (a FIFO would block forever, ``/dev/zero`` never ends).
    The one check of every reader of a user-given file (run files, scan files, data files)."""
    path = check_name_length(path, what=what)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MfphysError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise MfphysError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MfphysError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise MfphysError(f"{what} {path} is not a regular file (a device, FIFO or socket): mfphys only reads "
                          f"regular files")
    if not os.access(path, os.R_OK):
        raise MfphysError(f"cannot read {what} {path}: Permission denied")
    return path


def read_text_checked(path: str | os.PathLike, *, what: str = "file", limit: int = 16 << 20) -> str:
    """A small text file (a scan's TOML, a JSON description), checked first (:func:`check_readable`)
    and bounded in size: one line for anything else."""
    path = check_readable(path, what=what)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise MfphysError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise MfphysError(f"{what} {path} is larger than {mib(limit)}: not a file mfphys wrote")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MfphysError(f"{what} {path} is not text (UTF-8)") from None


def check_destination(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Refuse, with one clear line, a destination that is not a new name or a regular file.

    ``os.replace`` replaces whatever is there: without this check a run written to a device
    (``--out /dev/null``), a FIFO or a socket would replace it by a netCDF file.
    """
    path = check_name_length(path, what=what)
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
    """``mkdir -p`` with one clear line instead of a traceback (a parent that is a file, no permission,
    a name too long)."""
    path = check_name_length(path, what=f"cannot create the {what}")
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


def _existing_parent(path: str | os.PathLike) -> Path:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def read_only(path: str | os.PathLike) -> bool:
    """Whether ``path`` would land on a read-only file system (its nearest existing parent's):
    such a file system often reports no free space, which is not the reason to give."""
    try:
        return bool(os.statvfs(_existing_parent(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the file system that will hold ``path`` (its nearest existing parent)."""
    p = _existing_parent(path)
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def check_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse, before any work, a file of about ``nbytes`` that cannot fit on its disk (a read-only
    file system is said as such, not as a full one)."""
    if read_only(path):
        raise MfphysError(f"cannot write {path}: Read-only file system")
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
    if errno_ == 30 or (errno_ != 28 and read_only(path)):
        return MfphysError(f"cannot write {path}: Read-only file system")
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


def read_json(path: str | os.PathLike, *, limit: int = 16 << 20):
    """A small JSON file, or None if it is missing, half-gone, not a regular file, larger than
    ``limit`` bytes or not JSON (never blocks on a FIFO, never reads a device forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as fh:
            fd = None
            raw = fh.read(limit + 1)
        return json.loads(raw) if len(raw) <= limit else None
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        if fd is not None:
            os.close(fd)


def config_differences(old, new, *, ignore=("epochs",)) -> list[str]:
    """What differs between two run configurations, dataclasses of any family (``--lr 0.1 in the
    file, 0.05 here``), ``ignore`` left out."""
    a, b = dataclasses.asdict(old), dataclasses.asdict(new)

    def show(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return [f"--{k.replace('_', '-')} {show(a[k])} in the file, {show(b[k])} here"
            for k in a if k not in ignore and a[k] != b[k]]


# --- one writer per file ------------------------------------------------------------------------

#: the files this process holds a claim on (:func:`claim_file` is re-entrant per process)
_CLAIMED: dict = {}


def claim_name(path: str | os.PathLike) -> Path:
    """The hidden side file whose OS lock is the claim on ``path`` (``.NAME.lock`` beside it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def claim_file(path: str | os.PathLike, *, busy: str | None = None):
    """The exclusive claim of the one process that may write ``path`` (a run file): an OS lock
    (``flock``) on the side file :func:`claim_name`, taken atomically, so that two identical
    commands started at the same instant cannot both pass (a check of the file's ``writer``
    attribute alone is check-then-act). The lock dies with its process, so a killed writer never
    leaves the file claimed; the side file holds the holder (pid, host) for the message and is
    removed on release. Re-entrant within one process. Raises :class:`MfphysError` (``busy``, or
    "being written right now by ...") when another process holds it. Where the side file cannot
    be created (a missing or read-only folder), nothing can be written there either: no claim is
    taken and the write itself reports why.
    """
    import fcntl
    import socket

    path = Path(path)
    key = os.path.abspath(path)
    if key in _CLAIMED:
        _CLAIMED[key] += 1
        try:
            yield path
        finally:
            _CLAIMED[key] -= 1
        return
    side = claim_name(path)
    fd = None
    for _ in range(100):
        try:
            fd = os.open(side, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        except OSError:
            fd = None
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = {}
            with contextlib.suppress(OSError, ValueError):
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            os.close(fd)
            who = (f"process {holder.get('pid')} on {holder.get('host')}" if isinstance(holder, dict) and holder
                   else "another process")
            raise MfphysError(busy or f"{path} is being written right now by {who}; wait for it or stop it") \
                from None
        try:  # the holder before us may have removed the side file after we opened it: lock the one there
            same = os.stat(side).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
        fd = None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "boot_id": boot_id()}).encode(), 0)
    _CLAIMED[key] = 1
    try:
        yield path
    finally:
        del _CLAIMED[key]
        if fd is not None:
            with contextlib.suppress(OSError):
                side.unlink()  # before the lock goes: a waiting claimer re-checks the inode
            os.close(fd)
