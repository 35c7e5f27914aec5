"""Export of a view's numbers (CSV) and plot (PNG, matplotlib Agg), written atomically.

File names: ``<entry>-<view>-<param>-layer<l>.csv`` / ``.png`` (scan view; with the
trajectories shown also ``...-dyn-<dim><value>``; a recurrent scan ``-<matrix>`` in place of
``-layer<l>``, ``-nodiag`` for the recurrent matrix without its diagonal), ``<entry>-run-curves``,
``<entry>-run-order``, ``<entry>-run-dynamics`` (and ``-dynamics-<param>.png``),
``<entry>-run-hist-layer<l>`` (``-hist-<matrix>`` for a recurrent run), and for a recurrent
run ``<entry>-run-evaluation`` (every evaluation mode) and, multisensory, the
``<entry>-run-psychometric`` curves (run view), and ``<entry>-perturbation-error`` (perturbation
view), where ``<entry>`` is the entry's name with ``/`` replaced by ``_``. Each file goes to
a temporary name in the same folder and is renamed into place, so a reader never sees half a
file.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from mfphys import store
from mfphys.stats import replica_stats

from .models.format import mean_sem_rows, plain
from .models.run import (
    HIST_NAMES,
    RNN_MODES,
    SHOWN_ORDER,
    PerturbationSummary,
    RunSummary,
    baseline_trajectory,
    curve_stats,
    dyn_label,
    dyn_params,
    error_stats,
    has_live,
    hist_counts,
    order_stats,
    perturbation_table,
    psychometric,
    trajectory,
)
from .models.runs_table import COLUMNS
from .models.scan_grid import Grid, Trajectories, grid_table, layer_label, trajectory_table


def safe_name(name: str) -> str:
    return name.replace(os.sep, "_").replace("/", "_")


def _atomic_bytes(path: Path, payload: bytes) -> Path:
    with store.atomic_file(path) as tmp:
        tmp.write_bytes(payload)
    return path


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else repr(float(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def csv_bytes(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue().encode()


def write_csv(path: Path, header, rows) -> Path:
    return _atomic_bytes(Path(path), csv_bytes(header, rows))


def write_png(path: Path, fig) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return _atomic_bytes(Path(path), buf.getvalue())


#: how a baseline is drawn in the exported figures: a colour and a line style of its own, so it
#: is never mistaken for one of the run's layers or curves
BASELINE_STYLE = dict(color="0.45", ls="--", lw=1.2)


def _keep_axis_for_data(ax, data: list, baseline: list, label: str) -> bool:
    """Keep the y axis on the run's own values when a baseline lies far outside them (a BP run's
    constant VIP fraction of 1, say): the axis is not stretched to it, and its value is written
    in the legend instead (returns True then)."""
    data = np.concatenate([np.ravel(d) for d in data]) if data else np.zeros(0)
    base = np.concatenate([np.ravel(b) for b in baseline]) if baseline else np.zeros(0)
    data, base = data[np.isfinite(data)], base[np.isfinite(base)]
    if not data.size or not base.size:
        return False
    lo, hi = float(data.min()), float(data.max())
    span = max(hi - lo, 1e-12)
    if base.min() > hi + 0.5 * span or base.max() < lo - 0.5 * span:
        ax.set_ylim(lo - 0.1 * span, hi + 0.1 * span)
        where = "above" if base.min() > hi else "below"
        ax.plot([], [], **BASELINE_STYLE, label=f"{label}: {float(np.median(base)):.3g} ({where} the axis)")
        return True
    return False


def _log_if_decades(ax, values, ratio: float = 100.0) -> bool:
    """A log y scale where the positive values span more than ``ratio`` (a loss whose first
    epochs dwarf the rest, a histogram's tails); whether it was set."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() > ratio:
        ax.set_yscale("log")
        return True
    return False


def _figure(ncols: int, size):
    # the object-oriented API (no pyplot): no global state, safe in the app's worker thread
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


# --- scan --------------------------------------------------------------------------------------


def _layer_part(layer) -> str:
    if layer is None:
        return ""
    if isinstance(layer, str) and layer != "all":  # a recurrent scan's matrix
        return f"-{layer}"
    if isinstance(layer, (int, np.integer)) and layer < 0:  # counted from the output
        return "-layerout" if layer == -1 else f"-layerout{layer + 1}"
    return f"-layer{layer}"


def scan_stem(entry_name: str, grid: Grid) -> str:
    """``<entry>-scan-<param>-layer<l>``, ending ``-live`` when layer 1 counts live inputs only."""
    live = "-live" if grid.inputs == "live" else ""
    nodiag = "-nodiag" if grid.diagonal is False else ""
    return f"{safe_name(entry_name)}-scan-{grid.param}{_layer_part(grid.layer)}{live}{nodiag}"


def scan_figure(entry_name: str, grid: Grid, *, stat: str = "mean"):
    """The heatmap as a matplotlib Figure, laid out as the TUI draws it: the first row (depth 1) at
    the top, the first column at the left."""
    fig, (ax,) = _figure(1, (1.2 + 0.9 * len(grid.cols), 1.0 + 0.6 * len(grid.rows)))
    shown = grid.shown(stat)
    im = ax.imshow(np.ma.masked_invalid(shown), origin="upper", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(grid.cols)), [str(plain(c)) for c in grid.cols])
    ax.set_yticks(range(len(grid.rows)), [str(plain(r)) for r in grid.rows])
    ax.set_xlabel(grid.col_dim or "")
    ax.set_ylabel(grid.row_dim)
    ax.grid(False)
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            st, v = str(grid.status[i, j]), shown[i, j]
            label = f"{v:.3g}" if np.isfinite(v) else (st if st != "done" else "")
            ink = "k" if np.isfinite(v) and im.norm(v) > 0.6 else "w"  # dark text on the bright end
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color=ink)
    what = "std over replicas" if stat == "spread" else "mean over replicas"
    layer = f", {layer_label(grid.layer)}" if grid.layer is not None else ""
    live = " · layer 1 over live inputs" if grid.inputs == "live" and grid.layer != 1 else (
        " over live inputs" if grid.inputs == "live" else "")
    live += " without its diagonal" if grid.diagonal is False else ""
    ax.set_title(f"{entry_name}: {grid.param}{layer}{live} ({what})", fontsize=9)
    fig.colorbar(im, ax=ax)
    return fig


