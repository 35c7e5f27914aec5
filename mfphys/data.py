"""Datasets as plain NumPy arrays: MNIST-family IDX files and teacher-student data.

Every loader returns a :class:`Dataset` holding ``x`` of shape ``(P, N0)`` (float32) and
integer labels ``y`` of shape ``(P,)``, plus a SHA-256 ``checksum`` and a ``source`` for
provenance (docs/data.md). No xarray and no UI here.

Where MNIST / Fashion-MNIST files are looked for, first hit wins:

1. the ``data_dir`` argument (``--data-dir``). When given, nothing else is searched
   and nothing is downloaded: a folder without the files is an error;
2. the folder in the environment variable ``MFPHYS_DATA_DIR`` (one naming no folder is an error);
3. the user cache ``$XDG_CACHE_HOME/mfphys/<name>`` (default ``~/.cache/mfphys/<name>``);
4. for Fashion-MNIST only, Debian's ``/usr/share/datasets/fashion-mnist``
   (package ``dataset-fashion-mnist``).

In a folder ``D`` (steps 1 and 2) the files may sit in ``D/<name>/`` or in ``D`` itself,
gzip-compressed (``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``).
In steps 2-4, MNIST files lying directly in a folder are not taken for Fashion-MNIST
(``MFPHYS_DATA_DIR`` often points at an MNIST folder); the search goes on instead.
If no folder holds all four files and ``download=True``, the missing files are fetched
from :data:`MIRRORS` into the user cache (atomic writes, verified before they are kept).

Verification is on the *uncompressed* bytes, so it does not depend on the mirror or on
how a file was compressed: MNIST files must match the SHA-256 values in
:data:`SHA256`. For Fashion-MNIST we have no uncompressed SHA-256 we could confirm, so
local files are checked by IDX structure, shapes and label range only; a freshly
downloaded ``.gz`` is also checked against the official MD5 of the compressed file.

Decoded arrays are cached in-process (keyed by resolved path, modification time and
size), so the repeated loads of a scan are cheap. The arrays a :class:`Dataset` holds are
therefore shared and read-only (``writeable=False``); copy them (``np.array(ds.x_train)``)
before modifying.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import json
import os
import stat
import urllib.error
import urllib.request
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mfphys.errors import MfphysError
from mfphys.fileio import atomic_file, check_readable

from .fileio import quote

__all__ = [
    "DATASETS",
    "Dataset",
    "TeacherConfig",
    "load_dataset",
    "read_idx",
    "dataset_summary",
    "dead_inputs",
    "where",
    "verify",
    "fetch",
    "cache_dir",
    "clear_cache",
]

DATASETS = ("mnist", "fashion-mnist", "teacher")

#: environment variable naming a data folder (search step 2)
ENV_VAR = "MFPHYS_DATA_DIR"

#: the four IDX files of an MNIST-family dataset, uncompressed names, in checksum order
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: shapes both MNIST and Fashion-MNIST have (checked for every file, hash or not)
_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}

_N_CLASSES = {"mnist": 10, "fashion-mnist": 10}

#: SHA-256 of the UNCOMPRESSED files (the table in docs/data.md for MNIST). None: not verified
#: by hash. Fashion-MNIST's project publishes only MD5s of the .gz files; we have no
#: uncompressed SHA-256 we could confirm, and we do not make one up.
SHA256: dict[str, dict[str, str] | None] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": None,
}

#: MD5 of the official compressed Fashion-MNIST files (zalandoresearch/fashion-mnist README,
#: the same values torchvision uses). Only a download is checked against these: a local
#: .gz may have been recompressed and still hold the right bytes.
_GZ_MD5 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

#: download mirrors, tried in order; each serves ``<mirror><file>.gz``. A module constant
#: so tests can point it at an unreachable address or a local ``file://`` folder.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

#: seconds before a mirror is given up; short, so an offline machine fails fast
DOWNLOAD_TIMEOUT_S = 10.0

#: system-wide folders searched last (step 4)
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

# IDX element types: code -> big-endian NumPy dtype (Y. LeCun's format description)
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class Dataset:
    """A classification data set as arrays (read-only, shared with an in-process cache).

    ``x_train`` is ``(P, N0)`` float32 C-contiguous (MNIST pixels / 255, not centred),
    ``y_train`` is ``(P,)`` int64 in ``0..n_classes-1``; likewise ``x_test``, ``y_test``.
    ``checksum`` (SHA-256 hex) identifies the source the rows were taken from: for
    IDX data the four uncompressed files concatenated in :data:`IDX_FILES` order, for
    teacher data the configuration and the teacher's weights. Together with ``P`` and
    ``P_test`` (the first rows are used) it pins the data exactly.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    checksum: str
    source: str

    @property
    def input_dim(self) -> int:
        """N0, the number of inputs per sample."""
        return int(self.x_train.shape[1])


