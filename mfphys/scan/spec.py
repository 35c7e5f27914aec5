"""The scan's specification: its options, their values and the grid of cells they span.

No files and no xarray here: the option schema (:data:`OPTIONS`, :data:`DEFAULTS`), value
coercion (:func:`coerce_option`), cell keys and hashes, :class:`ScanSpec` and its two
front doors, the command line (:func:`spec_from_options`) and a TOML file
(:meth:`ScanSpec.from_toml`). The folder layout and the resume contract are in
:mod:`mfphys.scan` and docs/scans.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

from .. import registry
from .._compat import legacy_getattr
from ..errors import MfphysError
from ..family import ModelFamily, ScanAxes
from ..fileio import clip, quote, read_text_checked

#: the largest scan file (--config) read: a grid of thousands of values is far smaller
CONFIG_LIMIT = 1 << 20

_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")


def family(model: str | None = None) -> ModelFamily:
    """The model family of a scan's ``model`` (None: :data:`mfphys.registry.DEFAULT`), or one clear error."""
    if model is not None and not registry.is_family(model):
        raise MfphysError(f"unknown --model {quote(model)}: choose one of {', '.join(registry.names())}")
    return registry.get(model)


def axes(model: str | None = None) -> ScanAxes:
    """The scan options and cell configurations of a family (:meth:`~mfphys.family.ModelFamily.scan_axes`)."""
    return family(model).scan_axes()


def _model(model: str | None) -> str:
    return family(model).name


# --- values and keys ------------------------------------------------------------------------------


def coerce_option(name: str, value, where: str, model: str | None = None):
    """``value`` (from the CLI as text, or from TOML) as the option's type, or one clear error.

    The one reading of an option's value: the grid, the fixed options and ``scan-plot --sel``
    all go through it, so ``"false"`` is ``False`` for a bool option everywhere. ``model``:
    whose options (a registered family; None: the default).
    """
    kind = axes(model).options[name]
    bad = MfphysError(f"{where}: {name} takes {kind.rstrip('?')} values, got {quote(value)}")
    if kind == "int?" and (value is None or (isinstance(value, str) and value.strip().lower() in ("all", "none"))):
        return None
    if kind in ("int", "int?"):
        # integers only, as `mfphys train` and TrainConfig take them: 1e3 or 1000.0 are refused
        # everywhere alike rather than read as 1000 here and refused there
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
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
        return v  # nan and inf are numbers: TrainConfig refuses them, with the message `train` gives
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


def _check_toml_type(name: str, value, where: str, model: str | None = None) -> None:
    """A TOML value has its option's type: ``lr = "0.1"`` is refused as ``depth = "1,2"`` is (text
    is read as numbers only on the command line, where everything is text); ``"all"`` stays a
    value of an optional count (``n_test``)."""
    kind = axes(model).options[name]
    if kind not in ("int", "int?", "float", "bool"):
        return
    for v in (value if isinstance(value, list) else [value]):
        if isinstance(v, str) and not (kind == "int?" and v.strip().lower() in ("all", "none")):
            raise MfphysError(f"{where}: {name} takes {kind.rstrip('?')} values, got {quote(v)} (a string; in "
                              f"TOML write a number or true/false without quotes)")


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


def config_hash(config) -> str:
    """SHA-256 of a cell's full configuration (its ``TrainConfig`` or ``RnnConfig`` JSON)."""
    return _sha256(config.to_json())


def grid_points(grid: Sequence[tuple[str, Sequence]]) -> Iterator[tuple[tuple, tuple, str]]:
    """``(index, coords, key)`` of every cell of a grid ``((name, values), ...)``, row-major.

    The one walk over a grid: :meth:`ScanSpec.cells` builds configurations on it, and a
    scan folder's readers (:func:`mfphys.scan.scan_status`, :func:`mfphys.scan.open_scan`)
    use it on a scan.json's grid, so both always agree on cell order and keys.
    """
    for index in itertools.product(*(range(len(values)) for _, values in grid)):
        coords = tuple((k, v[i]) for (k, v), i in zip(grid, index))
        yield index, coords, cell_key(coords)


# --- the specification ----------------------------------------------------------------------------


class Cell(NamedTuple):
    """One grid point: its index in the grid, coordinates, file key and full configuration."""

    index: tuple
    coords: tuple  # ((name, value), ...) in grid order
    key: str
    config: Any  # the configuration of the cell's model family
    config_hash: str
    model: str = registry.DEFAULT


def _norm_name(name: str, where: str, model: str | None = None) -> str:
    key = str(name).strip().replace("-", "_")
    model = _model(model)
    options = axes(model).options
    if key not in options:
        of = "" if model == registry.DEFAULT else f" of --model {model}"
        raise MfphysError(f"{where}: unknown parameter {quote(name)}" + of
                          + f"; known: {', '.join(sorted(options))}")
    return key