def export_scan(entry_name: str, grid: Grid, folder: Path, *, stat: str = "mean",
                trajectories: Trajectories | None = None) -> list[Path]:
    """CSV of every cell (status, mean, std, sem, each replica) and a PNG heatmap of the shown
    statistic; with ``trajectories`` (shown under the heatmap) also their CSV (one row per
    epoch, one column per cell) and PNG, ``<stem>-dyn-<dim><value>``."""
    folder = Path(folder)
    stem = scan_stem(entry_name, grid)
    header, rows = grid_table(grid)
    out = [write_csv(folder / f"{stem}.csv", header, rows)]
    out.append(write_png(folder / f"{stem}.png", scan_figure(entry_name, grid, stat=stat)))
    if trajectories is not None:
        t = trajectories
        dyn = f"{stem}-dyn" + (f"-{t.fixed[0]}{t.fixed[1]}" if t.fixed else "")
        out.append(write_csv(folder / f"{dyn}.csv", *trajectory_table(t)))
        fig, (ax,) = _figure(1, (6, 3.4))
        for k, label in enumerate(t.labels):
            ax.plot(t.x, t.mean[k], marker="o", ms=3, label=f"{t.line_dim} = {label}")
        where = f", {t.fixed[0]} = {t.fixed[1]}" if t.fixed else ""
        layer = f", {layer_label(t.layer)}" if t.layer is not None else ""
        ax.set_title(f"{entry_name}: {t.param}{layer}{where} (mean over replicas)", fontsize=9)
        ax.set_xlabel(t.xlabel)
        ax.set_ylabel(t.param)
        ax.legend(fontsize=7)
        out.append(write_png(folder / f"{dyn}.png", fig))
    return out


# --- run ---------------------------------------------------------------------------------------