@dataclass(frozen=True)
class TeacherConfig:
    """Teacher-student data: Gaussian inputs labelled by a random teacher network.

    Inputs ``x ~ N(0, 1)`` i.i.d. in ``n_in`` dimensions. The teacher has hidden widths
    ``hidden`` (tanh units) and ``n_classes`` outputs, Gaussian weights with variance
    ``1 / fan_in`` and no biases; the label is the argmax of its standardised output
    (see :func:`_teacher_arrays`). ``n_train_pool`` training and ``n_test`` test samples
    are generated; :func:`load_dataset` takes the first ``n_train`` / ``n_test`` of them.
    """

    n_in: int = 784
    hidden: tuple[int, ...] = (100,)
    n_classes: int = 10
    seed: int = 0
    n_train_pool: int = 60000
    n_test: int = 10000

    def __post_init__(self) -> None:
        # accept a list for hidden (e.g. from JSON) but store a tuple, so the config stays hashable
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for field in ("n_in", "n_train_pool", "n_test"):
            if int(getattr(self, field)) < 1:
                raise MfphysError(f"teacher {field} must be a positive integer, got {getattr(self, field)}")
        if any(h < 1 for h in self.hidden):
            raise MfphysError(f"teacher hidden widths must be positive integers, got {self.hidden}")
        if self.n_classes < 2:
            raise MfphysError(f"teacher n_classes must be at least 2, got {self.n_classes}")
        if self.seed < 0:
            raise MfphysError(f"teacher seed must be a non-negative integer, got {self.seed}")

    def describe(self) -> str:
        """The one-line ``source`` string of data generated from this configuration."""
        return (
            f"teacher(seed={self.seed}, n_in={self.n_in}, hidden={self.hidden}, "
            f"n_classes={self.n_classes}, n_train_pool={self.n_train_pool}, n_test={self.n_test})"
        )


# --------------------------------------------------------------------------- IDX files


def _read_bytes(path: Path) -> bytes:
    """Uncompressed bytes of ``path``; gzip is detected by its magic bytes, not the name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise MfphysError(f"{path} is a damaged or truncated gzip file ({exc}); delete it and fetch it again") from exc
    except OSError as exc:
        raise MfphysError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _parse_idx(raw: bytes, path: Path | str) -> np.ndarray:
    """Decode IDX bytes: 2 zero bytes, a dtype code, ndim, ndim big-endian uint32 sizes, data."""
    if len(raw) < 4:
        raise MfphysError(f"{path} is not an IDX file: only {len(raw)} bytes")
    if raw[0] != 0 or raw[1] != 0:
        raise MfphysError(f"{path} is not an IDX file: bad magic number 0x{raw[:4].hex()}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise MfphysError(f"{path} is not an IDX file: unknown element type 0x{code:02x}")
    if ndim == 0:
        raise MfphysError(f"{path} is not an IDX file: zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MfphysError(f"{path} is truncated: header needs {header} bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) < expected:
        raise MfphysError(f"{path} is truncated: shape {dims} needs {expected} bytes, file has {len(raw)}")
    if len(raw) > expected:
        raise MfphysError(f"{path} is malformed: shape {dims} needs {expected} bytes, file has {len(raw)}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    # native byte order; for uint8 this is a no-op view
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into an array of its stored shape and type.

    Checks the magic number, the element-type code and that the byte count matches the
    dimensions exactly; raises :class:`MfphysError` naming the file otherwise.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


# --------------------------------------------------------------------------- finding files


def _normalise_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    if key not in DATASETS:
        raise MfphysError(f"unknown dataset {quote(name)}: choose one of {', '.join(DATASETS)}")
    return key


def cache_dir(name: str) -> Path:
    """The user cache folder of dataset ``name``: ``$XDG_CACHE_HOME/mfphys/<name>`` or ``~/.cache/mfphys/<name>``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # the XDG spec says relative values are invalid and must be ignored
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "mfphys" / _normalise_name(name)


