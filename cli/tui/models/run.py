"""The run view's and the perturbation view's models: a run file or a perturbation file, read once.

Both model families: a feed-forward run has its order parameters, histograms and trajectories
per ``layer`` (1 .. L), a recurrent run (attribute ``model = "rnn"``, docs/model-rnn.md
section 9) per ``matrix`` (input, recurrent, output); ``RunSummary.part_dim`` says which, and
``RunSummary.layers`` holds that coordinate. A recurrent run also carries the accuracy of every
evaluation mode (docs/model-rnn.md section 5) and, for the multisensory task, the
psychometric curves.

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
from mfphys.fileio import quote
from mfphys.live import LIVE_SUFFIX
from mfphys.stats import format_stat, replica_stats

from .cache import CACHE, file_signature, run_signature
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
#: the suffix of a recurrent run's order parameters without the recurrent diagonal (the
#: self-connections; docs/model-rnn.md section 9): only the recurrent column differs
NODIAG_SUFFIX = "_nodiag"
RECURRENT = "recurrent"
#: a recurrent run's evaluation modes as stored (docs/file-format.md "Recurrent runs"), in the
#: order the run view lists them, with the words it uses
RNN_MODES = {"mf": "mean-field", "noisy": "noisy", "quenched": "quenched", "annealed": "annealed",
             "quenched_vote": "quenched vote"}


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
    # the last epochs read from the run's epoch log (after its last checkpoint, whose parameters,
    # order parameters and histograms the view shows): docs/file-format.md "The epoch log"
    logged: int = 0
    dyn: dict = field(default_factory=dict)  # DYN_PARAMS present: (R, T, L)
    dyn_live: dict = field(default_factory=dict)  # their ``_live`` variants: (R, T, L)
    # the model family (cli/tui/families): "ffn", "rnn" (docs/model-rnn.md), or another's name
    model: str = "ffn"
    part: str = "layer"  # the dimension of the weight matrices: "layer", or "matrix" (recurrent runs)
    task: str = ""  # rnn: mnist or multisensory
    preset: str = ""  # rnn: the preset the run started from
    order_nodiag: dict = field(default_factory=dict)  # rnn: ``<name>_nodiag`` (R, M)
    dyn_nodiag: dict = field(default_factory=dict)  # rnn: ``dyn_<name>_nodiag`` (R, T, M)
    n_diagonal: int = 0  # rnn: the recurrent self-connections (N)
    accuracies: dict = field(default_factory=dict)  # rnn MNIST: mode -> test accuracy (R,)
    # rnn multisensory: mode -> psychometric accuracy (R, [D,] modality) and P(choose high)
    # (R, [D,] modality, rate) over ``modalities`` and ``rates``
    psychometric_acc: dict = field(default_factory=dict)
    p_high: dict = field(default_factory=dict)
    modalities: tuple = ()
    rates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_name: str = ""
    baseline: dict = field(default_factory=dict)  # train_loss, test_acc of the BP run: (R, E)
    baseline_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_dyn: dict = field(default_factory=dict)  # the BP run's trajectories: (R, T', L)
    baseline_dyn_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    @property
    def replicas(self) -> int:
        return int(self.curves["train_loss"].shape[0])

    @property
    def part_dim(self) -> str:
        """What the order parameters, histograms and trajectories are per: "layer" or "matrix"."""
        return self.part

    @property
    def has_nodiag(self) -> bool:
        """Whether the file has order parameters without the recurrent diagonal (a recurrent run)."""
        return bool(self.order_nodiag) or bool(self.dyn_nodiag)


def part_name(run: RunSummary, index: int) -> str:
    """``layer 2`` or ``recurrent matrix``: one entry of the run's part coordinate, in words."""
    if run.part_dim == "matrix":
        return f"{run.layers[index]} matrix"
    return f"layer {int(run.layers[index])}"


def _part_values(ds, name: str, dims: tuple) -> np.ndarray:
    return np.asarray(ds[name].transpose(*dims).values, dtype=float)