def _aligned(epoch: np.ndarray, other_epoch: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (per ``other_epoch``) at the epochs of ``epoch``, NaN where it has none."""
    out = np.full(epoch.size, np.nan)
    for i, ep in enumerate(other_epoch):
        hit = np.flatnonzero(epoch == ep)
        if hit.size:
            out[hit[0]] = values[i]
    return out


def curves_table(run: RunSummary, overlays=()) -> tuple[list[str], list[list]]:
    """Per epoch: mean and sem of each curve, every replica's value, the BP baseline's means and
    those of the overlaid runs (``overlays``: ``(name, RunNumbers)``, columns ``<name>:<curve>_mean``)."""
    header, cols = ["epoch"], [run.epoch.astype(float)]
    for k, v in run.curves.items():
        m, e = curve_stats(v)
        header += [f"{k}_mean", f"{k}_sem", *(f"{k}_r{r}" for r in range(v.shape[0]))]
        cols += [m, e, *v]
    overlaid = {name for name, _ in overlays}
    for k, v in run.baseline.items():
        if run.baseline_name in overlaid:  # as in the plot: the marked run's columns hold it
            break
        m, _ = curve_stats(v)
        header.append(f"bp_{k}_mean")
        cols.append(_aligned(run.epoch, run.baseline_epoch, m))
    for name, numbers in overlays:
        for k, v in numbers.curves.items():
            m, _ = curve_stats(v)
            header.append(f"{name}:{k}_mean")
            cols.append(_aligned(run.epoch, numbers.epoch, m))
    rows = [[int(run.epoch[i])] + [c[i] for c in cols[1:]] for i in range(run.epoch.size)]
    return header, rows


def order_table(run: RunSummary) -> tuple[list[str], list[list]]:
    """One row per layer over all inputs, and layer 1 again over live inputs when the file has
    them (``inputs`` column, as ``mfphys order --csv``); ``frac_uip`` is ``sparsity``'s set.
    A recurrent run: one row per matrix over all connections, and the recurrent one again
    without its diagonal (``connections`` = ``all`` / ``nodiag``, as ``mfphys order --csv``)."""
    cols = [c for c in SHOWN_ORDER if c in run.order]
    if run.part_dim == "matrix":
        header = ["matrix", "connections"] + [f"{c}_{s}" for c in cols for s in ("mean", "sem")]
        rows = [[str(m), "all"] + r[1:] for m, r in zip(run.layers, mean_sem_rows(
            list(run.layers), [order_stats(run, c) for c in cols]))]
        if run.order_nodiag:
            nodiag = mean_sem_rows(list(run.layers), [order_stats(run, c, diagonal=False) for c in cols])
            rows += [[str(m), "nodiag"] + r[1:] for m, r in zip(run.layers, nodiag) if str(m) == "recurrent"]
        return header, rows
    header = ["layer", "inputs"] + [f"{c}_{s}" for c in cols for s in ("mean", "sem")]
    rows = [[int(l), "all"] + r[1:] for l, r in zip(run.layers, mean_sem_rows(
        list(run.layers), [order_stats(run, c, "all") for c in cols]))]
    if has_live(run) and run.layers.size:
        live = mean_sem_rows([1], [tuple(x[:1] for x in order_stats(run, c, "live")) for c in cols])[0]
        rows.insert(1, [1, "live"] + live[1:])
    return header, rows


def hist_table(run: RunSummary, layer_index: int) -> tuple[list[str], list[list]]:
    names = [n for n in HIST_NAMES if n in run.hist]
    parts = {n: hist_counts(run, n, layer_index) for n in names}
    nb = max(len(c) for _, c in parts.values()) if parts else 0
    header = ["bin"] + [f"{n}_{s}" for n in names for s in ("left", "right", "count")]
    rows = []
    for b in range(nb):
        row = [b]
        for n in names:
            e, c = parts[n]
            row += [e[b], e[b + 1], int(c[b])] if b < len(c) else [math.nan, math.nan, 0]
        rows.append(row)
    return header, rows


def dynamics_table(run: RunSummary) -> tuple[list[str], list[list]]:
    """The trajectories the run recorded while training: one row per (recorded epoch, layer),
    and layer 1 again over live inputs (``inputs`` column, as :func:`order_table`); mean and sem
    over replicas of each order parameter. A recurrent run: per matrix, the recurrent one again
    without its diagonal (``matrix``, ``connections`` columns)."""
    params = dyn_params(run)
    rnn = run.part_dim == "matrix"
    header = ["epoch"] + (["matrix", "connections"] if rnn else ["layer", "inputs"]) + [
        f"{c}_{s}" for c in params for s in ("mean", "sem")]
    variants = (("all", run.dyn), ("nodiag", run.dyn_nodiag)) if rnn else (("all", run.dyn), ("live", run.dyn_live))
    rows = []
    for t, epoch in enumerate(run.dyn_epoch):
        for i, layer in enumerate(run.layers):
            for inputs, source in variants:
                first = str(layer) == "recurrent" if rnn else int(layer) == 1
                if inputs != "all" and (not first or not source):
                    continue
                row = [int(epoch), str(layer) if rnn else int(layer), inputs]
                for c in params:
                    mean, _, sem, _ = replica_stats(source.get(c, run.dyn[c])[:, t, i])
                    row += [mean, sem]
                rows.append(row)
    return header, rows


def evaluation_table(run: RunSummary) -> tuple[list[str], list[list]]:
    """A recurrent run's accuracy in every evaluation mode: one row per mode, mean and sem over
    replicas (MNIST: ``test_acc``; multisensory: the psychometric accuracy per modality and their mean)."""
    if run.accuracies:
        stats = [replica_stats(v) for v in run.accuracies.values()]  # (mean, std, sem, n) over replicas
        return ["mode", "test_acc_mean", "test_acc_sem"], [[m, float(st[0]), float(st[2])]
                                                          for m, st in zip(run.accuracies, stats)]
    header = ["mode"] + [f"acc_{m}_{s}" for m in (*run.modalities, "mean") for s in ("mean", "sem")]
    rows = []
    for mode, acc in run.psychometric_acc.items():
        per = acc.reshape(acc.shape[0], -1, acc.shape[-1]).mean(axis=1)
        per = np.concatenate([per, per.mean(axis=1, keepdims=True)], axis=1)
        mean, _, sem, _ = replica_stats(per, axis=0)
        rows.append([mode] + [x for k in range(per.shape[1]) for x in (mean[k], sem[k])])
    return header, rows


def psychometric_table(run: RunSummary) -> tuple[list[str], list[list]]:
    """P(choose high) per event rate: one row per rate, mean and sem over replicas of each
    (mode, modality) (the sampled modes averaged over their draws first)."""
    header, cols = ["rate"], []
    for mode in run.p_high:
        for modality, values in psychometric(run, mode):
            mean, _, sem, _ = replica_stats(values, axis=0)
            header += [f"{mode}_{modality}_mean", f"{mode}_{modality}_sem"]
            cols += [mean, sem]
    return header, [[float(r)] + [c[i] for c in cols] for i, r in enumerate(run.rates)]


def _export_rnn(entry_name: str, run: RunSummary, folder: Path, base: str) -> list[Path]:
    """A recurrent run's evaluation modes (CSV) and, multisensory, its psychometric curves (CSV, PNG)."""
    out = []
    if run.accuracies or run.psychometric_acc:
        out.append(write_csv(folder / f"{base}-evaluation.csv", *evaluation_table(run)))
    if run.p_high:
        out.append(write_csv(folder / f"{base}-psychometric.csv", *psychometric_table(run)))
        modes = list(run.p_high)
        fig, axes = _figure(len(modes), (3 * len(modes), 2.8))
        for ax, mode in zip(axes, modes):
            for modality, values in psychometric(run, mode):
                m, e = curve_stats(values)
                ax.errorbar(run.rates, m, yerr=e, marker="o", ms=3, label=modality)
            ax.set_title(RNN_MODES.get(mode, mode), fontsize=9)
            ax.set_xlabel("event rate (Hz)")
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=7)
        axes[0].set_ylabel("P(choose high)")
        fig.suptitle(f"{entry_name}: psychometric curves (mean; error bars: standard error over {run.replicas} "
                     "replicas)", fontsize=9)
        out.append(write_png(folder / f"{base}-psychometric.png", fig))
    return out