def _files_in(folder: Path, *, strict: bool = False) -> dict[str, Path]:
    """The IDX files present in ``folder``, by uncompressed name; the .gz name is preferred.

    ``strict`` (a folder the user named: ``--data-dir``, ``$MFPHYS_DATA_DIR``): a member that is
    there but cannot be read (a folder, a FIFO, no permission), or a folder that cannot be
    listed, is one clear error about it, never skipped for the cache or a download."""
    found = {}
    if strict and folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
        raise MfphysError(f"cannot read the data folder {folder}: Permission denied")
    for stem in IDX_FILES:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            try:
                exists = os.path.lexists(candidate)
                regular = exists and stat.S_ISREG(candidate.stat().st_mode)
            except OSError as exc:
                if strict:
                    raise MfphysError(f"cannot read the data file {candidate}: {exc.strerror or exc}") from None
                continue
            if strict and exists:
                check_readable(candidate, what="data file")
            if regular:
                found[stem] = candidate
                break
    return found


# the header and first 20 training labels of MNIST: a cheap fingerprint that tells MNIST
# files apart from Fashion-MNIST's without hashing 47 MB
_MNIST_LABELS_HEAD = bytes([0, 0, 8, 1, 0, 0, 234, 96, 5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9])


def _is_mnist(files: dict[str, Path]) -> bool:
    """Whether the training labels in ``files`` start like MNIST's (reads a few bytes only)."""
    path = files["train-labels-idx1-ubyte"]
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            return fh.read(len(_MNIST_LABELS_HEAD)) == _MNIST_LABELS_HEAD
    except (OSError, EOFError, zlib.error):
        return False


def _complete_in(folder: Path, name: str, *, skip_foreign: bool = False,
                 strict: bool = False) -> tuple[Path, dict[str, Path]] | None:
    """``(folder, files)`` for the first of ``folder/<name>``, ``folder`` holding all four files.

    With ``skip_foreign``, MNIST files lying directly in ``folder`` are not taken for another
    data set: MFPHYS_DATA_DIR commonly points at an MNIST folder, and a Fashion-MNIST search
    should then go on to the cache rather than stop there.
    """
    for cand in (folder / name, folder):
        files = _files_in(cand, strict=strict)
        if len(files) == len(IDX_FILES):
            if skip_foreign and cand == folder and name != "mnist" and _is_mnist(files):
                continue
            return cand, files
    return None


