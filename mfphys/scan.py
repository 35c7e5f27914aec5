"""Scans: grids of training runs over depth x data size (and any other option), resumable.

A scan trains one :func:`mfphys.train.train` run per *cell* of a grid, e.g. depth (number of
hidden layers, docs/model.md section 2) x ``n_train`` (data size P), ``replicas`` seeds per cell
trained together, every other :class:`~mfphys.train.TrainConfig` option held fixed. It is the
"phase diagram" experiment: order parameters (docs/model.md section 6) as functions of depth and P.

Folder layout (DESIGN.md "Stored data"; the TUI and analysis scripts rely on it)::

    runs/<name>/scan.json            the scan: grid, fixed options, scan_hash (written first)
    runs/<name>/cells/<key>.nc       one ordinary run file per finished cell
    runs/<name>/cells/<key>.failed.json   a failed cell: error, config_hash, time
    runs/<name>/cells/<key>.running  marker (JSON) while a cell trains

``<key>`` is ``name=value`` per scanned option in grid order, joined by commas, e.g.
``depth=2,n_train=1000`` (see :func:`cell_key`). A cell file carries the run schema plus the
attributes ``scan_cell`` (JSON of its coordinates), ``config_hash`` (SHA-256 of the cell's
``TrainConfig`` JSON), ``scan_hash`` and ``mfphys_version``.

Resume: a cell whose file opens and carries the expected ``config_hash`` is never trained or
written again; everything is written atomically (temp file + fsync + rename), so a killed
scan leaves only complete files behind. Cells run in this process one after the other, or
on a ``dask.distributed`` cluster (``workers`` = a local cluster, ``scheduler`` = an existing
one). Workers only train and return the result; this process writes every file, so the
files are the same whichever way the cells ran, and workers need no shared file system.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import itertools
import json
import math
import os
import shutil
import socket
import sys
import time
import tomllib
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import xarray as xr

from . import __version__, store
from .errors import MfphysError
from .fileio import atomic_file, read_json, utc_now, write_json_atomic
from .train import TrainConfig, load_data, train

SCAN_JSON = "scan.json"
CELLS = "cells"
KIND = "scan"

#: options that are not TrainConfig fields: the architecture (input_dim, width, ..., 10) as depth x width
ARCH_OPTIONS = {"depth": "int", "width": "int", "input_dim": "int"}
ARCH_DEFAULTS = {"width": 100, "input_dim": 784}
#: every data set mfphys knows (MNIST, Fashion-MNIST, teacher) has 10 classes
N_CLASSES = 10
#: TrainConfig fields a scan does not take as options: layers is built from depth and width
NOT_OPTIONS = ("layers",)
#: options that can only be held fixed: replicas is the replica axis; decay_on is a list itself
NOT_SCANNABLE = ("replicas", "decay_on")
#: always grid dimensions, in this order, even with a single value (the depth x data-size plane)
ALWAYS_SCANNED = ("depth", "n_train")

_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")


def _kind_of(default) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, tuple):
        return "tuple"
    return "str"


_TRAIN_DEFAULTS = {f.name: getattr(TrainConfig(), f.name) for f in dataclasses.fields(TrainConfig)
                   if f.name not in NOT_OPTIONS}
#: option name -> kind (int, float, str, bool, tuple; "int?" may be None = all)
OPTIONS = {**ARCH_OPTIONS, **{k: _kind_of(v) for k, v in _TRAIN_DEFAULTS.items()}, "n_test": "int?"}
DEFAULTS = {**ARCH_DEFAULTS, **_TRAIN_DEFAULTS}


# --- values and keys ------------------------------------------------------------------------------


def _coerce(name: str, value, where: str):
    """``value`` (from the CLI as text, or from TOML) as the option's type, or one clear error."""
    kind = OPTIONS[name]
    bad = MfphysError(f"{where}: {name} takes {kind.rstrip('?')} values, got {value!r}")
    if kind == "int?" and (value is None or (isinstance(value, str) and value.strip().lower() in ("all", "none"))):
        return None
    if kind in ("int", "int?"):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    value = float(value)
                except ValueError:
                    raise bad from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise bad
    if kind == "float":
        if isinstance(value, bool):
            raise bad
        try:
            v = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(v):
            raise bad
        return v
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise bad
    if kind == "tuple":
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise bad
        return tuple(value)
    if not isinstance(value, str) or not value.strip():
        raise bad
    return value.strip()