def _rnn_parts(ds) -> dict:
    """What only a recurrent run file has: the order parameters without the recurrent diagonal,
    the accuracy of every evaluation mode, the multisensory psychometric curves."""
    a = ds.attrs
    out = dict(task=str(a.get("task", "")), preset=str(a.get("preset", "")),
               order_nodiag={k: _part_values(ds, k + NODIAG_SUFFIX, ("replica", "matrix")) for k in ORDER_COLUMNS
                             if k + NODIAG_SUFFIX in ds},
               n_diagonal=int(ds.sizes.get("post_recurrent", 0)))
    out["accuracies"] = {m: _values(ds, f"test_acc_{m}") for m in RNN_MODES if f"test_acc_{m}" in ds}
    p_high, acc = {}, {}
    for m in RNN_MODES:
        if f"p_high_{m}" in ds and "modality" in ds.coords and "rate" in ds.coords:
            lead = ("replica", "draw") if "draw" in ds[f"p_high_{m}"].dims else ("replica",)
            p_high[m] = _part_values(ds, f"p_high_{m}", lead + ("modality", "rate"))
            if f"psychometric_acc_{m}" in ds:
                acc[m] = _part_values(ds, f"psychometric_acc_{m}", lead + ("modality",))
    if p_high:
        out.update(p_high=p_high, psychometric_acc=acc, modalities=tuple(str(v) for v in ds["modality"].values),
                   rates=np.asarray(ds["rate"].values, dtype=float))
    return out


def _values(ds, name):
    return np.asarray(ds[name].values, dtype=float)


def _run_parts(path: Path) -> dict:
    ds = store.open_run(path)
    store.file_kind(ds.attrs, expect="run", where=str(path))
    for need in ("train_loss", "test_acc"):
        if need not in ds:
            raise MfphysError(f"{path} has no {quote(need)} variable: not a run file of the public schema")
    # (replica, epoch) by name: a file written at the start of its run has 0 epochs
    curves = {k: np.asarray(ds[k].transpose("replica", "epoch").values, dtype=float)
              for k in ("train_loss", "test_acc", "test_loss", "train_acc") if k in ds}
    from ..families import panels_for  # here, not at the top: the families draw with this module

    model = str(ds.attrs.get("model", "ffn"))  # any family: one without panels of its own gets the generic
    rnn = model == "rnn"
    part = panels_for(model).part_of(ds.dims)
    # (replica, layer) or (replica, matrix), by name
    order = {k: _part_values(ds, k, ("replica", part)) for k in ORDER_COLUMNS if k in ds}
    order_live = {k: _values(ds, k + LIVE_SUFFIX) for k in ORDER_COLUMNS if k + LIVE_SUFFIX in ds}
    live = store.live_inputs(ds)
    hist = {}
    for n in HIST_NAMES:
        if f"hist_{n}" in ds and f"{n}_edge" in ds.coords:
            hist[n] = (np.asarray(ds[f"{n}_edge"].values, dtype=float),
                       np.asarray(ds[f"hist_{n}"].transpose("replica", part, ...).values
                                  if part in ds[f"hist_{n}"].dims else ds[f"hist_{n}"].values))
    R = curves["test_acc"].shape[0]
    # a file written at the start of its run holds no epoch yet: no accuracy to show
    final = {"test_acc": curves["test_acc"][:, -1] if ds.sizes["epoch"] else np.full(R, np.nan)}
    for k in ("test_acc_sampled", "test_acc_vote"):
        if k in ds:
            final[k] = _values(ds, k)
    a = ds.attrs
    dyn, dyn_live, dyn_epoch = _dynamics(ds, part)
    extra = _rnn_parts(ds) if rnn else {}
    if rnn:
        extra["dyn_nodiag"] = _dynamics(ds, part, suffix=NODIAG_SUFFIX)[1]
    return dict(model=model, part=part, title=str(a.get("title", "")), mode=str(a.get("mode", "")),
                dataset=str(a.get("dataset", "")),
                architecture=str(a.get("architecture", "")), created=short_date(a.get("created")),
                epoch=np.asarray(ds["epoch"].values), curves=curves,
                layers=np.asarray(ds[part].values) if part in ds.coords else np.zeros(0, int),
                order=order, order_live=order_live, hist=hist, final=final,
                live_inputs=(int(live.sum()), int(live.size)) if live is not None else None,
                epochs_total=_configured_epochs(a), dyn_epoch=dyn_epoch, dyn=dyn, dyn_live=dyn_live,
                logged=_int_attr(a.get("log_epochs")), **extra)