def env_dir() -> Path | None:
    """The folder ``$MFPHYS_DATA_DIR`` names (None when unset or empty).

    A value naming no folder is an error, not skipped: skipping it would end in a download,
    or in an error telling the user to set the variable they did set.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if not env:
        return None
    folder = Path(env).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise MfphysError(f"{ENV_VAR}={env} {what}: point it at the folder that holds the IDX files (or a "
                          f"mnist/ sub-folder of them), or unset it to use the cache {cache_dir('mnist').parent}")
    return folder


def _search_path(name: str) -> list[Path]:
    """Folders searched when no data_dir is given, in order (see module docstring)."""
    folders = []
    env = env_dir()
    if env is not None:
        folders.append(env)
    folders.append(cache_dir(name))
    folders.extend(SYSTEM_DIRS.get(name, ()))
    return folders


def _locate(name: str, data_dir: str | os.PathLike | None) -> tuple[Path, dict[str, Path]] | None:
    if data_dir is not None:
        return _complete_in(Path(data_dir).expanduser(), name, strict=True)
    env = env_dir()
    for folder in _search_path(name):
        hit = _complete_in(folder, name, skip_foreign=True, strict=folder == env)
        if hit is not None:
            return hit
    return None


def _file_list() -> str:
    return ", ".join(f"{stem}.gz" for stem in IDX_FILES)


def _missing_data_dir_error(name: str, data_dir: str | os.PathLike) -> MfphysError:
    folder = Path(data_dir).expanduser()
    if folder.is_file():
        return MfphysError(f"--data-dir {folder} is a file, not a folder: give the folder that holds the IDX files")
    if not folder.is_dir():
        return MfphysError(f"--data-dir {folder} does not exist")
    have = _files_in(folder / name, strict=True) or _files_in(folder, strict=True)
    missing = [stem for stem in IDX_FILES if stem not in have]
    return MfphysError(
        f"--data-dir {folder} does not hold {name}: missing {', '.join(missing)} (.gz or uncompressed); "
        f"put the files there, or leave out --data-dir to use {ENV_VAR} / the cache {cache_dir(name)}"
    )


def not_found_message(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """Why :func:`where` finds no files of ``name``, and what to do, in one line.

    With ``data_dir``: that folder and the files it lacks. Without: the folders searched, and
    the two ways out (download into the cache, or copy the files there by hand).
    """
    name = _normalise_name(name)
    if data_dir is not None:
        return str(_missing_data_dir_error(name, data_dir))
    searched = ", ".join(str(p) for p in _search_path(name))
    return (f"{name} not found (searched {searched}): run `mfphys data fetch {name}` to download it into "
            f"{cache_dir(name)}, or, offline, copy {_file_list()} into that folder")


def where(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder the files of ``name`` would be loaded from (search order above), or None.

    Never downloads. None also for ``teacher``, which needs no files. Raises
    :class:`MfphysError` when ``$MFPHYS_DATA_DIR`` names no folder (:func:`env_dir`).
    """
    name = _normalise_name(name)
    if name == "teacher":
        return None
    hit = _locate(name, data_dir)
    return None if hit is None else hit[0]


# --------------------------------------------------------------------------- verification


def _check_file(name: str, stem: str, path: Path, raw: bytes) -> tuple[np.ndarray, str]:
    """Decode one file and verify it: structure, shape, and the SHA-256 where we know it."""
    arr = _parse_idx(raw, path)
    sha = hashlib.sha256(raw).hexdigest()
    table = SHA256.get(name)
    if table is not None and sha != table[stem]:
        raise MfphysError(
            f"{path} failed verification: SHA-256 of its uncompressed bytes is {sha[:16]}..., "
            f"expected {table[stem][:16]}... for {name}; delete it and fetch it again"
        )
    if arr.shape != _SHAPES[stem] or arr.dtype != np.uint8:
        raise MfphysError(
            f"{path} failed verification: {arr.dtype} array of shape {arr.shape}, "
            f"expected uint8 of shape {_SHAPES[stem]} for {name}"
        )
    if "labels" in stem and arr.size and int(arr.max()) >= _N_CLASSES[name]:
        raise MfphysError(f"{path} failed verification: label {int(arr.max())} >= {_N_CLASSES[name]} classes")
    # Fashion-MNIST is checked by structure only (table is None); catch the likely mix-up of
    # pointing a shared data folder at MNIST and loading it as Fashion-MNIST.
    if table is None and sha == SHA256["mnist"][stem]:
        raise MfphysError(f"{path} is the MNIST file, not {name}; put {name} in a folder of its own")
    return arr, sha