def export_run(entry_name: str, run: RunSummary, layer_index: int, folder: Path, overlays=(),
               dyn_param: str | None = None, inputs: str = "live", diagonal: bool = True) -> list[Path]:
    """Curves (with those of the overlaid runs), per-layer order parameters, their trajectories
    during training (all of them in the CSV, ``dyn_param``'s in the PNG) and one layer's
    histograms: CSVs, and PNGs of the plots. A recurrent run: per matrix (``layer_index`` picks
    the histograms' matrix, ``diagonal`` the recurrent trajectory with or without the diagonal),
    and its evaluation modes and psychometric curves."""
    folder = Path(folder)
    base = f"{safe_name(entry_name)}-run"
    rnn = run.part_dim == "matrix"
    if rnn:
        layer = str(run.layers[layer_index]) if run.layers.size else ""
    else:
        layer = int(run.layers[layer_index]) if run.layers.size else 0
    part = layer if rnn else f"layer{layer}"  # the file names' part
    out = [write_csv(folder / f"{base}-curves.csv", *curves_table(run, overlays)),
           write_csv(folder / f"{base}-order.csv", *order_table(run))]
    if dyn_params(run):
        out.append(write_csv(folder / f"{base}-dynamics.csv", *dynamics_table(run)))
        param = dyn_param if dyn_param in run.dyn else dyn_params(run)[0]
        fig, (ax,) = _figure(1, (6, 3.4))
        shown = []
        for label, values in trajectory(run, param, inputs, diagonal):
            m, e = curve_stats(values)
            shown.append(m)
            ax.errorbar(run.dyn_epoch, m, yerr=e, marker="o", ms=3, label=label if rnn else f"layer {label[1:]}")
        bp_means = []
        last = run.dyn_epoch[-1] if run.dyn_epoch.size else None
        for _, values in baseline_trajectory(run, param):
            keep = run.baseline_dyn_epoch <= last if last is not None else slice(None)  # the run's epochs only
            bm = curve_stats(values)[0][keep]
            bp_means.append(bm)
            ax.plot(run.baseline_dyn_epoch[keep], bm, **BASELINE_STYLE)
        if bp_means and not _keep_axis_for_data(ax, shown, bp_means, "BP baseline"):
            ax.plot([], [], **BASELINE_STYLE, label="BP baseline")
        ax.set_xlabel("epoch")
        ax.set_ylabel(dyn_label(param))
        ax.legend(fontsize=7)
        ax.set_title(f"{entry_name}: {dyn_label(param)} while training (mean; error bars: standard error over "
                     f"{run.replicas} replicas)", fontsize=9)
        out.append(write_png(folder / f"{base}-dynamics-{param}.png", fig))
    out += _export_rnn(entry_name, run, folder, base) if rnn else []
    fig, axes = _figure(2, (9, 3.2))
    loss_unit = "" if rnn and run.task == "multisensory" else " (nats)"  # a masked squared error
    for ax, k, label in zip(axes, ("train_loss", "test_acc"), (f"train loss{loss_unit}", "test accuracy")):
        m, e = curve_stats(run.curves[k])
        ax.errorbar(run.epoch, m, yerr=e, label=f"{run.mode or 'run'}")
        values = [m]
        if k in run.baseline and run.baseline_name not in {n for n, _ in overlays}:
            bm, be = curve_stats(run.baseline[k])
            ax.errorbar(run.baseline_epoch, bm, yerr=be, label="BP baseline", **BASELINE_STYLE)
            values.append(bm)
        for name, numbers in overlays:
            om, oe = curve_stats(numbers.curves[k])
            ax.errorbar(numbers.epoch, om, yerr=oe, label=name)
            values.append(om)
        if k == "train_loss":
            _log_if_decades(ax, np.concatenate([np.ravel(v) for v in values]), ratio=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{entry_name}: mean over replicas; error bars: standard error over {run.replicas} replicas",
                 fontsize=9)
    out.append(write_png(folder / f"{base}-curves.png", fig))
    if run.hist and run.layers.size:
        out.append(write_csv(folder / f"{base}-hist-{part}.csv", *hist_table(run, layer_index)))
        names = [n for n in HIST_NAMES if n in run.hist]
        fig, axes = _figure(len(names), (3 * len(names), 2.8))
        for ax, n in zip(axes, names):
            e, c = hist_counts(run, n, layer_index)
            log = _log_if_decades(ax, c)  # the tails, next to a peak of most connections
            ax.stairs(c, e, fill=True, baseline=0.5 if log else 0)
            ax.set_xlabel({"xi": "Xi"}.get(n, n))
            ax.set_ylabel(f"connections ({run.replicas} replicas)")
        fig.suptitle(f"{entry_name}: {layer} matrix" if rnn else f"{entry_name}: layer {layer}", fontsize=9)
        out.append(write_png(folder / f"{base}-hist-{part}.png", fig))
    return out