def _fmt(value) -> str:
    """One coordinate value as text in a cell key: 2, 0.1, 1e-05, true, fashion-mnist."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    # percent-encode anything that is not safe in a file name on every common file system
    return "".join(c if c in _SAFE else f"%{ord(c):02X}" for c in text)


def cell_key(coords: Sequence[tuple[str, Any]]) -> str:
    """File-name key of a cell: ``depth=2,n_train=1000`` (grid order; values as in :func:`_fmt`)."""
    return ",".join(f"{k}={_fmt(v)}" for k, v in coords)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(config: TrainConfig) -> str:
    """SHA-256 of a cell's full configuration (its ``TrainConfig`` JSON)."""
    return _sha256(config.to_json())


def layers_of(options: Mapping[str, Any]) -> tuple[int, ...]:
    """Layer widths ``(N0,) + (width,) * depth + (10,)`` of a cell (docs/model.md section 2)."""
    return (int(options["input_dim"]),) + (int(options["width"]),) * int(options["depth"]) + (N_CLASSES,)


# --- the specification ----------------------------------------------------------------------------


class Cell(NamedTuple):
    """One grid point: its index in the grid, coordinates, file key and full configuration."""

    index: tuple
    coords: tuple  # ((name, value), ...) in grid order
    key: str
    config: TrainConfig
    config_hash: str


def _norm_name(name: str, where: str) -> str:
    key = str(name).strip().replace("-", "_")
    if key not in OPTIONS:
        raise MfphysError(f"{where}: unknown parameter {name!r}; known: {', '.join(sorted(OPTIONS))}")
    return key


