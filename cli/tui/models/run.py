"""The run view's and the perturbation view's models: a run file or a perturbation file, read once.

:func:`load_run` reads a run file (and its BP baseline's curves and order-parameter
trajectories) into a :class:`RunSummary`,
:func:`load_perturbation` a perturbation file into a :class:`PerturbationSummary`; both are
cached by the file's (mtime, size). The tables and statistics the views draw and export come
from here; means and errors over replicas are ``mfphys.stats``'s.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.live import LIVE_SUFFIX
from mfphys.stats import format_stat, replica_stats

from .cache import CACHE, file_signature
from .format import mean_sem_rows, short_date

#: the per-layer order parameters read from a run file (docs/model.md section 6)
ORDER_COLUMNS = ("sparsity", "frac_vip", "frac_uip", "frac_variable", "mean_pi", "mean_xi", "weight_var", "entropy")
#: the ones the run view shows and exports: ``frac_uip`` is the same set as ``sparsity``
#: (pi >= 1 - tol), so it gets no row of its own (the row is labelled with both names)
SHOWN_ORDER = tuple(c for c in ORDER_COLUMNS if c != "frac_uip")
ROW_LABELS = {"sparsity": "sparsity = frac_uip"}
HIST_NAMES = ("pi", "m", "xi")
#: the order parameters whose trajectory during training the run view plots (``dyn_<name>``,
#: docs/file-format.md "Dynamics"), in the order the ``p`` key cycles them; ``sparsity`` is
#: ``frac_uip``'s set and is labelled with both names
DYN_PARAMS = ("frac_vip", "sparsity", "frac_variable", "entropy", "mean_xi", "mean_pi", "weight_var")
#: the error variables of a perturbation file the view and the export show, in this order
PERTURBATION_ERRORS = ("error_vip", "error_variable", "error_vip_mf", "error_variable_mf")


# --- run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """What the run view draws: learning curves, per-layer order parameters, their trajectories
    during training, histograms.

    Arrays are plain NumPy: curves ``(R, E)`` (E = 0 for a file written at the start of its
    run), order parameters ``(R, L)``, trajectories ``(R, T, L)`` at the ``T`` epochs of
    ``dyn_epoch``, histogram counts ``(R, L, B)`` with edges ``(B + 1,)``. The parameters
    themselves are not kept.
    """

    name: str
    title: str
    mode: str
    dataset: str
    architecture: str
    created: str
    epoch: np.ndarray
    curves: dict  # train_loss, test_acc, (test_loss, train_acc): (R, E)
    layers: np.ndarray
    order: dict  # ORDER_COLUMNS present: (R, L)
    order_live: dict  # their ``_live`` variables (layer 1 over live inputs): (R, L); empty if none
    live_inputs: tuple | None  # (inputs that vary, inputs), when the file records its dead inputs
    hist: dict  # pi/m/xi -> (edges, counts)
    final: dict  # test_acc (last epoch; NaN before the first), test_acc_sampled, test_acc_vote: (R,)
    epochs_total: int | None = None  # the configured epochs (more than epoch.size while it trains)
    dyn_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    dyn: dict = field(default_factory=dict)  # DYN_PARAMS present: (R, T, L)
    dyn_live: dict = field(default_factory=dict)  # their ``_live`` variants: (R, T, L)
    baseline_name: str = ""
    baseline: dict = field(default_factory=dict)  # train_loss, test_acc of the BP run: (R, E)
    baseline_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_dyn: dict = field(default_factory=dict)  # the BP run's trajectories: (R, T', L)
    baseline_dyn_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    @property
    def replicas(self) -> int:
        return int(self.curves["train_loss"].shape[0])


def _values(ds, name):
    return np.asarray(ds[name].values, dtype=float)


def _run_parts(path: Path) -> dict:
    ds = store.open_run(path)
    store.file_kind(ds.attrs, expect="run", where=str(path))
    for need in ("train_loss", "test_acc"):
        if need not in ds:
            raise MfphysError(f"{path} has no {need!r} variable: not a run file of the public schema")
    # (replica, epoch) by name: a file written at the start of its run has 0 epochs
    curves = {k: np.asarray(ds[k].transpose("replica", "epoch").values, dtype=float)
              for k in ("train_loss", "test_acc", "test_loss", "train_acc") if k in ds}
    order = {k: _values(ds, k) for k in ORDER_COLUMNS if k in ds}
    order_live = {k: _values(ds, k + LIVE_SUFFIX) for k in ORDER_COLUMNS if k + LIVE_SUFFIX in ds}
    live = store.live_inputs(ds)
    hist = {}
    for n in HIST_NAMES:
        if f"hist_{n}" in ds and f"{n}_edge" in ds.coords:
            hist[n] = (np.asarray(ds[f"{n}_edge"].values, dtype=float), np.asarray(ds[f"hist_{n}"].values))
    R = curves["test_acc"].shape[0]
    # a file written at the start of its run holds no epoch yet: no accuracy to show
    final = {"test_acc": curves["test_acc"][:, -1] if ds.sizes["epoch"] else np.full(R, np.nan)}
    for k in ("test_acc_sampled", "test_acc_vote"):
        if k in ds:
            final[k] = _values(ds, k)
    a = ds.attrs
    dyn, dyn_live, dyn_epoch = _dynamics(ds)
    return dict(title=str(a.get("title", "")), mode=str(a.get("mode", "")), dataset=str(a.get("dataset", "")),
                architecture=str(a.get("architecture", "")), created=short_date(a.get("created")),
                epoch=np.asarray(ds["epoch"].values), curves=curves,
                layers=np.asarray(ds["layer"].values) if "layer" in ds.coords else np.zeros(0, int),
                order=order, order_live=order_live, hist=hist, final=final,
                live_inputs=(int(live.sum()), int(live.size)) if live is not None else None,
                epochs_total=_configured_epochs(a), dyn_epoch=dyn_epoch, dyn=dyn, dyn_live=dyn_live)


def _dynamics(ds) -> tuple[dict, dict, np.ndarray]:
    """The trajectories a run file recorded while training (``dyn_<name>``, ``dyn_<name>_live``,
    (replica, dyn_epoch, layer)) and their epochs; empty for files written before they existed."""
    if "dyn_epoch" not in ds.coords:
        return {}, {}, np.zeros(0, int)
    dims = ("replica", "dyn_epoch", "layer")

    def read(name):
        return np.asarray(ds[name].transpose(*dims).values, dtype=float)

    dyn = {k: read(store.DYN + k) for k in DYN_PARAMS if store.DYN + k in ds}
    live = {k: read(store.DYN + k + LIVE_SUFFIX) for k in DYN_PARAMS if store.DYN + k + LIVE_SUFFIX in ds}
    return dyn, live, np.asarray(ds["dyn_epoch"].values)


def _configured_epochs(attrs) -> int | None:
    try:
        return int(json.loads(attrs.get("config", "{}"))["epochs"])
    except (TypeError, ValueError, KeyError):
        return None


def load_run(path: str | os.PathLike, *, name: str = "", baseline: str | os.PathLike | None = None) -> RunSummary:
    """Read a run file (and its BP baseline's curves) into a :class:`RunSummary`; cached by (mtime, size).

    Raises :class:`MfphysError` (one line) for any problem with the run; a baseline that cannot
    be read is left out.
    """
    path = Path(path)
    parts = CACHE.get(("run", path), file_signature(path), lambda: _run_parts(path))
    base, base_name, base_epoch, base_dyn, base_dyn_epoch = {}, "", np.zeros(0), {}, np.zeros(0, int)
    if baseline is not None:
        bpath = Path(baseline)
        try:
            b = CACHE.get(("run", bpath), file_signature(bpath), lambda: _run_parts(bpath))
        except MfphysError:
            b = None
        if b is not None:
            base = {k: b["curves"][k] for k in ("train_loss", "test_acc") if k in b["curves"]}
            base_name, base_epoch = bpath.stem, b["epoch"]
            base_dyn, base_dyn_epoch = b["dyn"], b["dyn_epoch"]
    return RunSummary(name=name or path.stem, baseline_name=base_name, baseline=base, baseline_epoch=base_epoch,
                      baseline_dyn=base_dyn, baseline_dyn_epoch=base_dyn_epoch, **parts)


def has_live(run: RunSummary) -> bool:
    """Whether the file carries live-input order parameters (``<name>_live``)."""
    return bool(run.order_live)


def order_values(run: RunSummary, column: str, inputs: str = "live") -> np.ndarray:
    """``(R, L)`` values of one order parameter; ``inputs="live"``: layer 1 over live inputs
    (docs/order-parameters.md recommends them) when the file has them, else over all inputs."""
    if inputs == "live" and column in run.order_live:
        return run.order_live[column]
    return run.order[column]


def layer_heading(run: RunSummary, index: int, inputs: str = "live") -> str:
    """``layer 1 live`` for layer 1 over live inputs, else ``layer l``."""
    layer = int(run.layers[index])
    return f"layer {layer} live" if layer == 1 and inputs == "live" and has_live(run) else f"layer {layer}"


def layer_table(run: RunSummary, inputs: str = "live") -> tuple[list[str], list[list[str]]]:
    """Per-layer order parameters as text, one row per parameter and one column per layer,
    ``mean ± error`` over replicas (``mfphys.stats.format_stat``); layer 1 over live inputs
    (``inputs="live"``, when the file has them) or over all inputs (``"all"``)."""
    header = ["order parameter"] + [layer_heading(run, i, inputs) for i in range(run.layers.size)]
    rows = [[ROW_LABELS.get(c, c)] + [format_stat(order_values(run, c, inputs)[:, i]) for i in range(run.layers.size)]
            for c in SHOWN_ORDER if c in run.order]
    return header, rows


def live_note(run: RunSummary, inputs: str = "live") -> str:
    """What the order table's layer 1 counts, in words."""
    if not has_live(run):
        return "layer 1: over all inputs (the file records no live-input numbers)"
    n = f"{run.live_inputs[0]} of {run.live_inputs[1]} inputs" if run.live_inputs else "inputs"
    if inputs == "live":
        return f"layer 1 live: over the {n} that vary (i: all inputs)"
    return f"layer 1: over all inputs, constant ones included (i: the {n} that vary)"


def curve_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over replicas of ``(R, E)`` curves, per epoch (NaNs ignored)."""
    mean, _, sem, _ = replica_stats(values, axis=0)
    return mean, sem


def order_stats(run: RunSummary, column: str, inputs: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over replicas of one order parameter, per layer (NaNs ignored)."""
    mean, _, sem, _ = replica_stats(order_values(run, column, inputs), axis=0)
    return mean, sem


def dyn_params(run: RunSummary) -> list[str]:
    """The order parameters with a trajectory in the file, in :data:`DYN_PARAMS` order."""
    return [k for k in DYN_PARAMS if k in run.dyn]


def dyn_label(param: str) -> str:
    return ROW_LABELS.get(param, param)


def trajectory(run: RunSummary, param: str, inputs: str = "live") -> list[tuple[str, np.ndarray]]:
    """One order parameter against ``run.dyn_epoch``, per layer: ``[(label, (R, T) values), ...]``.

    Layer 1 over live inputs (``inputs="live"``, labelled ``L1 live``) where the file has the
    ``_live`` trajectory, else over all inputs; deeper layers are the same either way."""
    if param not in run.dyn:
        return []
    values = run.dyn[param]
    out = []
    for i, layer in enumerate(run.layers):
        v = values[:, :, i]
        label = f"L{int(layer)}"
        if int(layer) == 1 and inputs == "live" and param in run.dyn_live:
            v, label = run.dyn_live[param][:, :, i], label + " live"
        out.append((label, v))
    return out


def baseline_trajectory(run: RunSummary, param: str) -> list[tuple[str, np.ndarray]]:
    """The BP baseline's trajectory of ``param`` per layer (against ``run.baseline_dyn_epoch``),
    where it has finite values. For BP pi = Xi = 0, so most are constant (frac_vip = 1)."""
    values = run.baseline_dyn.get(param)
    if values is None or not np.isfinite(values).any():
        return []
    return [(f"BP L{l + 1}", values[:, :, l]) for l in range(values.shape[2])]


def hist_counts(run: RunSummary, name: str, layer_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges and counts (summed over replicas) of ``pi``, ``m`` or ``xi`` in one layer."""
    edges, counts = run.hist[name]
    return edges, np.asarray(counts[:, layer_index, :]).sum(axis=0)


# --- perturbation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerturbationSummary:
    """Test error (%) vs fraction of removed connections: ``error_vip`` and ``error_variable`` ``(F, R)``."""

    name: str
    title: str
    fraction: np.ndarray
    errors: dict
    attrs: dict


def _perturbation_parts(path: Path) -> dict:
    ds = store.open_run(path)
    store.file_kind(ds.attrs, expect="perturbation", where=str(path))
    if "fraction" not in ds.coords:
        raise MfphysError(f"{path} has no 'fraction' coordinate")
    errors = {}
    for k in PERTURBATION_ERRORS:
        if k in ds:
            errors[k] = np.asarray(ds[k].transpose("fraction", ...).values, dtype=float).reshape(ds.sizes["fraction"],
                                                                                                  -1)
    keep = {k: str(v) for k, v in ds.attrs.items() if k in ("layer", "source", "run", "dataset", "architecture",
                                                           "created")}
    return dict(title=str(ds.attrs.get("title", "perturbation")), fraction=np.asarray(ds["fraction"].values, float),
                errors=errors, attrs=keep)


def load_perturbation(path: str | os.PathLike, *, name: str = "") -> PerturbationSummary:
    """Read a perturbation file into a :class:`PerturbationSummary`; cached by (mtime, size)."""
    path = Path(path)
    parts = CACHE.get(("perturbation", path), file_signature(path), lambda: _perturbation_parts(path))
    return PerturbationSummary(name=name or path.stem, **parts)


def error_stats(p: PerturbationSummary, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over replicas of one error variable, per fraction (NaNs ignored)."""
    mean, _, sem, _ = replica_stats(p.errors[name], axis=1)
    return mean, sem


def perturbation_table(p: PerturbationSummary) -> tuple[list[str], list[list]]:
    """One row per fraction: mean and standard error over replicas of each error."""
    header = ["fraction"]
    for k in p.errors:
        header += [f"{k}_mean", f"{k}_sem"]
    return header, mean_sem_rows([float(f) for f in p.fraction], [error_stats(p, k) for k in p.errors])