# --- perturbation ------------------------------------------------------------------------------


def export_perturbation(entry_name: str, p: PerturbationSummary, folder: Path) -> list[Path]:
    folder = Path(folder)
    stem = f"{safe_name(entry_name)}-perturbation-error"
    out = [write_csv(folder / f"{stem}.csv", *perturbation_table(p))]
    fig, (ax,) = _figure(1, (5, 3.2))
    for k in p.errors:
        mean, sem = error_stats(p, k)
        ax.errorbar(p.fraction, mean, yerr=sem, label=k, marker="o", ms=3)
    ax.set_xlabel("fraction removed")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=7)
    ax.set_title(f"{entry_name}: mean; error bars: standard error over replicas", fontsize=9)
    out.append(write_png(folder / f"{stem}.png", fig))
    return out


# --- runs table --------------------------------------------------------------------------------


def export_runs_table(folder_name: str, rows, folder: Path) -> list[Path]:
    """The runs table as shown (its rows, in its order) as ``<folder>-runs.csv``: full numbers."""
    header = ["path", *COLUMNS[:5], "accuracy", "sparsity", "vip", "date", "error"]
    table = [[str(r.path), r.name, r.dataset, r.architecture, r.mode, r.epochs, r.accuracy, r.sparsity, r.vip,
              r.date, r.error] for r in rows]
    return [write_csv(Path(folder) / f"{safe_name(folder_name)}-runs.csv", header, table)]