def verify(name: str, data_dir: str | os.PathLike | None = None) -> list[tuple[str, str, bool]]:
    """Check the files of ``name`` where :func:`where` finds them: ``[(file, sha256, ok), ...]``.

    ``sha256`` is of the uncompressed bytes ("" if the file cannot be read); ``ok`` means
    it matches :data:`SHA256` (MNIST) or has the right IDX structure and shape
    (Fashion-MNIST, see the module docstring). Raises MfphysError if the files are not found.
    """
    name = _normalise_name(name)
    if name == "teacher":
        raise MfphysError("teacher data is generated, there are no files to verify")
    hit = _locate(name, data_dir)
    if hit is None:
        raise MfphysError(not_found_message(name, data_dir))
    rows = []
    for stem in IDX_FILES:
        path = hit[1][stem]
        sha, ok = "", False
        try:
            raw = _read_bytes(path)
            sha = hashlib.sha256(raw).hexdigest()
            _check_file(name, stem, path, raw)
            ok = True
        except MfphysError:
            pass
        rows.append((str(path), sha, ok))
    return rows


# --------------------------------------------------------------------------- download


class _NetworkError(Exception):
    """A mirror could not be reached or broke off (internal: becomes a ``network`` entry)."""


class _DownloadFailed(Exception):
    """Internal: every mirror failed for one file; turned into one MfphysError by the caller."""

    def __init__(self, kinds: set[str], last: str) -> None:
        super().__init__(last)
        self.kinds = kinds
        self.last = last


def _download_one(name: str, stem: str, folder: Path) -> Path:
    """Fetch ``stem.gz`` from the first mirror that serves a verified copy; atomic write."""
    target = folder / f"{stem}.gz"
    errors = []
    for mirror in MIRRORS[name]:
        url = f"{mirror}{stem}.gz"
        try:
            with atomic_file(target) as tmp:  # a reader never sees half a download
                try:
                    with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                        while chunk := resp.read(1 << 20):
                            out.write(chunk)
                except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                    raise _NetworkError(f"{url}: {getattr(exc, 'reason', exc)}") from None
                md5 = _GZ_MD5.get(name, {}).get(stem)
                if md5 is not None and hashlib.md5(tmp.read_bytes()).hexdigest() != md5:
                    raise MfphysError(f"{url} does not match the official MD5 {md5}")
                _check_file(name, stem, target, _read_bytes(tmp))
            return target
        except _NetworkError as exc:
            errors.append(("network", str(exc)))
        except MfphysError as exc:
            errors.append(("verify", f"{url}: {exc}"))
    kinds = {kind for kind, _ in errors}
    last = errors[-1][1] if errors else "no mirrors configured"
    raise _DownloadFailed(kinds, " ".join(last.split()))