def _int_attr(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _dynamics(ds, part: str = "layer", suffix: str = LIVE_SUFFIX) -> tuple[dict, dict, np.ndarray]:
    """The trajectories a run file recorded while training (``dyn_<name>`` and ``dyn_<name><suffix>``,
    (replica, dyn_epoch, ``part``): layer, or matrix for a recurrent run) and their epochs; empty
    for files written before they existed."""
    if "dyn_epoch" not in ds.coords:
        return {}, {}, np.zeros(0, int)
    dims = ("replica", "dyn_epoch", part)

    def read(name):
        return np.asarray(ds[name].transpose(*dims).values, dtype=float)

    def have(name):
        return name in ds and set(ds[name].dims) == set(dims)

    dyn = {k: read(store.DYN + k) for k in DYN_PARAMS if have(store.DYN + k)}
    variant = {k: read(store.DYN + k + suffix) for k in DYN_PARAMS if have(store.DYN + k + suffix)}
    return dyn, variant, np.asarray(ds["dyn_epoch"].values)


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
    parts = CACHE.get(("run", path), run_signature(path), lambda: _run_parts(path))
    base, base_name, base_epoch, base_dyn, base_dyn_epoch = {}, "", np.zeros(0), {}, np.zeros(0, int)
    if baseline is not None:
        bpath = Path(baseline)
        try:
            b = CACHE.get(("run", bpath), run_signature(bpath), lambda: _run_parts(bpath))
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


def order_values(run: RunSummary, column: str, inputs: str = "live", diagonal: bool = True) -> np.ndarray:
    """``(R, L)`` values of one order parameter; ``inputs="live"``: layer 1 over live inputs
    (docs/order-parameters.md recommends them) when the file has them, else over all inputs.
    A recurrent run: ``(R, 3)`` per matrix, and with ``diagonal=False`` the recurrent column
    without the self-connections (``<name>_nodiag``) where the file has it."""
    if not diagonal and column in run.order_nodiag:
        return run.order_nodiag[column]
    if inputs == "live" and column in run.order_live:
        return run.order_live[column]
    return run.order[column]


def nodiag_shown(run: RunSummary, diagonal: bool) -> bool:
    """Whether the recurrent matrix is shown without its diagonal (asked for, and in the file)."""
    return not diagonal and run.has_nodiag


def layer_heading(run: RunSummary, index: int, inputs: str = "live", diagonal: bool = True) -> str:
    """``layer 1 live`` for layer 1 over live inputs, else ``layer l``; a recurrent run's matrix
    name (``recurrent nodiag`` without its diagonal)."""
    if run.part_dim == "matrix":
        name = str(run.layers[index])
        return f"{name} nodiag" if name == RECURRENT and nodiag_shown(run, diagonal) else name
    layer = int(run.layers[index])
    return f"layer {layer} live" if layer == 1 and inputs == "live" and has_live(run) else f"layer {layer}"


def layer_table(run: RunSummary, inputs: str = "live", diagonal: bool = True) -> tuple[list[str], list[list[str]]]:
    """Per-layer order parameters as text, one row per parameter and one column per layer,
    ``mean ± standard error`` over replicas (``mfphys.stats.format_stat``); layer 1 over live inputs
    (``inputs="live"``, when the file has them) or over all inputs (``"all"``). A recurrent run:
    one column per matrix, the recurrent one without its diagonal when ``diagonal`` is False."""
    header = ["order parameter"] + [layer_heading(run, i, inputs, diagonal) for i in range(run.layers.size)]
    rows = [[ROW_LABELS.get(c, c)] + [format_stat(order_values(run, c, inputs, diagonal)[:, i])
                                      for i in range(run.layers.size)]
            for c in SHOWN_ORDER if c in run.order]
    return header, rows


def live_note(run: RunSummary, inputs: str = "live", diagonal: bool = True) -> str:
    """What the order table's layer 1 counts (a recurrent run: its recurrent column), in words."""
    if run.part_dim == "matrix":
        if not run.has_nodiag:
            return "recurrent: all connections (the file records no numbers without the diagonal)"
        n = f"its {run.n_diagonal} self-connections" if run.n_diagonal else "its self-connections"
        if diagonal:
            return f"recurrent: all connections, diagonal included (n: without {n})"
        return f"recurrent nodiag: without {n}, the diagonal (n: all connections)"
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


def order_stats(run: RunSummary, column: str, inputs: str = "all",
                diagonal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over replicas of one order parameter, per layer (NaNs ignored)."""
    mean, _, sem, _ = replica_stats(order_values(run, column, inputs, diagonal), axis=0)
    return mean, sem


def dyn_params(run: RunSummary) -> list[str]:
    """The order parameters with a trajectory in the file, in :data:`DYN_PARAMS` order."""
    return [k for k in DYN_PARAMS if k in run.dyn]


def dyn_label(param: str) -> str:
    return ROW_LABELS.get(param, param)


def trajectory(run: RunSummary, param: str, inputs: str = "live",
               diagonal: bool = True) -> list[tuple[str, np.ndarray]]:
    """One order parameter against ``run.dyn_epoch``, per layer: ``[(label, (R, T) values), ...]``.

    Layer 1 over live inputs (``inputs="live"``, labelled ``L1 live``) where the file has the
    ``_live`` trajectory, else over all inputs; deeper layers are the same either way. A
    recurrent run: one line per matrix (``input``, ``recurrent``, ``output``), the recurrent one
    without its diagonal (``recurrent nodiag``) when ``diagonal`` is False and the file has
    ``dyn_<name>_nodiag``."""
    if param not in run.dyn:
        return []
    values = run.dyn[param]
    out = []
    for i, part in enumerate(run.layers):
        v = values[:, :, i]
        if run.part_dim == "matrix":
            label = str(part)
            if label == RECURRENT and not diagonal and param in run.dyn_nodiag:
                v, label = run.dyn_nodiag[param][:, :, i], label + " nodiag"
            out.append((label, v))
            continue
        label = f"L{int(part)}"
        if int(part) == 1 and inputs == "live" and param in run.dyn_live:
            v, label = run.dyn_live[param][:, :, i], label + " live"
        out.append((label, v))
    return out


def baseline_trajectory(run: RunSummary, param: str) -> list[tuple[str, np.ndarray]]:
    """The BP baseline's trajectory of ``param`` per layer or matrix (against
    ``run.baseline_dyn_epoch``), where it has finite values. For BP pi = Xi = 0, so most are
    constant (frac_vip = 1)."""
    values = run.baseline_dyn.get(param)
    if values is None or not np.isfinite(values).any():
        return []
    if run.part_dim == "matrix":
        return [(f"BP {run.layers[l]}" if l < run.layers.size else f"BP {l}", values[:, :, l])
                for l in range(values.shape[2])]
    return [(f"BP L{l + 1}", values[:, :, l]) for l in range(values.shape[2])]


def accuracy_table(run: RunSummary) -> tuple[list[str], list[list[str]]]:
    """A recurrent run's accuracy in every evaluation mode (docs/model-rnn.md section 5), ``mean ±
    error`` over replicas (the sampled modes: over replicas of the mean over draws): MNIST, one
    row per mode with the test accuracy; multisensory, one row per mode with the psychometric
    accuracy per modality and their mean. Empty for a feed-forward run."""
    if run.accuracies:
        return (["mode", "test acc"],
                [[RNN_MODES[m], format_stat(v)] for m, v in run.accuracies.items()])
    if not run.psychometric_acc:
        return [], []
    header = ["mode"] + [f"acc {m}" for m in run.modalities] + ["mean"]
    rows = []
    for mode, acc in run.psychometric_acc.items():
        per_replica = acc.reshape(acc.shape[0], -1, acc.shape[-1]).mean(axis=1)  # mean over draws: (R, modality)
        rows.append([RNN_MODES.get(mode, mode)] + [format_stat(per_replica[:, k]) for k in range(acc.shape[-1])]
                    + [format_stat(per_replica.mean(axis=1))])
    return header, rows


def psychometric(run: RunSummary, mode: str) -> list[tuple[str, np.ndarray]]:
    """P(choose high) against ``run.rates`` for one evaluation mode: ``[(modality, (R, rates)), ...]``,
    the sampled modes averaged over their draws first."""
    p = run.p_high.get(mode)
    if p is None:
        return []
    per_replica = p.reshape(p.shape[0], -1, *p.shape[-2:]).mean(axis=1)  # (R, modality, rate)
    return [(m, per_replica[:, k, :]) for k, m in enumerate(run.modalities)]


def psychometric_modes(run: RunSummary) -> list[str]:
    """The modes whose psychometric curves the run view draws: the noise-free mean field, and a
    sampled mode (quenched, else annealed, else the noisy mean field) beside it."""
    modes = [m for m in ("mf",) if m in run.p_high]
    other = next((m for m in ("quenched", "annealed", "noisy") if m in run.p_high), None)
    return modes + ([other] if other else [])


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
    keep = {k: str(v) for k, v in ds.attrs.items() if k in ("layer", "matrix", "candidates", "source", "run",
                                                           "dataset", "architecture", "created")}
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
