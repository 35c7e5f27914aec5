"""Adaptive scans: spend the cells where a target changes (docs/scans.md "Adaptive scans").

A grid scan trains every cell of a fixed grid. An adaptive scan samples continuous axes
(``n_train``, ``width``, ``lr``, the teacher-student load ``alpha``, the recurrent ``steps``:
whatever the family's :meth:`~mfphys.family.ModelFamily.adaptive_axes` offers) anywhere
between two bounds, on a log or a linear scale, and lets python-adaptive's learners choose
each next cell where the target (test error, sparsity, any scalar a cell records) changes
most. Discrete axes (``depth``: any option given several values) are one learner per
combination of values, balanced against each other (adaptive's ``BalancingLearner``).

The folder is a scan folder like a grid scan's: ``scan.json`` (with an ``adaptive`` table),
one ordinary cell file per finished cell, the same claims, lock, checkpoints and Dask
execution (:mod:`mfphys.scan.runner`). The learners hold no state of their own on disk: they
are rebuilt from the finished cells when a scan resumes, so killing it loses at most the
cells in flight. python-adaptive is imported only here, when an adaptive scan runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from .. import __version__, registry, store
from ..errors import MfphysError
from ..fileio import make_folder, read_json, utc_now, write_json_atomic
from ..runfile import CheckpointPolicy
from .folder import KIND, FolderLock, _check_folder, _clean_stale, _owner, _Paths, _remove_own_markers, claim_cell
from .spec import Cell, ScanSpec, axes, cell_key, config_hash, grid_points, spec_from_options

SCALES = ("log", "linear")
#: targets computed from several variables (any other name is a variable of the cell files)
DERIVED_TARGETS = ("test_error", "sampled_error", "gap")
#: how many points in a row the learners may offer that are cells already done (an integer axis
#: with few values, a step count between two divisors) before the scan stops: nothing new is left
MAX_REPEATS = 200


class Axis(NamedTuple):
    """A continuous axis: its name (an option, or a derived axis such as ``alpha``), bounds, scale."""

    name: str
    lo: float
    hi: float
    scale: str

    def to_learner(self, value: float) -> float:
        """The learner's coordinate of a value (its log10 on a log axis), clipped into the bounds."""
        u = math.log10(value) if self.scale == "log" else float(value)
        return min(max(u, self.bounds[0]), self.bounds[1])

    def from_learner(self, u: float) -> float:
        """The value at a learner's coordinate: the bounds exactly, else to 10 significant digits
        (so that a cell key reads 0.3, not 0.29999999999999993)."""
        lo, hi = self.bounds
        if u <= lo or u >= hi:
            return self.lo if u <= lo else self.hi
        return float(f"{(10.0 ** u if self.scale == 'log' else float(u)):.10g}")

    @property
    def bounds(self) -> tuple[float, float]:
        if self.scale == "log":
            return math.log10(self.lo), math.log10(self.hi)
        return float(self.lo), float(self.hi)


def parse_axis(text: str, model: str | None = None) -> Axis:
    """``n_train=500:60000:log`` -> :class:`Axis` (scale optional: the family's default for that axis)."""
    family = registry.get(model or registry.DEFAULT)
    known = family.adaptive_axes()
    name, eq, rest = str(text).partition("=")
    name = name.strip().replace("-", "_")
    parts = [s.strip() for s in rest.split(":")]
    if not eq or len(parts) not in (2, 3) or not all(parts):
        raise MfphysError(f"--axis {text!r}: give NAME=LOW:HIGH or NAME=LOW:HIGH:log|linear, "
                          "e.g. n_train=500:60000:log")
    if name not in known:
        raise MfphysError(f"--axis {text!r}: {name!r} is not a continuous axis of the {family.title} model; "
                          f"known: {', '.join(sorted(known))}")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise MfphysError(f"--axis {text!r}: the bounds must be numbers") from None
    scale = parts[2].lower() if len(parts) == 3 else known[name].scale
    scale = {"lin": "linear"}.get(scale, scale)
    return make_axis(name, lo, hi, scale, where=f"--axis {text!r}")