def fetch(name: str) -> Path:
    """Download the missing files of ``name`` into :func:`cache_dir` and return that folder.

    Files already in the cache are kept; each downloaded file is verified before it is
    moved into place. Raises MfphysError with instructions when a download fails.
    """
    name = _normalise_name(name)
    if name == "teacher":
        raise MfphysError("teacher data is generated, there is nothing to fetch")
    folder = cache_dir(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfphysError(
            f"cannot create the cache folder {folder}: {exc.strerror or exc}; pass --data-dir instead"
        ) from exc
    have = _files_in(folder)
    for stem in IDX_FILES:
        if stem in have:
            continue
        try:
            _download_one(name, stem, folder)
        except _DownloadFailed as exc:
            if exc.kinds == {"verify"}:
                raise MfphysError(f"{name}: the downloaded {stem}.gz failed verification ({exc.last})") from None
            raise MfphysError(
                f"{name} not found and could not be downloaded (offline?): put {_file_list()} "
                f"into {folder}, or pass --data-dir / set {ENV_VAR} [last error: {exc.last}]"
            ) from None
    return folder


# --------------------------------------------------------------------------- loading


@functools.lru_cache(maxsize=2)
def _idx_arrays(name: str, files: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, ...]:
    """Decoded, verified, read-only arrays of the four files; keyed by (path, mtime, size)."""
    total = hashlib.sha256()
    arrays = []
    for stem, (path, _, _) in zip(IDX_FILES, files):
        raw = _read_bytes(Path(path))
        arr, _ = _check_file(name, stem, Path(path), raw)
        total.update(raw)
        arrays.append(arr)
    x_tr, y_tr, x_te, y_te = arrays
    out = []
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        xf = x.reshape(x.shape[0], -1).astype(np.float32)
        xf /= np.float32(255.0)  # pixels / 255 in [0, 1], no centring (docs/model.md section 4)
        yi = y.astype(np.int64)
        out += [xf, yi]
    for arr in out:
        arr.flags.writeable = False
    return (*out, total.hexdigest())


def _load_idx_dataset(name: str, data_dir, download: bool) -> tuple[tuple, str]:
    hit = _locate(name, data_dir)
    if hit is None:
        if data_dir is not None:
            raise _missing_data_dir_error(name, data_dir)
        env = env_dir()
        if env is not None:  # the folder the user named is what the message is about; no download behind it
            have = _files_in(env / name, strict=True) or _files_in(env, strict=True)
            missing = [stem for stem in IDX_FILES if stem not in have]
            raise MfphysError(f"{ENV_VAR}={env} does not hold {name}: missing {', '.join(missing)} (.gz or "
                              f"uncompressed); put the files there, pass --data-dir, or unset {ENV_VAR} to use (and "
                              f"download into) the cache {cache_dir(name)}")
        if not download:
            searched = ", ".join(str(p) for p in _search_path(name))
            raise MfphysError(
                f"{name} not found (searched {searched}) and download is off: put {_file_list()} "
                f"into {cache_dir(name)}, or pass --data-dir / set {ENV_VAR}"
            )
        folder = fetch(name)
        hit = (folder, _files_in(folder))
    folder, files = hit
    key = []
    for stem in IDX_FILES:
        p = files[stem].resolve()
        st = p.stat()
        key.append((str(p), st.st_mtime_ns, st.st_size))
    return _idx_arrays(name, tuple(key)), str(folder)


def _teacher_forward(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw teacher output: tanh hidden layers, linear read-out, float64, in row chunks."""
    out = np.empty((x.shape[0], weights[-1].shape[0]), dtype=np.float64)
    step = 8192  # bounds the float64 temporaries to a few tens of MB
    for i in range(0, x.shape[0], step):
        h = x[i : i + step].astype(np.float64)
        for w in weights[:-1]:
            h = np.tanh(h @ w.T)
        out[i : i + step] = h @ weights[-1].T
    return out


@functools.lru_cache(maxsize=2)
def _teacher_arrays(cfg: TeacherConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Generate teacher-student data; deterministic in ``cfg``.

    Independent streams (SeedSequence(seed).spawn) for the teacher, a calibration set, the
    training pool and the test set, so changing ``n_train_pool`` leaves the teacher and the
    test set unchanged, and the first rows of the pool are the same for any pool size.

    Balance: the raw outputs of a random net have zero mean but unequal variances across
    classes (row norms of the read-out differ), so a plain argmax favours some classes.
    We standardise each output by its mean and standard deviation over a calibration
    sample of 20000 inputs before the argmax; the classes then come out roughly equal.
    """
    ss = np.random.SeedSequence(cfg.seed)
    rng_w, rng_cal, rng_tr, rng_te = (np.random.default_rng(s) for s in ss.spawn(4))
    widths = (cfg.n_in, *cfg.hidden, cfg.n_classes)
    weights = [rng_w.standard_normal((n_out, n_in)) / np.sqrt(n_in) for n_in, n_out in zip(widths[:-1], widths[1:])]

    cal = _teacher_forward(weights, rng_cal.standard_normal((20000, cfg.n_in), dtype=np.float32))
    mu, sd = cal.mean(axis=0), cal.std(axis=0)
    sd[sd == 0] = 1.0

    def make(rng, n):
        x = rng.standard_normal((n, cfg.n_in), dtype=np.float32)
        y = np.argmax((_teacher_forward(weights, x) - mu) / sd, axis=1).astype(np.int64)
        x.flags.writeable = False
        y.flags.writeable = False
        return x, y

    x_tr, y_tr = make(rng_tr, cfg.n_train_pool)
    x_te, y_te = make(rng_te, cfg.n_test)
    # provenance: the configuration plus the teacher's parameters, so a change of NumPy's
    # random streams (not guaranteed stable across versions) shows up as a new checksum
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for w in weights:
        h.update(w.astype("<f8").tobytes())
    h.update(mu.astype("<f8").tobytes())
    h.update(sd.astype("<f8").tobytes())
    return x_tr, y_tr, x_te, y_te, h.hexdigest()


def _take(arr: np.ndarray, n: int | None, what: str, flag: str, name: str) -> np.ndarray:
    """The first ``n`` rows (a read-only view); checks 1 <= n <= available."""
    if n is None:
        return arr
    avail = arr.shape[0]
    if isinstance(n, bool) or int(n) != n:
        raise MfphysError(f"{flag} must be a whole number, got {quote(n)}")
    n = int(n)
    if n <= 0:
        raise MfphysError(f"{flag} must be positive, got {n}")
    if n > avail:
        raise MfphysError(f"{flag} {n} is larger than the {avail} {what} of {name}")
    return arr[:n]


def load_dataset(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    teacher: TeacherConfig | None = None,
) -> Dataset:
    """Load data set ``name`` (one of :data:`DATASETS`) as a :class:`Dataset`.

    ``n_train`` / ``n_test`` take the FIRST that many samples (the paper uses the first
    10,000 MNIST training images); None takes all. MNIST-family files are found as in the
    module docstring and downloaded into the cache if missing and ``download`` is true
    (never when ``data_dir`` is given). ``teacher`` configures the ``teacher`` data set
    (default :class:`TeacherConfig()`); passing it with another name is an error.
    Arrays are read-only views of an in-process cache.
    """
    name = _normalise_name(name)
    if name == "teacher":
        cfg = TeacherConfig() if teacher is None else teacher
        x_tr, y_tr, x_te, y_te, checksum = _teacher_arrays(cfg)
        source, n_classes = cfg.describe(), cfg.n_classes
        what_tr, what_te = "training samples", "test samples"
    else:
        if teacher is not None:
            raise MfphysError(f"teacher settings apply to the teacher data set only, not to {name}")
        (x_tr, y_tr, x_te, y_te, checksum), source = _load_idx_dataset(name, data_dir, download)
        n_classes = _N_CLASSES[name]
        what_tr, what_te = "training images", "test images"
    x_tr = _take(x_tr, n_train, what_tr, "--n-train", name)
    y_tr = y_tr[: x_tr.shape[0]]
    x_te = _take(x_te, n_test, what_te, "--n-test", name)
    y_te = y_te[: x_te.shape[0]]
    return Dataset(name, x_tr, y_tr, x_te, y_te, n_classes, checksum, source)


def clear_cache() -> None:
    """Forget the in-process cache of decoded arrays (e.g. to free memory)."""
    _idx_arrays.cache_clear()
    _teacher_arrays.cache_clear()


# --------------------------------------------------------------------------- helpers


def dataset_summary(ds: Dataset) -> dict:
    """Provenance of ``ds`` as plain values: name, P, P_test, N0, n_classes, checksum, source."""
    return {
        "name": ds.name,
        "P": int(ds.x_train.shape[0]),
        "P_test": int(ds.x_test.shape[0]),
        "N0": ds.input_dim,
        "n_classes": int(ds.n_classes),
        "checksum": ds.checksum,
        "source": ds.source,
    }


def dead_inputs(x: np.ndarray) -> np.ndarray:
    """Boolean mask ``(N0,)`` of inputs constant over the rows of ``x`` (zero variance).

    Their first-layer connections never receive a gradient (docs/model.md section 6), so
    order parameters are reported both over all inputs and over the live ones.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"dead_inputs needs a non-empty (P, N0) array, got shape {x.shape}")
    # max == min is exact, unlike var() == 0 which can suffer rounding
    return x.max(axis=0) == x.min(axis=0)