@dataclass(frozen=True)
class ScanSpec:
    """A scan: the grid (scanned options and their values, in order) and every other option.

    ``fixed`` holds *all* options that are not scanned, defaults resolved, so that
    :meth:`scan_hash` pins the numbers of every cell. Build it with :meth:`build`,
    :func:`spec_from_options` or :meth:`from_toml` (they validate); ``name`` is the folder name
    under ``runs/`` (default: :meth:`default_name`).
    """

    grid: tuple  # ((name, (v0, v1, ...)), ...)
    fixed: tuple  # ((name, value), ...) sorted by name
    name: str | None = None

    @classmethod
    def build(cls, grid: Mapping[str, Sequence], fixed: Mapping[str, Any] | None = None, *,
              name: str | None = None, where: str = "scan") -> ScanSpec:
        """Validate and normalise a grid and fixed options; raise :class:`MfphysError` on bad input."""
        g, f = {}, {}
        for k, values in grid.items():
            key = _norm_name(k, where)
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                values = [values]
            if len(values) == 0:
                raise MfphysError(f"{where}: {key} has no values to scan")
            vals = tuple(_coerce(key, v, where) for v in values)
            if len(set(vals)) != len(vals):
                raise MfphysError(f"{where}: {key} lists a value twice: {', '.join(map(str, vals))}")
            if key in NOT_SCANNABLE and len(vals) > 1:
                raise MfphysError(f"{where}: {key} cannot be scanned (give one value)"
                                  + (": replicas are the replica axis of every cell" if key == "replicas" else ""))
            if key in NOT_SCANNABLE:
                f[key] = vals[0]
            else:
                g[key] = vals
        for k, v in (fixed or {}).items():
            key = _norm_name(k, where)
            if key in g:
                raise MfphysError(f"{where}: {key} is both scanned and fixed; give it once")
            f[key] = _coerce(key, v, where)
        for key in ALWAYS_SCANNED:
            if key not in g and key in f:
                g[key] = (f.pop(key),)
            if key not in g:
                flag = "--" + key.replace("_", "-")
                raise MfphysError(f"{where}: give the {key} values to scan ({flag} 1,2,3 or {key} = [...] in "
                                  f"the [grid] table of --config)")
        order = list(ALWAYS_SCANNED) + [k for k in g if k not in ALWAYS_SCANNED]
        grid_t = tuple((k, g[k]) for k in order)
        full = {**{k: v for k, v in DEFAULTS.items() if k not in g}, **f}
        spec = cls(grid_t, tuple(sorted(full.items())), name)
        spec._validate(where)
        return spec

    @classmethod
    def from_toml(cls, path: str | os.PathLike, *, grid: Mapping | None = None, fixed: Mapping | None = None,
                  name: str | None = None) -> ScanSpec:
        """Read a scan file (tables ``[grid]`` and ``[fixed]``, optional ``name``); ``grid``/``fixed``
        given here override it key by key (the command line wins over the file)."""
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise MfphysError(f"--config {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MfphysError(f"--config {path}: cannot read it ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise MfphysError(f"--config {path} is not valid TOML: {exc}") from None
        unknown = set(doc) - {"name", "grid", "fixed"}
        if unknown:
            raise MfphysError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
                              "a scan file holds name, [grid] and [fixed]")
        for table in ("grid", "fixed"):
            if not isinstance(doc.get(table, {}), dict):
                raise MfphysError(f"{path}: {table} must be a table ([{table}])")
        file_name = doc.get("name")
        if file_name is not None and not isinstance(file_name, str):
            raise MfphysError(f"{path}: name must be a string")
        g = {_norm_name(k, f"{path} [grid]"): v for k, v in doc.get("grid", {}).items()}
        f = {_norm_name(k, f"{path} [fixed]"): v for k, v in doc.get("fixed", {}).items()}
        for k, v in (grid or {}).items():
            f.pop(k, None)
            g[k] = v
        for k, v in (fixed or {}).items():
            g.pop(k, None)
            f[k] = v
        return cls.build(g, f, name=name or file_name, where=str(path))

    # -- derived ---------------------------------------------------------------------------------

    @property
    def grid_dict(self) -> dict:
        return {k: list(v) for k, v in self.grid}

    @property
    def fixed_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fixed}

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.grid)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for _, v in self.grid)

    def scan_hash(self) -> str:
        """SHA-256 of the grid (in order) and the fixed options; independent of the package version."""
        return _sha256(json.dumps({"grid": [[k, list(v)] for k, v in self.grid], "fixed": self.fixed_dict},
                                  sort_keys=True))

    def default_name(self) -> str:
        """``<dataset>-scan-<first 10 hex of scan_hash>``: the same command finds the same folder."""
        dataset = dict(self.fixed).get("dataset", "mixed")
        return f"{dataset}-scan-{self.scan_hash()[:10]}"

    def cells(self) -> list[Cell]:
        """Every cell in grid (row-major) order."""
        fixed = dict(self.fixed)
        out = []
        for index in itertools.product(*(range(n) for n in self.shape)):
            coords = tuple((k, v[i]) for (k, v), i in zip(self.grid, index))
            opts = {**fixed, **dict(coords)}
            train_opts = {k: v for k, v in opts.items() if k in _TRAIN_DEFAULTS}
            cfg = TrainConfig(**train_opts, layers=layers_of(opts))
            out.append(Cell(index, coords, cell_key(coords), cfg, config_hash(cfg)))
        return out

    def _validate(self, where: str) -> None:
        if self.name is not None:
            _check_name(self.name)
        for cell in self.cells():
            opts = dict(cell.coords)
            try:
                if int(dict(self.fixed, **opts)["depth"]) < 0:
                    raise MfphysError("depth (the number of hidden layers) must be >= 0")
                for k in ("width", "input_dim"):
                    v = dict(self.fixed, **opts)[k]
                    if v <= 0:
                        raise MfphysError(f"{k} must be positive, got {v}")
                cell.config.validate()
                if cell.config.batch_size > cell.config.n_train:
                    raise MfphysError(f"--batch-size {cell.config.batch_size} is larger than n_train "
                                      f"{cell.config.n_train}")
                if cell.config.dataset != "teacher" and cell.config.layers[0] != 784:
                    raise MfphysError(f"{cell.config.dataset} images have 784 pixels: drop --input-dim "
                                      f"{cell.config.layers[0]} (it is for --dataset teacher)")
            except MfphysError as exc:
                raise MfphysError(f"{where}: cell {cell.key}: {exc}") from None


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or any(c not in _SAFE for c in name):
        raise MfphysError(f"--name {name!r} must be a plain folder name (letters, digits, . _ + -)")


def split_values(text: str, option: str) -> list[str]:
    """``"1,2,3"`` -> ``["1", "2", "3"]``; empty entries are an error (``1,,2``)."""
    parts = [p.strip() for p in str(text).split(",")]
    if any(p == "" for p in parts):
        raise MfphysError(f"malformed {option} {text!r}: give comma-separated values like 1,2,3")
    return parts


def spec_from_options(options: Mapping[str, str | None], *, config: str | os.PathLike | None = None,
                      name: str | None = None) -> ScanSpec:
    """The spec of ``mfphys scan``: options as command-line text (None = not given).

    ``depth`` and ``n_train`` are always grid dimensions; any other option given a list of
    more than one value (``--lr 0.1,0.05``) is scanned too, a single value is held fixed.
    ``decay_on`` is a list itself and never scanned. Options given here override ``config``.
    """
    grid, fixed = {}, {}
    for k, text in options.items():
        if text is None:
            continue
        key = _norm_name(k, "options")
        flag = "--" + key.replace("_", "-")
        if key == "decay_on":
            fixed[key] = text
            continue
        values = split_values(text, flag)
        if key in ALWAYS_SCANNED or len(values) > 1:
            grid[key] = values
        else:
            fixed[key] = values[0]
    if config is not None:
        return ScanSpec.from_toml(config, grid=grid, fixed=fixed, name=name)
    return ScanSpec.build(grid, fixed, name=name, where="options")