def make_axis(name: str, lo: float, hi: float, scale: str, *, where: str = "axis") -> Axis:
    if scale not in SCALES:
        raise MfphysError(f"{where}: the scale must be log or linear, got {scale!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise MfphysError(f"{where}: the bounds must be finite with LOW < HIGH, got {lo:g} and {hi:g}")
    if scale == "log" and lo <= 0:
        raise MfphysError(f"{where}: a log axis needs LOW > 0, got {lo:g} (or use :linear)")
    return Axis(name, float(lo), float(hi), scale)


def parse_targets(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"test_error,sparsity"`` -> ``("test_error", "sparsity")``; ``NAME:PART`` picks one layer or matrix."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    if not names or any(not n or not all(c.isalnum() or c in "_:-" for c in n) for n in names):
        raise MfphysError(f"--target {text!r}: give variable names, comma-separated (e.g. test_error,sparsity)")
    return tuple(names)


# --- the specification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AdaptiveSpec:
    """An adaptive scan: the discrete axes and fixed options (``base``, a grid :class:`ScanSpec`
    whose grid is the discrete axes), the continuous ``axes`` and the ``target`` to resolve.

    The scan hash covers the discrete axes, the fixed options and the continuous axes with their
    bounds and scales, not the target: cells are cells whatever they were chosen for, so a
    folder can be refined later for another target.
    """

    base: ScanSpec
    axes: tuple  # (Axis, ...)
    target: tuple = ("test_error",)

    @property
    def model(self) -> str:
        return self.base.model

    @property
    def name(self) -> str | None:
        return self.base.name

    @property
    def discrete(self) -> tuple:
        return self.base.grid

    @property
    def dims(self) -> tuple[str, ...]:
        return self.base.dims + tuple(a.name for a in self.axes)

    @property
    def grid_dict(self) -> dict:
        """The discrete axes' values and each continuous axis's bounds (the ``grid`` of scan.json)."""
        return {**self.base.grid_dict, **{a.name: [a.lo, a.hi] for a in self.axes}}

    @property
    def fixed_dict(self) -> dict:
        return self.base.fixed_dict

    @property
    def fixed(self) -> tuple:
        return self.base.fixed

    def scan_hash(self) -> str:
        doc = {"adaptive": [[a.name, a.lo, a.hi, a.scale] for a in self.axes], "base": self.base.scan_hash()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def default_name(self) -> str:
        return f"{axes(self.model).name_prefix(dict(self.fixed))}-adaptive-{self.scan_hash()[:10]}"

    def meta(self) -> dict:
        """The ``adaptive`` table of scan.json."""
        return {"axes": {a.name: {"bounds": [a.lo, a.hi], "scale": a.scale} for a in self.axes},
                "discrete": list(self.base.dims), "target": list(self.target)}

    def combos(self) -> list[tuple]:
        """The coordinates of every combination of the discrete axes (one learner each)."""
        return [coords for _, coords, _ in grid_points(self.base.grid)]

    def cell(self, combo: tuple, values: Sequence[float]) -> Cell:
        """The cell nearest to ``values`` (one per continuous axis, in their scale) at a combination
        of the discrete axes: each axis gives its coordinate and the options it sets (the family's
        :attr:`~mfphys.family.AdaptiveAxis.point`)."""
        family = registry.get(self.model)
        known = family.adaptive_axes()
        options = {**dict(self.fixed), **dict(combo)}
        coords = list(combo)
        for axis, value in zip(self.axes, values):
            coord, sets = known[axis.name].point(float(value), options)
            options.update(sets)
            coords.append((axis.name, coord))
        cfg = axes(self.model).config(options)
        coords = tuple(coords)
        return Cell((self.combos().index(combo),), coords, cell_key(coords), cfg, config_hash(cfg), self.model)

    def options(self, cell: Cell) -> dict:
        """Every option of a cell (fixed, discrete, and those its continuous coordinates set)."""
        known = registry.get(self.model).adaptive_axes()
        options = {**dict(self.fixed), **{k: v for k, v in cell.coords if k in self.base.dims}}
        for k, v in cell.coords:
            if k in known and k not in self.base.dims:
                options.update(known[k].point(float(v), options)[1])
        return options

    def corners(self) -> list[Cell]:
        """The cells at every corner of the bounds, at every combination: the scan's extremes."""
        return [self.cell(combo, [a.lo if hi == 0 else a.hi for a, hi in zip(self.axes, corner)])
                for combo in self.combos() for corner in itertools.product((0, 1), repeat=len(self.axes))]

    def validate(self, where: str = "options") -> None:
        """Refuse, before anything is written, axes that clash and corner cells that cannot run."""
        fam = axes(self.model)
        names = [a.name for a in self.axes]
        if not names:
            raise MfphysError(f"{where}: an adaptive scan needs a continuous axis (--axis n_train=500:60000:log)")
        if len(set(names)) != len(names):
            raise MfphysError(f"{where}: an axis is given twice ({', '.join(names)})")
        known = registry.get(self.model).adaptive_axes()
        sets = [s for a in self.axes for s in known[a.name].sets]
        if len(set(sets)) != len(sets):
            raise MfphysError(f"{where}: the axes {', '.join(names)} set the same option twice; give one of them")
        for s in sets:
            if s in self.base.dims and len(dict(self.base.grid)[s]) > 1:
                raise MfphysError(f"{where}: {s} is both a continuous axis and a list of values; give it once")
        for cell in self.corners():
            try:
                fam.check(cell.config, self.options(cell))
            except MfphysError as exc:
                raise MfphysError(f"{where}: cell {cell.key} (a corner of the bounds): {exc}") from None

    @classmethod
    def build(cls, axes_: Mapping[str, Sequence] | Sequence[Axis], *, discrete: Mapping[str, Sequence] | None = None,
              fixed: Mapping[str, Any] | None = None, target: str | Sequence[str] = "test_error",
              name: str | None = None, model: str | None = None, where: str = "scan") -> AdaptiveSpec:
        """From Python: ``axes_`` maps a name to ``(low, high)`` or ``(low, high, scale)``;
        ``discrete`` the options given several values (``{"depth": [1, 2, 3]}``); ``fixed`` the rest."""
        model = model or registry.DEFAULT
        known = registry.get(model).adaptive_axes()
        if isinstance(axes_, Mapping):
            parsed = []
            for k, v in axes_.items():
                k = str(k).replace("-", "_")
                if k not in known:
                    raise MfphysError(f"{where}: {k!r} is not a continuous axis; known: {', '.join(sorted(known))}")
                v = tuple(v)
                parsed.append(make_axis(k, float(v[0]), float(v[1]), v[2] if len(v) > 2 else known[k].scale,
                                        where=f"{where}: axis {k}"))
            axes_ = parsed
        axes_ = tuple(axes_)
        def text(v):  # as the command line gives it (a list of several values is a discrete axis)
            return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

        options = {k: text(v) for k, v in {**(fixed or {}), **(discrete or {})}.items()}
        return _spec(axes_, options, target=target, name=name, model=model, where=where)


def _spec(axes_: Sequence[Axis], options: Mapping[str, str | None], *, target, name, model, where,
          config=None) -> AdaptiveSpec:
    """The spec from command-line text: the options the continuous axes set get a stand-in (their
    value at the lower bound) so that the grid spec validates, then leave it."""
    model = model or registry.DEFAULT
    known = registry.get(model).adaptive_axes()
    options = dict(options)
    sets: list[str] = []
    for a in axes_:
        if a.name not in known:
            raise MfphysError(f"{where}: {a.name!r} is not a continuous axis; known: {', '.join(sorted(known))}")
        for s in known[a.name].sets:
            if options.get(s) is not None:
                raise MfphysError(f"{where}: {s} is set by the continuous axis {a.name}; do not give it too")
            sets.append(s)
    stand_in = {}
    base_opts = {k: v for k, v in options.items() if v is not None}
    for a in axes_:
        for s, v in known[a.name].point(a.lo, {**axes(model).defaults(base_opts), **base_opts})[1].items():
            stand_in[s] = str(v)
    base = spec_from_options({**options, **stand_in}, config=config, name=name, model=model)
    grid = tuple((k, v) for k, v in base.grid if k not in sets)
    fixed = tuple((k, v) for k, v in base.fixed if k not in sets)
    spec = AdaptiveSpec(ScanSpec(grid, fixed, base.name, base.model), tuple(axes_), parse_targets(target))
    spec.validate(where)
    return spec


def adaptive_spec_from_options(options: Mapping[str, str | None], axis_texts: Sequence[str], *,
                               target: str = "test_error", config=None, name: str | None = None,
                               model: str | None = None) -> AdaptiveSpec:
    """The spec of ``mfphys scan --adaptive``: options as command-line text (a list of several
    values is a discrete axis, one value fixed) and the ``--axis NAME=LOW:HIGH[:SCALE]`` texts."""
    from .spec import config_model

    model = model or (config_model(config) if config is not None else None) or registry.DEFAULT
    axes_ = [parse_axis(t, model) for t in axis_texts]
    if not axes_:
        raise MfphysError("--adaptive needs a continuous axis: --axis n_train=500:60000:log (repeatable)")
    return _spec(axes_, options, target=target, name=name, model=model, where="options", config=config)


def spec_from_meta(meta: Mapping) -> AdaptiveSpec:
    """The spec a scan.json of an adaptive scan describes (to read or extend its folder)."""
    ad = meta["adaptive"]
    model = meta.get("model") or registry.DEFAULT
    discrete = tuple((k, tuple(meta["grid"][k])) for k in ad.get("discrete", []))
    base = ScanSpec(discrete, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                           for k, v in meta["fixed"].items())), meta.get("name"), model)
    axes_ = tuple(Axis(k, float(v["bounds"][0]), float(v["bounds"][1]), v["scale"]) for k, v in ad["axes"].items())
    return AdaptiveSpec(base, axes_, tuple(ad.get("target", ["test_error"])))


def is_adaptive(meta: Mapping) -> bool:
    """Whether a scan.json describes an adaptive scan."""
    return isinstance(meta.get("adaptive"), Mapping)


# --- targets ----------------------------------------------------------------------------------------


def target_value(ds, name: str, options: Mapping, model: str) -> float:
    """One target of a finished cell (its run-file dataset, or the combinable part of it), as a
    number: mean over replicas, the last epoch of a learning curve, and a per-layer (or per-matrix)
    order parameter as the connection-weighted mean over the network (layer 1 over live inputs,
    docs/order-parameters.md), or one layer or matrix with ``NAME:PART`` (``sparsity:1``,
    ``sparsity:-1`` the output layer, ``frac_vip:recurrent``). ``test_error`` is 1 - test_acc,
    ``sampled_error`` the sampled sub-networks' error, ``gap`` the sampled minus the mean-field error."""
    family = registry.get(model)
    base, _, part = name.partition(":")

    def var(n):
        if n not in ds:
            have = sorted(k for k, v in ds.data_vars.items()
                          if set(v.dims) <= {"replica", family.unit, "epoch"} and v.dtype.kind == "f"
                          and not k.endswith(("_live", "_exact", "_seconds", "_nodiag")))
            raise MfphysError(f"--target {name}: the cells record no {n!r}; e.g. "
                              f"{', '.join([*DERIVED_TARGETS, *have][:14])}, ...")
        return ds[n]

    if base in ("sampled_error", "gap") and family.sampled_accuracy is None:
        raise MfphysError(f"--target {name}: the {family.title} model records no sampled accuracy")
    if base == "test_error":
        v = 1.0 - var("test_acc").isel(epoch=-1)
    elif base == "sampled_error":
        v = 1.0 - var(family.sampled_accuracy)
    elif base == "gap":
        v = var("test_acc").isel(epoch=-1) - var(family.sampled_accuracy)
    else:
        v = var(base)
        if "epoch" in v.dims:
            v = v.isel(epoch=-1)
        if "dyn_epoch" in v.dims:
            v = v.isel(dyn_epoch=-1)
        unit = family.unit
        if unit in v.dims:
            if part:
                key: Any = part
                if unit == "layer":
                    try:
                        key = int(part)
                    except ValueError:
                        raise MfphysError(f"--target {name}: pick a layer by number (1, 2, ..., -1 the output)") \
                            from None
                    n = v.sizes[unit]
                    key = n + 1 + key if key < 0 else key
                try:
                    v = v.sel({unit: key})
                except KeyError:
                    raise MfphysError(f"--target {name}: the cells have no {unit} {part}") from None
            else:
                from ..live import network_mean

                live = family.live_inputs and f"{base}_live" in ds
                if live:
                    v = ds[f"{base}_live"]
                    if "epoch" in v.dims:
                        v = v.isel(epoch=-1)
                weights = list(family.connections(options))
                if live:
                    dead = int(ds.attrs.get("n_dead_inputs", 0))
                    if "dead_inputs" in ds and ds["dead_inputs"].ndim == 1:
                        dead = int(ds["dead_inputs"].values.sum())
                    first = family.live_connections(options, dead)
                    if first is not None:
                        weights[: len(first)] = first
                values = np.moveaxis(np.asarray(v.values, dtype=float), v.dims.index(unit), -1)
                w = np.asarray(weights[: values.shape[-1]], dtype=float)
                return float(np.nanmean(network_mean(values, np.broadcast_to(w, values.shape))))
        elif part:
            raise MfphysError(f"--target {name}: {base} is not per {unit}")
    values = np.asarray(v.values, dtype=float)
    return float(np.nanmean(values)) if values.size else float("nan")


def target_vector(ds, targets: Sequence[str], options: Mapping, model: str):
    """The learner's value of a cell: one target as a number, several as an array."""
    values = [target_value(ds, t, options, model) for t in targets]
    return values[0] if len(values) == 1 else np.asarray(values)


# --- the learner ------------------------------------------------------------------------------------


def _import_adaptive():
    try:
        import adaptive
    except ImportError:
        raise MfphysError("adaptive scans need python-adaptive: pip install 'mfphys[adaptive]'") from None
    return adaptive


def make_learner(spec: AdaptiveSpec):
    """One python-adaptive learner per combination of the discrete axes (``Learner1D`` for one
    continuous axis, ``Learner2D`` for two, ``LearnerND`` beyond), in a ``BalancingLearner``.
    The learners work in the axes' own scale (log10 of the value on a log axis)."""
    adaptive = _import_adaptive()
    bounds = [a.bounds for a in spec.axes]

    def one():
        if len(bounds) == 1:
            return adaptive.Learner1D(None, bounds=bounds[0])
        if len(bounds) == 2:
            return adaptive.Learner2D(None, bounds=bounds)
        return adaptive.LearnerND(None, bounds=bounds)

    return adaptive.BalancingLearner([one() for _ in spec.combos()])


def _learner_point(spec: AdaptiveSpec, cell: Cell) -> tuple:
    """The point ``(learner index, x)`` of a cell, from its coordinates."""
    coords = dict(cell.coords)
    u = tuple(a.to_learner(float(coords[a.name])) for a in spec.axes)
    return cell.index[0], (u[0] if len(u) == 1 else u)


def _cell_of(spec: AdaptiveSpec, point) -> Cell:
    index, u = point
    us = (u,) if np.ndim(u) == 0 else tuple(u)
    return spec.cell(spec.combos()[index], [a.from_learner(x) for a, x in zip(spec.axes, us)])


def _repend(learner, points) -> None:
    """Forget every pending point, then mark ``points`` pending again: a point asked for but told at
    another place (its cell's snapped coordinates), or abandoned, stops being pending this way."""
    learner.remove_unfinished()
    for cache in ("_ask_cache", "_loss", "_pending_loss"):  # BalancingLearner keeps per-learner caches
        with contextlib.suppress(AttributeError):
            getattr(learner, cache).clear()
    for point in points:
        learner.tell_pending(point)


# --- the folder's cells -----------------------------------------------------------------------------


def finished_cells(spec: AdaptiveSpec, p: _Paths, *, strict: bool = True) -> dict[str, tuple[Cell, str]]:
    """The finished cells of an adaptive folder: key -> (cell, path). A cell file of another
    configuration is refused (``strict``) or skipped; one that cannot be read is left out."""
    out = {}
    combos = spec.combos()
    for path in sorted(p.cells.glob("*.nc")) if p.cells.is_dir() else []:
        if path.name.endswith(".partial.nc"):
            continue
        try:
            attrs = store.read_attrs(path)
            coords = json.loads(attrs["scan_cell"])
        except (MfphysError, KeyError, ValueError, TypeError):
            continue  # damaged (only written atomically) or not a cell: it is trained again if asked for
        combo = tuple((k, coords.get(k)) for k in spec.base.dims)
        if combo not in combos or any(a.name not in coords for a in spec.axes):
            if strict:
                raise MfphysError(f"{path} is not a cell of this adaptive scan; move it away (nothing was written)")
            continue
        cell = spec.cell(combo, [float(coords[a.name]) for a in spec.axes])
        if cell.key != path.name[: -len(".nc")] or attrs.get("config_hash") != cell.config_hash:
            if strict:
                raise MfphysError(f"{path} was made by a different configuration: it is not a cell of this scan; "
                                  "move it away (nothing was written)")
            continue
        out[cell.key] = (cell, str(path))
    return out


def _read_target(spec: AdaptiveSpec, cell: Cell, path: str, targets):
    from .view import _cell_summary

    info = os.stat(path)
    ds = _cell_summary(path, info.st_mtime_ns, info.st_size)
    return target_vector(ds, targets, spec.options(cell), spec.model)


# --- planning ---------------------------------------------------------------------------------------


def plan_adaptive(spec: AdaptiveSpec, folder, *, cells: int | None = None, workers: int | None = None,
                  calibrate: bool = False):
    """What an adaptive scan would do (:class:`mfphys.scan.ScanPlan`): ``cells`` minus those done,
    their memory (the largest corner cell, ``workers`` at once), disk, and with ``calibrate`` the
    time, each cell costed as the middle of the bounds of its combination (a calibration per
    combination). Without ``cells`` (a loss goal only) the plan is one cell per combination."""
    from .. import budget
    from ..fileio import free_bytes
    from .runner import ScanPlan

    p = _Paths(Path(folder))
    done = len(finished_cells(spec, p, strict=False)) if p.scan_json.exists() else 0
    combos = spec.combos()
    middles = [spec.cell(c, [a.from_learner(sum(a.bounds) / 2) for a in spec.axes]) for c in combos]
    n_todo = max(0, (cells if cells is not None else done + len(combos)) - done)
    todo = tuple(middles[i % len(middles)] for i in range(n_todo))
    parallel = max(1, min(workers or 1, n_todo or 1))
    corners = spec.corners()
    peaks = sorted((registry.get(c.model).estimate(c.config, state=False).peak for c in corners), reverse=True)
    memory = peaks[0] * parallel if peaks else 0
    disk = sum(registry.get(c.model).estimate(c.config, state=False).disk for c in todo)
    seconds = None
    if calibrate and todo:
        per: dict = {}
        for c in middles:
            family = registry.get(c.model)
            per[c.key] = family.seconds(c.config, family.calibrate(c.config))
        seconds = sum(per[c.key] for c in todo) / parallel
    return ScanPlan(done + n_todo, done, todo, parallel, memory, disk, seconds, budget.available_memory(),
                    free_bytes(folder))


# --- running ----------------------------------------------------------------------------------------


class AdaptiveReport(NamedTuple):
    """What :func:`run_adaptive_scan` returns: the fields of :class:`mfphys.scan.ScanReport` and the
    learner's loss at the end (python-adaptive's: the largest over the learners; inf when too
    few cells are done to tell)."""

    folder: Path
    total: int
    done: int
    failed: int
    trained: int
    skipped: int
    reused: int
    seconds: float
    failed_cells: tuple
    loss: float


def run_adaptive_scan(spec: AdaptiveSpec, folder: str | os.PathLike, *, cells: int | None = None,
                      loss_goal: float | None = None, workers: int | None = None, scheduler: str | None = None,
                      callback: Callable | None = None, data_dir=None, retry_failed: bool = True,
                      command: str | None = None, connect_timeout: float = 5.0, blas_threads: int | None = 1,
                      checkpoint: CheckpointPolicy | None = CheckpointPolicy()) -> AdaptiveReport:
    """Train the cells an adaptive learner asks for into ``folder`` until the budget is spent:
    ``cells`` (the folder then holds that many finished cells) and/or ``loss_goal`` (python-adaptive's
    loss of the learner, the largest over the discrete combinations, at or below it). The other
    arguments are those of :func:`mfphys.scan.run_scan`, and act alike: the folder's lock, the
    cells' claims, checkpoints and failure records, Dask (``workers``/``scheduler``: a point is
    asked for each time a worker frees up), the callback's :class:`~mfphys.scan.ScanEvent`\\ s.
    Rerun to resume or to extend: the learner is rebuilt from the finished cells.
    """
    from .runner import (
        ScanEvent,
        _cell_dataset,
        _check_budget,
        _close_dask,
        _connect,
        _discard_new_folder,
        _error_record,
        _preflight,
        _train_cell,
    )

    t0 = time.perf_counter()
    if cells is None and loss_goal is None:
        raise MfphysError("give the adaptive scan a budget: --cells N and/or --loss-goal L")
    if cells is not None and cells < 1:
        raise MfphysError(f"--cells must be >= 1, got {cells}")
    if loss_goal is not None and not (math.isfinite(loss_goal) and loss_goal > 0):
        raise MfphysError(f"--loss-goal must be a positive number, got {loss_goal}")
    if workers is not None and scheduler is not None:
        raise MfphysError("give --workers (a local Dask cluster) or --scheduler (an existing one), not both")
    if workers is not None and workers < 1:
        raise MfphysError(f"--workers must be >= 1, got {workers}")
    if blas_threads is not None and blas_threads < 1:
        raise MfphysError(f"--blas-threads must be >= 1, got {blas_threads}")
    _import_adaptive()
    p = _Paths(Path(folder))
    name = spec.name or p.folder.name
    meta = _check_folder(spec, p)
    if meta is not None and not is_adaptive(meta):
        raise MfphysError(f"{folder} is a grid scan; an adaptive scan needs a folder of its own")
    targets = spec.target
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None
    existing = finished_cells(spec, p) if meta is not None else {}
    plan = plan_adaptive(spec, p.folder, cells=cells, workers=workers)
    _check_budget(plan, p.folder, remote=scheduler is not None)
    corners = spec.corners()
    if scheduler is None and (cells is None or cells > len(existing)):
        _preflight(corners, data_dir)

    client = cluster = None
    if (cells is None or cells > len(existing)) and (workers is not None or scheduler is not None):
        client, cluster = _connect(workers, scheduler, connect_timeout)
    owner = _owner()
    created = not p.folder.exists()
    lock = FolderLock(p, owner)
    learner = make_learner(spec)
    values: dict[str, Any] = {}  # key -> the learner's value of a finished cell
    failures: list = []
    forever: set = set()  # points never to be asked again: failed cells, asks answered by a cell already done
    inflight: dict = {}  # handle -> (cell, asked point)
    counts = {"total": cells or 0, "done": 0, "failed": 0, "running": 0, "pending": 0}
    trained = 0
    emit = callback or (lambda ev: None)
    try:
        make_folder(p.folder, what="scan folder")
        lock.__enter__()
        meta = _check_folder(spec, p)
        if meta is None:
            write_json_atomic({store.KIND_ATTR: KIND, "mfphys_version": __version__, "name": name,
                               "model": spec.model, "dims": list(spec.dims), "grid": spec.grid_dict,
                               "fixed": spec.fixed_dict, **registry.get(spec.model).scan_meta(spec.fixed_dict),
                               "adaptive": spec.meta(), "scan_hash": spec.scan_hash(), "created": utc_now(),
                               "command": command or "mfphys.scan.run_adaptive_scan"}, p.scan_json)
        make_folder(p.cells, what="cells folder")
        _clean_stale(p)
        existing = finished_cells(spec, p)
        # the learner's state is the finished cells: told again on every start (docs/scans.md "Adaptive scans")
        for key, (cell, path) in existing.items():
            y = _read_target(spec, cell, path, targets)
            values[key] = y
            if np.all(np.isfinite(y)):
                learner.tell(_learner_point(spec, cell), y)
        for path in sorted(p.cells.glob("*.failed.json")):
            rec = read_json(path) or {}
            coords = rec.get("scan_cell") if isinstance(rec, dict) else None
            if not isinstance(coords, dict) or retry_failed:
                continue
            with contextlib.suppress(KeyError, ValueError, TypeError, MfphysError):
                combo = tuple((k, coords[k]) for k in spec.base.dims)
                cell = spec.cell(combo, [float(coords[a.name]) for a in spec.axes])
                forever.add(_learner_point(spec, cell))
                failures.append((cell.key, rec.get("error", "")))
        _repend(learner, forever)
        counts["done"] = len(values)
        counts["failed"] = len(failures)
        skipped = len(values)

        def budget_left() -> bool:
            if cells is not None and counts["done"] + len(inflight) >= cells:
                return False
            if loss_goal is not None and learner.npoints >= 2 * len(spec.combos()):
                with contextlib.suppress(ValueError):
                    if learner.loss() <= loss_goal:
                        return False
            return True

        def refresh():
            counts["running"] = len(inflight)
            total = cells if cells is not None else counts["done"] + counts["failed"] + len(inflight)
            counts["total"] = max(total, counts["done"] + counts["failed"] + len(inflight))
            counts["pending"] = max(0, counts["total"] - counts["done"] - counts["failed"] - len(inflight))

        refresh()
        emit(ScanEvent("begin", None, dict(counts)))

        def next_cell():
            """Ask the learner until it offers a cell to train (None: nothing new to offer)."""
            for _ in range(MAX_REPEATS):
                (point,), _ = learner.ask(1)
                cell = _cell_of(spec, point)
                told = _learner_point(spec, cell)
                if cell.key in values:  # snapped onto a finished cell: its value is known
                    forever.add(point)
                    if np.all(np.isfinite(values[cell.key])) and told not in learner.data:
                        learner.tell(told, values[cell.key])
                    _repend(learner, forever | {pt for _, pt in inflight.values()})
                    continue
                if any(c.key == cell.key for c, _ in inflight.values()) or \
                        (not retry_failed and p.failed(cell.key).exists()):
                    forever.add(point)
                    continue
                return cell, point
            return None

        def finish(cell, point, outcome, payload, where):
            nonlocal trained
            trained += 1
            y = None
            if outcome == "done":
                ds = _cell_dataset(cell, payload, command=command, fixed=spec.fixed_dict)
                ds.attrs.update(scan_cell=json.dumps(dict(cell.coords)), config_hash=cell.config_hash,
                                scan_name=name, scan_hash=spec.scan_hash(), mfphys_version=__version__,
                                trained_on=where, blas_threads=str(blas_threads or "default"))
                try:
                    y = target_vector(ds, targets, spec.options(cell), spec.model)
                    store.write_atomic(ds, p.nc(cell.key))
                except MfphysError as exc:
                    if "--target" in str(exc):
                        raise  # a target the cells do not record: the user's mistake, stop here
                    outcome, payload = "failed", _error_record(exc, cell)
            if outcome == "done":
                for done_with in (p.failed(cell.key), p.partial(cell.key)):
                    with contextlib.suppress(FileNotFoundError):
                        done_with.unlink()
                values[cell.key] = y
                counts["done"] += 1
                told = _learner_point(spec, cell)
                if np.all(np.isfinite(y)):
                    learner.tell(told, y)
                else:  # a target the cell cannot give (NaN): never asked for again
                    forever.add(point)
                # the asked point stops being pending (told at the cell's own coordinates)
                _repend(learner, forever | {pt for _, pt in inflight.values()})
                refresh()
                emit(ScanEvent("cell_done", cell, dict(counts)))
            else:
                with contextlib.suppress(MfphysError):
                    write_json_atomic({**payload, "trained_on": where}, p.failed(cell.key))
                counts["failed"] += 1
                failures.append((cell.key, payload["error"]))
                forever.add(point)
                _repend(learner, forever | {pt for _, pt in inflight.values()})
                refresh()
                emit(ScanEvent("cell_failed", cell, dict(counts), error=payload["error"]))
            with contextlib.suppress(FileNotFoundError):
                p.running(cell.key).unlink()

        if client is None:
            while budget_left():
                got = next_cell()
                if got is None:
                    break
                cell, point = got
                if not claim_cell(p, cell.key, owner):  # another scan process trains it
                    forever.add(point)
                    continue
                try:
                    inflight[cell.key] = (cell, point)
                    refresh()
                    emit(ScanEvent("cell_start", cell, dict(counts)))
                    outcome, payload, where = _train_cell(
                        cell, data_dir, str(p.running(cell.key)), owner, blas_threads,
                        callback=lambda rec, cell=cell: emit(ScanEvent("epoch", cell, dict(counts), rec)),
                        partial=str(p.partial(cell.key)), checkpoint=checkpoint)
                    del inflight[cell.key]
                    finish(cell, point, outcome, payload, where)
                finally:
                    inflight.pop(cell.key, None)
                    with contextlib.suppress(FileNotFoundError):
                        p.running(cell.key).unlink()
        else:
            _run_dask(client, workers, spec, p, owner, data_dir, blas_threads, checkpoint, counts, inflight,
                      budget_left, next_cell, finish, refresh, emit, forever, learner)
        refresh()
        emit(ScanEvent("end", None, dict(counts)))
    except BaseException:
        if created and not p.scan_json.exists():
            _discard_new_folder(p, lock)
        raise
    finally:
        with contextlib.suppress(OSError):
            _remove_own_markers(p, owner)
        lock.__exit__()
        if client is not None:  # after a Ctrl-C without waiting long for the cells in flight, as a grid scan
            _close_dask(client, cluster, quick=isinstance(sys.exc_info()[1], KeyboardInterrupt))
    loss = float("inf")
    with contextlib.suppress(ValueError, IndexError):
        loss = float(learner.loss())
    return AdaptiveReport(p.folder, counts["done"] + counts["failed"], counts["done"], counts["failed"], trained,
                          skipped, 0, time.perf_counter() - t0, tuple(failures), loss)


def _run_dask(client, workers, spec, p, owner, data_dir, blas_threads, checkpoint, counts, inflight, budget_left,
              next_cell, finish, refresh, emit, forever, learner) -> None:
    """Keep every worker busy: ask the learner for a cell each time one frees up."""
    from dask.distributed import wait

    from .runner import ScanEvent, _error_record, _train_cell

    slots = workers or max(1, len(client.scheduler_info().get("workers", {})))
    tag = uuid.uuid4().hex[:8]
    futures: dict = {}
    while True:
        while len(futures) < slots and budget_left():
            got = next_cell()
            if got is None:
                break
            cell, point = got
            if not claim_cell(p, cell.key, owner):
                forever.add(point)
                continue
            f = client.submit(_train_cell, cell, data_dir, str(p.running(cell.key)), owner, blas_threads,
                              partial=str(p.partial(cell.key)), checkpoint=checkpoint,
                              key=f"mfphys-cell-{cell.key}-{tag}", pure=False)
            futures[f] = cell
            inflight[f] = (cell, point)
            refresh()
            emit(ScanEvent("tick", None, dict(counts)))
        if not futures:
            return
        try:
            finished, _ = wait(list(futures), timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:
            finished = set()
        for f in finished:
            cell = futures.pop(f)
            _, point = inflight.pop(f)
            if f.status == "finished":
                outcome, payload, where = f.result()
            else:
                outcome, payload, where = "failed", _error_record(f.exception(), cell), "dask"
            finish(cell, point, outcome, payload, where)
            f.release()
        refresh()
        emit(ScanEvent("tick", None, dict(counts)))