@dataclass(frozen=True)
class ScanSpec:
    """A scan: the grid (scanned options and their values, in order) and every other option.

    ``fixed`` holds *all* options that are not scanned, defaults resolved, so that
    :meth:`scan_hash` pins the numbers of every cell. Build it with :meth:`build`,
    :func:`spec_from_options` or :meth:`from_toml` (they validate); ``name`` is the folder name
    under ``runs/`` (default: :meth:`default_name`). ``model``: the model family of every cell,
    ``ffn`` (feed-forward, grid ``depth`` x ``n_train``) or ``rnn`` (recurrent, grid ``steps`` x
    ``n_train``; the family's :meth:`~mfphys.family.ModelFamily.scan_axes`).
    """

    grid: tuple  # ((name, (v0, v1, ...)), ...)
    fixed: tuple  # ((name, value), ...) sorted by name
    name: str | None = None
    model: str = registry.DEFAULT

    @classmethod
    def build(cls, grid: Mapping[str, Sequence], fixed: Mapping[str, Any] | None = None, *,
              name: str | None = None, where: str = "scan", model: str | None = None) -> ScanSpec:
        """Validate and normalise a grid and fixed options; raise :class:`MfphysError` on bad input."""
        model = _model(model)
        fam = axes(model)
        g, f = {}, {}
        for k, values in grid.items():
            key = _norm_name(k, where, model)
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                values = [values]
            if len(values) == 0:
                raise MfphysError(f"{where}: {key} has no values to scan")
            vals = tuple(coerce_option(key, v, where, model) for v in values)
            if len(set(vals)) != len(vals):
                raise MfphysError(f"{where}: {key} lists a value twice: {', '.join(map(str, vals))}")
            if key in fam.not_scannable and len(vals) > 1:
                raise MfphysError(f"{where}: {key} cannot be scanned (give one value)"
                                  + (": replicas are the replica axis of every cell" if key == "replicas" else ""))
            if key in fam.not_scannable:
                f[key] = vals[0]
            else:
                g[key] = vals
        for k, v in (fixed or {}).items():
            key = _norm_name(k, where, model)
            if key in g:
                raise MfphysError(f"{where}: {key} is both scanned and fixed; give it once")
            f[key] = coerce_option(key, v, where, model)
        for key in fam.always_scanned:
            if key not in g and key in f:
                g[key] = (f.pop(key),)
            if key not in g:
                flag = "--" + key.replace("_", "-")
                raise MfphysError(f"{where}: give the {key} values to scan ({flag} 1,2,3 or {key} = [...] in "
                                  f"the [grid] table of --config)")
        order = list(fam.always_scanned) + [k for k in g if k not in fam.always_scanned]
        grid_t = tuple((k, g[k]) for k in order)
        try:
            defaults = fam.defaults(f)
        except MfphysError as exc:
            raise MfphysError(f"{where}: {exc}") from None
        full = {**{k: v for k, v in defaults.items() if k not in g}, **f}
        spec = cls(grid_t, tuple(sorted(full.items())), name, model)
        spec._validate(where)
        return spec

    @classmethod
    def from_toml(cls, path: str | os.PathLike, *, grid: Mapping | None = None, fixed: Mapping | None = None,
                  name: str | None = None, model: str | None = None) -> ScanSpec:
        """Read a scan file (tables ``[grid]`` and ``[fixed]``, optional ``name`` and ``model``);
        ``grid``/``fixed`` given here override it key by key (the command line wins over the file).
        ``model`` given here must agree with the file's (their options differ)."""
        path = Path(path)
        text = read_text_checked(path, what="--config", limit=CONFIG_LIMIT)  # never a FIFO or /dev/zero
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise MfphysError(f"--config {path} is not valid TOML: {clip(exc)}") from None
        unknown = set(doc) - {"name", "model", "grid", "fixed"}
        if unknown:
            raise MfphysError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
                              "a scan file holds name, model, [grid] and [fixed]")
        file_model = doc.get("model")
        if file_model is not None and not registry.is_family(file_model):
            raise MfphysError(f"{path}: model must be one of {', '.join(registry.names())}, got {quote(file_model)}")
        if model is not None and file_model is not None and model != file_model:
            raise MfphysError(f"--model {model} disagrees with model = {quote(file_model)} in {path}; give one")
        model = _model(model or file_model)
        for table in ("grid", "fixed"):
            if not isinstance(doc.get(table, {}), dict):
                raise MfphysError(f"{path}: {table} must be a table ([{table}])")
        file_name = doc.get("name")
        if file_name is not None and not isinstance(file_name, str):
            raise MfphysError(f"{path}: name must be a string")
        g = {_norm_name(k, f"{path} [grid]", model): v for k, v in doc.get("grid", {}).items()}
        f = {_norm_name(k, f"{path} [fixed]", model): v for k, v in doc.get("fixed", {}).items()}
        for table, values in (("grid", g), ("fixed", f)):
            for k, v in values.items():
                _check_toml_type(k, v, f"{path} [{table}]", model)
        for k, v in (grid or {}).items():
            f.pop(k, None)
            g[k] = v
        for k, v in (fixed or {}).items():
            g.pop(k, None)
            f[k] = v
        return cls.build(g, f, name=name or file_name, where=str(path), model=model)

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
        """SHA-256 of the grid (in order) and the fixed options; independent of the package version.

        Options added after the first release count only where they differ from their default
        (the family's :attr:`~mfphys.family.ScanAxes.added_later`), so earlier scan folders keep
        their hash."""
        fam = axes(self.model)
        later = fam.added_later
        fixed = {k: v for k, v in self.fixed_dict.items() if not (k in later and v == later[k])}
        doc = {"grid": [[k, list(v)] for k, v in self.grid], "fixed": fixed}
        if fam.hash_key:  # the first family's scans keep the hash they had before there were families
            doc["model"] = self.model
        return _sha256(json.dumps(doc, sort_keys=True))

    def default_name(self) -> str:
        """``<dataset>-scan-<first 10 hex of scan_hash>`` (a recurrent scan: ``mnist-rnn-scan-...``):
        the same command finds the same folder."""
        return f"{axes(self.model).name_prefix(dict(self.fixed))}-scan-{self.scan_hash()[:10]}"

    def cells(self) -> list[Cell]:
        """Every cell in grid (row-major) order."""
        fam = axes(self.model)
        fixed = dict(self.fixed)
        out = []
        for index, coords, key in grid_points(self.grid):
            cfg = fam.config({**fixed, **dict(coords)})
            out.append(Cell(index, coords, key, cfg, config_hash(cfg), self.model))
        return out

    def _validate(self, where: str) -> None:
        if self.name is not None:
            _check_name(self.name)
        fam = axes(self.model)
        fixed = dict(self.fixed)
        for _, coords, key in grid_points(self.grid):
            opts = {**fixed, **dict(coords)}
            try:
                fam.check(fam.config(opts), opts)
            except MfphysError as exc:
                raise MfphysError(f"{where}: cell {key}: {exc}") from None


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or len(name) > 200 or any(c not in _SAFE for c in name):
        raise MfphysError(f"--name {quote(name)} must be a plain folder name (letters, digits, . _ + -; at most 200)")