# --- small file helpers ---------------------------------------------------------------------------


def _boot_id() -> str:
    """This machine's boot id (Linux), so that a pid from before a reboot is not taken as alive."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
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


def _owner() -> dict:
    return {"owner_pid": os.getpid(), "owner_host": socket.gethostname(), "boot_id": _boot_id()}


def marker_alive(info: Mapping | None) -> bool | None:
    """Whether the scan process that wrote a ``.running`` marker still runs: True/False, or None when
    it ran on another machine (cannot tell). Markers of dead processes are stale and ignored."""
    if not isinstance(info, Mapping):
        return False
    if info.get("owner_host") != socket.gethostname():
        return None
    if info.get("boot_id", "") != _boot_id():
        return False
    try:
        return _pid_alive(int(info.get("owner_pid")))
    except (TypeError, ValueError):
        return False


class _Paths(NamedTuple):
    folder: Path

    @property
    def scan_json(self) -> Path:
        return self.folder / SCAN_JSON

    @property
    def cells(self) -> Path:
        return self.folder / CELLS

    def nc(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.nc"

    def failed(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.failed.json"

    def running(self, key: str) -> Path:
        return self.folder / CELLS / f"{key}.running"


# --- reading a scan folder ------------------------------------------------------------------------


def read_scan_json(folder: str | os.PathLike) -> dict:
    """The ``scan.json`` of a scan folder, or one clear :class:`MfphysError`."""
    p = _Paths(Path(folder))
    if not p.scan_json.exists():
        raise MfphysError(f"{folder} is not an mfphys scan folder (no {SCAN_JSON})")
    meta = read_json(p.scan_json)
    if not isinstance(meta, dict) or meta.get(store.KIND_ATTR) != KIND:
        raise MfphysError(f"{p.scan_json} is not an mfphys scan description ({store.KIND_ATTR} != {KIND!r})")
    return meta


def _grid_cells(meta: Mapping) -> list[tuple[tuple, tuple, str]]:
    """(index, coords, key) of every cell of a scan.json, without building configurations."""
    grid = [(k, meta["grid"][k]) for k in meta["dims"]]
    out = []
    for index in itertools.product(*(range(len(v)) for _, v in grid)):
        coords = tuple((k, v[i]) for (k, v), i in zip(grid, index))
        out.append((index, coords, cell_key(coords)))
    return out


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


#: new names of run variables that collide with a scanned coordinate (others get a "_cell" suffix)
RENAMED = {"lr": "lr_schedule"}


def _combinable(dims: tuple) -> bool:
    return bool(dims) and set(dims) <= {"replica", "layer", "epoch"}


@functools.lru_cache(maxsize=8192)
def _cell_summary(path: str, mtime_ns: int, size: int) -> xr.Dataset:
    """The combinable variables of one cell file, read once per (path, mtime, size).

    Only what the combined view keeps is loaded (not the per-connection pi/m/Xi arrays or the
    histograms), and an unchanged file is never read twice in a process, so refreshing a
    large running scan (the TUI does it every few seconds) reads only the cells that changed.
    The cached datasets are shared: callers must not modify them.
    """
    try:
        with xr.open_dataset(path, engine=store.ENGINE) as ds:
            keep = [k for k, v in ds.data_vars.items() if _combinable(v.dims)]
            return ds[keep].load()
    except Exception as exc:  # vanished, half-written by a foreign writer, or not netCDF
        raise MfphysError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def open_scan(folder: str | os.PathLike) -> xr.Dataset:
    """One in-memory ``xarray.Dataset`` of a whole scan (DESIGN.md, scan's combined view).

    Dimensions: the scanned options in grid order (e.g. ``depth``, ``n_train``), then
    ``replica``, ``layer`` (1..max depth + 1) and ``epoch``. Every ``(replica, layer)``,
    ``(replica, epoch)``, ``(replica,)`` and ``(epoch,)`` variable of the cell files is
    combined, NaN where a cell is not done or a layer does not exist at that depth; plus
    ``status`` ("pending" / "running" / "done" / "failed") and ``error`` per cell,
    ``test_error`` (1 - test_acc at the cell's last epoch), ``train_seconds`` and
    ``n_connections`` (per layer, for network-wide averages, see :func:`network_mean`).
    Per-connection arrays and histograms stay in the cell files (``cell_path``). A run variable
    named like a scanned option is renamed (the per-epoch ``lr`` becomes ``lr_schedule`` when
    lr is scanned).
    Cells that vanish or cannot be read while this runs count as pending; it never fails
    because a scan is being written.
    """
    folder = Path(folder)
    meta = read_scan_json(folder)
    p = _Paths(folder)
    dims = tuple(meta["dims"])
    grid, fixed = meta["grid"], meta["fixed"]
    shape = tuple(len(grid[k]) for k in dims)
    R = int(fixed["replicas"])

    def opt(coords, k):
        return dict(coords).get(k, fixed.get(k))

    cells = _grid_cells(meta)
    L = max(int(opt(c, "depth")) for _, c, _ in cells) + 1
    E = max(int(opt(c, "epochs")) for _, c, _ in cells)
    sizes = {"replica": R, "layer": L, "epoch": E}
    try:
        names = set(os.listdir(p.cells))
    except OSError:
        names = set()

    status = np.full(shape, "pending", dtype=object)
    error = np.full(shape, "", dtype=object)
    n_conn = np.full(shape + (L,), np.nan)
    seconds = np.full(shape, np.nan)
    test_error = np.full(shape + (R,), np.nan)
    arrays: dict[str, tuple[tuple, np.ndarray, dict]] = {}
    for index, coords, key in cells:
        widths = layers_of({k: opt(coords, k) for k in ARCH_OPTIONS})
        n_conn[index][: len(widths) - 1] = np.multiply(widths[:-1], widths[1:])
        st = _cell_status(p, key, names)
        if st == "failed":
            info = read_json(p.failed(key)) or {}
            error[index] = str(info.get("error", "failed (no readable record)"))
        if st != "done":
            status[index] = st
            continue
        try:
            info = os.stat(p.nc(key))
            ds = _cell_summary(str(p.nc(key)), info.st_mtime_ns, info.st_size)
        except (OSError, MfphysError):  # vanished or not readable: treat as not done
            continue
        if ds.attrs.get("scan_cell") is None or json.loads(ds.attrs["scan_cell"]) != dict(coords):
            continue
        status[index] = "done"
        for name, var in ds.data_vars.items():
            if not _combinable(var.dims):
                continue
            if name not in arrays:
                arrays[name] = (var.dims, np.full(shape + tuple(sizes[d] for d in var.dims), np.nan),
                                dict(var.attrs))
            target = arrays[name][1][index]
            target[tuple(slice(0, n) for n in var.shape)] = var.values
        if "test_acc" in ds:
            test_error[index] = 1.0 - ds["test_acc"].isel(epoch=-1).values
        with contextlib.suppress(ValueError, KeyError, TypeError):
            seconds[index] = json.loads(ds.attrs.get("timings", "{}"))["train_seconds"]

    coords_out = {k: np.asarray(grid[k]) for k in dims}
    coords_out.update({"replica": np.arange(R), "layer": np.arange(1, L + 1), "epoch": np.arange(1, E + 1)})
    # a run variable named like a scanned option (the per-epoch `lr` when lr is scanned) is renamed
    data = {(RENAMED.get(name, name + "_cell") if name in dims else name): (dims + vd, arr, attrs)
            for name, (vd, arr, attrs) in arrays.items()}
    data["test_error"] = (dims + ("replica",), test_error,
                          {"long_name": "test error 1 - test_acc at the cell's last epoch", "units": "1"})
    data["train_seconds"] = (dims, seconds, {"long_name": "wall-clock training time of the cell", "units": "s"})
    data["n_connections"] = (dims + ("layer",), n_conn,
                             {"long_name": "connections of the layer (N_l * N_{l-1})", "units": "1"})
    data["status"] = (dims, status.astype("U7"), {"long_name": "cell status: pending, running, done or failed"})
    data["error"] = (dims, error.astype(str), {"long_name": "error of a failed cell ('' when none)"})
    out = xr.Dataset({k: xr.Variable(d, v, attrs=a) for k, (d, v, a) in data.items()}, coords=coords_out)
    out.attrs = {store.KIND_ATTR: KIND, "name": meta.get("name", folder.name), "grid": json.dumps(grid),
                 "fixed": json.dumps(fixed), "scan_hash": meta.get("scan_hash", ""),
                 "mfphys_version": meta.get("mfphys_version", ""), "created": meta.get("created", ""),
                 "folder": str(folder)}
    return out


def cell_path(folder: str | os.PathLike, **coords) -> Path:
    """The run file of one cell, e.g. ``cell_path("runs/s", depth=2, n_train=1000)``."""
    meta = read_scan_json(folder)
    missing = set(meta["dims"]) - set(coords)
    if missing or set(coords) - set(meta["dims"]):
        raise MfphysError(f"give exactly the scanned coordinates {', '.join(meta['dims'])}")
    return _Paths(Path(folder)).nc(cell_key([(k, coords[k]) for k in meta["dims"]]))


def network_mean(ds: xr.Dataset, name: str) -> xr.DataArray:
    """A per-layer order parameter averaged over the whole network, weighted by connections.

    E.g. ``network_mean(open_scan(f), "sparsity")`` is the fraction of *all* connections that
    are absent; layers that do not exist (NaN) drop out.
    """
    w = ds["n_connections"].where(ds[name].notnull())
    return (ds[name] * w).sum("layer", min_count=1) / w.sum("layer", min_count=1)


# --- running a scan -------------------------------------------------------------------------------


class ScanEvent(NamedTuple):
    """What :func:`run_scan` reports to its callback.

    ``kind``: "begin" (counts known), "cell_start", "epoch" (sequential runs: ``record`` is
    the :class:`mfphys.train.EpochRecord`), "cell_done", "cell_failed" (``error`` set),
    "tick" (counts refreshed while cells run on Dask), "end".
    ``counts``: {"total", "done", "failed", "running", "pending"}.
    """

    kind: str
    cell: Cell | None
    counts: dict
    record: Any = None
    error: str = ""


class ScanReport(NamedTuple):
    folder: Path
    total: int
    done: int
    failed: int
    trained: int  # cells trained (done or failed) by this call
    skipped: int  # cells found done and left untouched
    reused: int  # cells copied from the ``reuse`` folders
    seconds: float
    failed_cells: tuple  # ((key, error), ...)


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


def _cell_done(p: _Paths, cell: Cell, *, foreign_ok: bool = False) -> bool:
    """True if the cell's file is complete and ours; False if missing or corrupt (to be retrained).
    A readable file of another configuration is refused (we never write over it), unless
    ``foreign_ok`` (a folder we only read from, ``reuse``): then it is just not a match."""
    path = p.nc(cell.key)
    if not path.exists():
        return False
    try:
        ds = store.read_dataset(path)
    except MfphysError:
        return False  # only written atomically, so a bad file is damage: retrain it
    if ds.attrs.get("config_hash") == cell.config_hash:
        return True
    if foreign_ok:
        return False
    why = "has no config_hash" if "config_hash" not in ds.attrs else "was made by a different configuration"
    raise MfphysError(f"{path} {why}: it is not a cell of this scan; move it away (nothing was written)")


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)


def _preflight(cells: Sequence[Cell], data_dir) -> None:
    """Load each distinct data set once at its largest n_train, so that missing MNIST files or a
    too-large n_train stop the scan with one line before anything is written."""
    biggest: dict = {}
    for cell in cells:
        c = cell.config
        k = (c.dataset, c.layers[0], c.teacher_seed, c.n_test)
        if k not in biggest or c.n_train > biggest[k].n_train:
            biggest[k] = c
    for c in biggest.values():
        load_data(c, data_dir)


def _error_record(exc: BaseException, cell: Cell) -> dict:
    rec = {"error": str(exc) if isinstance(exc, MfphysError) else f"{type(exc).__name__}: {exc}",
           "error_type": type(exc).__name__, "config_hash": cell.config_hash, "scan_cell": dict(cell.coords),
           "time": utc_now(), "host": socket.gethostname(), "mfphys_version": __version__}
    if not isinstance(exc, MfphysError):
        rec["traceback"] = "".join(traceback.format_exception(exc))
    return rec


def _train_cell(cell: Cell, data_dir, marker: str | None, owner: dict, blas_threads: int | None,
                callback=None):
    """Train one cell (in this process or on a Dask worker). Returns ("done", TrainResult, where)
    or ("failed", error record, where); never raises for a failing cell."""
    where = f"{socket.gethostname()}:{os.getpid()}"
    if marker is not None and Path(marker).parent.is_dir():  # a worker without the shared folder skips it
        with contextlib.suppress(MfphysError):
            write_json_atomic({"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now(), **owner},
                               Path(marker))
    limits = contextlib.nullcontext()
    if blas_threads:
        # the same thread count everywhere gives the same numbers (OpenBLAS's sums depend on it);
        # and one single-threaded process per core beats multi-threaded BLAS on a CPU (DESIGN.md)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(blas_threads)
    try:
        with limits:
            return "done", train(cell.config, data_dir=data_dir, callback=callback), where
    except Exception as exc:
        return "failed", _error_record(exc, cell), where


def _connect(workers: int | None, scheduler: str | None, timeout: float):
    """A dask.distributed Client (and the LocalCluster we own, or None)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MfphysError("--workers/--scheduler need dask.distributed: pip install 'mfphys[dist]'") from None
    if scheduler:
        # a Client that failed to connect complains from its __del__ when collected: keep that
        # traceback off the user's terminal, the one line below says it all
        hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
        try:
            try:
                return Client(scheduler, timeout=timeout), None
            except Exception as exc:
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            gc.collect()
        finally:
            sys.unraisablehook = hook
        raise MfphysError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({why}); "
                          "is `dask scheduler` running there?")
    import logging

    import dask

    # Dask's nanny gives workers OMP/MKL/OPENBLAS_NUM_THREADS=1 (what we want: one single-threaded
    # process per core, DESIGN.md) and MALLOC_TRIM_THRESHOLD_=65536, which switches off glibc's
    # adaptive mmap threshold: every large NumPy temporary is then mmapped and freed again
    # (measured: +30-100% system time in training). Keep the first, drop the second.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        # dashboard on a free port: the default 8787 may be taken by another scan's cluster
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _cost(cell: Cell) -> float:
    """Rough relative cost of a cell, to start the big ones first on a cluster."""
    c = cell.config
    return c.n_train * c.epochs * c.replicas * sum(a * b for a, b in zip(c.layers[:-1], c.layers[1:]))


def run_scan(spec: ScanSpec, folder: str | os.PathLike, *, workers: int | None = None,
             scheduler: str | None = None, callback: Callable[[ScanEvent], None] | None = None,
             data_dir=None, retry_failed: bool = True, command: str | None = None,
             connect_timeout: float = 5.0, blas_threads: int | None = 1,
             reuse: Sequence[str | os.PathLike] = ()) -> ScanReport:
    """Train every cell of ``spec`` that is not done yet into ``folder``; see the module docstring.

    ``workers``: run cells on a local Dask cluster of that many single-threaded processes;
    ``scheduler``: on the existing Dask cluster at that address; neither: here, one by one.
    ``retry_failed``: train cells recorded as failed again (default) or leave them failed.
    ``blas_threads``: BLAS threads per cell, wherever it runs (None: the library's default).
    OpenBLAS's results depend on its thread count, so the default 1 is what makes a cell's
    numbers the same sequentially, on a local cluster and on a remote one (on one machine
    type); on a multi-core CPU run cells in parallel with ``workers`` instead.
    ``reuse``: other scan folders whose finished cells of the same key and ``config_hash``
    are copied instead of trained (to grow a scan by a row or a column).
    Bad input (a folder that is not this scan's, missing data, an unreachable scheduler)
    raises :class:`MfphysError` before anything is written. Failed cells do not raise: see
    the returned :class:`ScanReport`.
    """
    t0 = time.perf_counter()
    if workers is not None and scheduler is not None:
        raise MfphysError("give --workers (a local Dask cluster) or --scheduler (an existing one), not both")
    if workers is not None and workers < 1:
        raise MfphysError(f"--workers must be >= 1, got {workers}")
    if blas_threads is not None and blas_threads < 1:
        raise MfphysError(f"--blas-threads must be >= 1, got {blas_threads}")
    p = _Paths(Path(folder))
    name = spec.name or p.folder.name
    meta = _check_folder(spec, p)
    cells = spec.cells()
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None

    sources = [_Paths(Path(r)) for r in reuse]
    for src in sources:
        read_scan_json(src.folder)  # a clear error if it is not a scan folder
    done, failed_old, todo, copies = [], [], [], []
    for cell in cells:
        if meta is not None and _cell_done(p, cell):
            done.append(cell)
        elif (src := next((s for s in sources if _cell_done(s, cell, foreign_ok=True)), None)) is not None:
            copies.append((cell, src))
        elif meta is not None and not retry_failed and p.failed(cell.key).exists():
            failed_old.append(cell)
        else:
            todo.append(cell)
    if todo and scheduler is None:
        _preflight(todo, data_dir)

    client = cluster = None
    if todo and (workers is not None or scheduler is not None):
        client, cluster = _connect(workers, scheduler, connect_timeout)
    try:
        if meta is None:
            p.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic({store.KIND_ATTR: KIND, "mfphys_version": __version__, "name": name,
                                "dims": list(spec.dims), "grid": spec.grid_dict, "fixed": spec.fixed_dict,
                                "width": spec.fixed_dict.get("width"), "scan_hash": spec.scan_hash(),
                                "created": utc_now(), "command": command or "mfphys.scan.run_scan"}, p.scan_json)
        p.cells.mkdir(exist_ok=True)
        _clean_stale(p)
        for cell, src in copies:  # the bytes of a finished cell, copied atomically
            _copy_atomic(src.nc(cell.key), p.nc(cell.key))
            done.append(cell)

        counts = {"total": len(cells), "done": len(done), "failed": len(failed_old), "running": 0,
                  "pending": len(todo)}
        failures = [(c.key, (read_json(p.failed(c.key)) or {}).get("error", "")) for c in failed_old]
        emit = callback or (lambda ev: None)
        emit(ScanEvent("begin", None, dict(counts)))
        owner = _owner()

        def finish(cell, outcome, payload, where):
            counts["pending"] -= 1
            if outcome == "done":
                ds = store.run_to_dataset(payload, command=command)
                ds.attrs.update(scan_cell=json.dumps(dict(cell.coords)), config_hash=cell.config_hash,
                                scan_name=name, scan_hash=spec.scan_hash(), mfphys_version=__version__,
                                trained_on=where, blas_threads=str(blas_threads or "default"))
                store.write_atomic(ds, p.nc(cell.key))
                with contextlib.suppress(FileNotFoundError):
                    p.failed(cell.key).unlink()
                counts["done"] += 1
                emit(ScanEvent("cell_done", cell, dict(counts)))
            else:
                write_json_atomic({**payload, "trained_on": where}, p.failed(cell.key))
                counts["failed"] += 1
                failures.append((cell.key, payload["error"]))
                emit(ScanEvent("cell_failed", cell, dict(counts), error=payload["error"]))
            with contextlib.suppress(FileNotFoundError):
                p.running(cell.key).unlink()

        if client is None:
            for cell in todo:
                counts["running"] = 1
                emit(ScanEvent("cell_start", cell, dict(counts)))
                try:
                    outcome, payload, where = _train_cell(
                        cell, data_dir, str(p.running(cell.key)), owner, blas_threads,
                        callback=lambda rec, cell=cell: emit(ScanEvent("epoch", cell, dict(counts), rec)))
                    counts["running"] = 0
                    finish(cell, outcome, payload, where)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        p.running(cell.key).unlink()
        else:
            _run_dask(client, todo, p, owner, data_dir, blas_threads, counts, emit, finish)
        emit(ScanEvent("end", None, dict(counts)))
    finally:
        if client is not None:
            _remove_own_markers(p, owner)
            client.close()
            if cluster is not None:
                cluster.close()
    return ScanReport(p.folder, len(cells), counts["done"], counts["failed"], len(todo), len(done) - len(copies),
                      len(copies), time.perf_counter() - t0, tuple(failures))


def _run_dask(client, todo, p: _Paths, owner, data_dir, blas_threads, counts, emit, finish) -> None:
    """Submit every cell, biggest first; write each result here as it arrives."""
    from dask.distributed import wait

    tag = uuid.uuid4().hex[:8]
    futures = {}
    for cell in sorted(todo, key=_cost, reverse=True):  # submitted in order: idle workers take the first ones
        f = client.submit(_train_cell, cell, data_dir, str(p.running(cell.key)), owner, blas_threads,
                          key=f"mfphys-cell-{cell.key}-{tag}", priority=int(_cost(cell)), pure=False)
        futures[f] = cell
    pending = set(futures)
    while pending:
        try:
            finished, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:
            finished = set()
        for f in finished:
            cell = futures.pop(f)
            if f.status == "finished":
                outcome, payload, where = f.result()
            else:  # the task itself crashed (e.g. a worker killed by the OOM killer: KilledWorker)
                outcome, payload, where = "failed", _error_record(f.exception(), cell), "dask"
            finish(cell, outcome, payload, where)
            f.release()
        # a worker writes the marker when the cell starts; finished futures may still have one
        running = sum(1 for f, c in futures.items() if f.status == "pending" and p.running(c.key).exists())
        counts["running"] = running
        emit(ScanEvent("tick", None, dict(counts)))


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
        if pid == os.getpid() or not _pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                t.unlink()


def _remove_own_markers(p: _Paths, owner: Mapping) -> None:
    for m in p.cells.glob("*.running"):
        info = read_json(m)
        if isinstance(info, dict) and info.get("owner_pid") == owner["owner_pid"] \
                and info.get("owner_host") == owner["owner_host"]:
            with contextlib.suppress(FileNotFoundError):
                m.unlink()