def split_values(text: str, option: str) -> list[str]:
    """``"1,2,3"`` -> ``["1", "2", "3"]``; empty entries are an error (``1,,2``)."""
    parts = [p.strip() for p in str(text).split(",")]
    if any(p == "" for p in parts):
        raise MfphysError(f"malformed {option} {quote(text)}: give comma-separated values like 1,2,3")
    return parts


def config_model(config: str | os.PathLike) -> str | None:
    """The ``model`` a scan file names (None: none, or the file cannot be read: reading it
    properly reports that)."""
    with contextlib.suppress(MfphysError, tomllib.TOMLDecodeError):
        model = tomllib.loads(read_text_checked(config, what="--config", limit=CONFIG_LIMIT)).get("model")
        return model if isinstance(model, str) and registry.is_family(model) else None
    return None


def spec_from_options(options: Mapping[str, str | None], *, config: str | os.PathLike | None = None,
                      name: str | None = None, model: str | None = None) -> ScanSpec:
    """The spec of ``mfphys scan``: options as command-line text (None = not given).

    ``depth`` and ``n_train`` are always grid dimensions; any other option given a list of
    more than one value (``--lr 0.1,0.05``) is scanned too, a single value is held fixed.
    ``decay_on`` is a list itself and never scanned. Options given here override ``config``.
    ``model``: ``ffn`` or ``rnn`` (None: the config file's, else ``ffn``); with ``rnn`` the
    grid is ``steps`` x ``n_train`` and the options are :data:`RNN_OPTIONS`.
    """
    fam_model = _model(model or (config_model(config) if config is not None else None))
    fam = axes(fam_model)
    grid, fixed = {}, {}
    for k, text in options.items():
        if text is None:
            continue
        key = _norm_name(k, "options", fam_model)
        flag = "--" + key.replace("_", "-")
        if key == "decay_on":
            fixed[key] = text
            continue
        values = split_values(text, flag)
        if key in fam.always_scanned or len(values) > 1:
            grid[key] = values
        else:
            fixed[key] = values[0]
    if config is not None:
        return ScanSpec.from_toml(config, grid=grid, fixed=fixed, name=name, model=model)
    return ScanSpec.build(grid, fixed, name=name, where="options", model=fam_model)


__getattr__ = legacy_getattr(__name__)
