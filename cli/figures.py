"""Publication-quality PNG figures of the paper's experiments (matplotlib, Agg backend).

Each function takes the experiment's dataset (``mfphys.reproduce``) and writes one PNG
atomically; error bars are the standard deviation over replicas (seeds).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from mfphys.fileio import atomic_file
from mfphys.stats import sample_std

# Figures are made as plain `Figure` objects (no pyplot, no global backend or rcParams):
# importing this module changes nothing for a script that also uses matplotlib.
COLORS = {"gbp": "#1f77b4", "bp": "#d62728", "vip": "#d62728", "variable": "#2ca02c"}
STYLE = {"figure.dpi": 110, "savefig.dpi": 150, "font.size": 10, "axes.grid": True,
         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}


def _styled(fn):
    """Draw under :data:`STYLE`, restored afterwards."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _save(fig, path: Path) -> Path:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)


@_styled
def curves(ds, path: Path) -> Path:
    """Test error (%) vs epoch, gBP vs BP: mean over seeds with a ±1 std band."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    epochs = ds.epoch.values
    last = min(10, len(epochs))
    for mode, label in (("gbp", "gBP (spike-and-slab ensemble)"), ("bp", "BP (deterministic)")):
        err = ds.test_error.sel(mode=mode).values  # (replica, epoch)
        mean, std = err.mean(axis=0), sample_std(err, 0)
        ax.plot(epochs, mean, color=COLORS[mode], label=f"{label}: {mean[-last:].mean():.2f} %")
        ax.fill_between(epochs, mean - std, mean + std, color=COLORS[mode], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%), noise-free mean-field")
    n = ds.sizes["replica"]
    ax.set_title(f"MNIST {ds.attrs['architecture']}: mean ± std over {n} seed{'s' * (n > 1)}")
    ax.legend(title=f"mean of the last {last} epochs")
    return _save(fig, path)


@_styled
def distributions(ds, path: Path) -> Path:
    """Histograms of pi, m, Xi (rows) per layer (columns), all replicas, log counts."""
    L = ds.sizes["layer"]
    fig = Figure(figsize=(3.4 * L, 7.6))
    axes = fig.subplots(3, L, squeeze=False)
    for row, (name, sym) in enumerate((("pi", r"$\pi$"), ("m", r"$m$"), ("xi", r"$\Xi$"))):
        edges = ds[f"{name}_edge"].values
        for col, l in enumerate(ds.layer.values):
            ax = axes[row, col]
            counts = ds[f"hist_{name}_total"].sel(layer=l).values
            ax.stairs(counts, edges, fill=True, color="#4c72b0", baseline=0.5)
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.5)
            ax.set_xlabel(sym)
            if col == 0:
                ax.set_ylabel("connections")
            if row == 0:
                f = {k: float(ds[k].sel(layer=l).mean()) for k in ("frac_vip", "frac_uip", "frac_variable")}
                ax.set_title(f"layer {l}\nVIP {f['frac_vip']:.1%}  UIP {f['frac_uip']:.1%}  "
                             f"variable {f['frac_variable']:.1%}", fontsize=9)
    fig.suptitle(f"distributions after gBP training, {ds.attrs['architecture']} (all seeds)")
    fig.tight_layout()
    return _save(fig, path)


@_styled
def perturbation(ds, path: Path) -> Path:
    """Test error vs fraction removed: very important vs the same number of variable connections."""
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    f = ds.fraction.values
    for arm, label in (("vip", "very important removed"), ("variable", "same number of variable removed")):
        err = ds[f"error_{arm}"].values  # (fraction, replica)
        ax.errorbar(f, err.mean(axis=1), yerr=sample_std(err, 1), marker="o", ms=4, capsize=3, color=COLORS[arm],
                    label=label)
    ax.set_xlabel(f"fraction f of layer {ds.attrs.get('layer', 1)}'s very important connections")
    ax.set_ylabel("test error (%), sampled sub-networks")
    n = ds.sizes["replica"]
    ax.set_title(f"targeted perturbation (mean ± std over {n} seed{'s' * (n > 1)}, "
                 f"{ds.sizes['sample']} draws each)")
    ax.legend()
    return _save(fig, path)


@_styled
def entropy(ds, path: Path) -> Path:
    """Mean entropy per connection vs layer, one line per training-set size, ± std over seeds."""
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    layers = ds.layer.values
    cmap = matplotlib.colormaps["viridis"]
    sizes = ds.n_train.values
    for i, n in enumerate(sizes):
        e = ds.entropy.sel(n_train=n).values  # (replica, layer)
        ax.errorbar(layers + (i - (len(sizes) - 1) / 2) * 0.04, e.mean(axis=0), yerr=sample_std(e, 0), marker="o",
                    ms=4, capsize=3, color=cmap(i / max(len(sizes) - 1, 1)), label=f"{n:,} images")
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel("entropy per connection (nats)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(f"entropy per connection, {ds.attrs['architecture']}")
    ax.legend(title="training set", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)



#: the dynamics figure's panels: variable, axis label
DYNAMICS_PANELS = (("frac_vip", "very important (VIP) fraction"), ("frac_uip", "unimportant (UIP) fraction"),
                   ("frac_variable", "variable fraction"), ("entropy", "entropy per connection (nats)"))


@_styled
def dynamics(ds, path: Path) -> Path:
    """The VIP, UIP and variable fractions and the entropy per connection against epoch while
    learning: one panel each, one line per layer (mean over seeds) with a ±1 std band; the
    epoch axis is linear up to 1 and logarithmic beyond, where the recorded epochs are spaced."""
    fig = Figure(figsize=(10.0, 7.0))
    axes = fig.subplots(2, 2, squeeze=False).ravel()
    epochs = ds.dyn_epoch.values
    widths = [int(w) for w in str(ds.attrs.get("architecture", "")).split("-") if w.isdigit()]
    colours = matplotlib.colormaps["tab10"]
    for ax, (name, label) in zip(axes, DYNAMICS_PANELS):
        for i, l in enumerate(ds.layer.values):
            mean = ds[f"{name}_mean"].sel(layer=l).values
            std = ds[f"{name}_std"].sel(layer=l).values
            what = f"layer {l}"
            if len(widths) > int(l):
                what += f" ({widths[int(l) - 1]}→{widths[int(l)]}{', live inputs' if int(l) == 1 else ''})"
            ax.plot(epochs, mean, color=colours(i), marker="o", ms=2.5, lw=1.4, label=what)
            ax.fill_between(epochs, mean - std, mean + std, color=colours(i), alpha=0.25, lw=0)
        ax.set_xscale("symlog", linthresh=1.0)
        ticks = [e for e in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if e < epochs[-1]] + [int(epochs[-1])]
        ax.set_xticks(ticks, [str(e) for e in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlim(0, epochs[-1])
        ax.set_xlabel("epoch (0: initial parameters)")
        ax.set_ylabel(label)
        if name != "entropy":
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    n = ds.sizes["replica"]
    fig.suptitle(f"connection categories while learning, gBP, MNIST {ds.attrs.get('architecture', '')}: "
                 f"mean ± std over {n} seed{'s' * (n > 1)}")
    fig.tight_layout()
    return _save(fig, path)


@_styled
def phase_figure(ds, variables, *, layer: Optional[int] = None, live: bool = True, matrix: str = "recurrent",
                 diagonal: bool = True):
    """A grid of heatmaps over (depth, n_train), one per variable, mean over replicas.

    Per-layer order parameters are averaged over the network weighted by connections
    (:func:`mfphys.scan.network_mean`) unless ``layer`` picks one layer (negative: counted
    from the output, :func:`mfphys.scan.select_layer`); with ``live`` (the default, as
    docs/order-parameters.md asks of plots) layer 1 counts only connections from live inputs.
    A recurrent scan (``model`` attribute ``rnn``) is drawn over (steps, n_train) and its
    per-matrix order parameters show ``matrix`` (default the recurrent one; without its
    diagonal, the ``_nodiag`` variables, when not ``diagonal``).
    """
    from mfphys.order import display_name
    from mfphys.scan import network_mean, select_layer

    rnn = ds.attrs.get("model") == "rnn"
    rows_dim = "steps" if rnn else "depth"
    n = len(variables)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, var in zip(axes.flat, variables):
        da = ds[var]
        what = ""
        if "matrix" in da.dims:
            if not diagonal and matrix == "recurrent" and f"{var}_nodiag" in ds:
                da = ds[f"{var}_nodiag"]
            da = da.sel(matrix=matrix, drop=True)
            what = f"{matrix} matrix" + (", no diagonal" if not diagonal and matrix == "recurrent" else "")
        elif "layer" in da.dims:
            # worded as the scan table and the TUI word it (docs/order-parameters.md)
            live_text = ", layer 1 over live inputs" if live and f"{var}_live" in ds else ""
            if layer is None:
                da, what = network_mean(ds, var, live=live), "whole network" + live_text
            else:
                da = select_layer(ds, var, layer, live=live)
                what = (f"layer {layer}" if layer > 0 else "output layer" if layer == -1
                        else f"layer {layer} from the output")
                if layer == 1 and live_text:
                    what += " over live inputs"
        if "epoch" in da.dims:
            da = da.isel(epoch=-1)
        z = da.mean("replica", skipna=False).transpose(rows_dim, "n_train").values if "replica" in da.dims else \
            da.transpose(rows_dim, "n_train").values
        im = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis")
        ax.grid(False)
        ax.set_xticks(range(ds.sizes["n_train"]), [f"{v:,}" for v in ds.n_train.values])
        ax.set_yticks(range(ds.sizes[rows_dim]), [str(v) for v in ds[rows_dim].values])
        ax.set_xlabel("n_train (P)")
        ax.set_ylabel("steps T (temporal depth)" if rnn else "depth (hidden layers)")
        ax.set_title(f"{display_name(var)}" + (f" ({what})" if what else ""))
        fig.colorbar(im, ax=ax)
        finite = z[np.isfinite(z)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), v in np.ndenumerate(z):
            ax.text(j, i, "—" if not np.isfinite(v) else f"{v:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(v) and v < mid else "black")
    f = json.loads(ds.attrs.get("fixed", "{}"))
    seeds = int(ds.attrs.get("seeds_averaged", 1))  # a scanned seed axis averaged as replicas are
    copies = f"{ds.sizes['replica']} replica(s)" + (f" x {seeds} seeds (mean)" if seeds > 1 else "")
    if rnn:
        fig.suptitle(f"scan {ds.attrs.get('name', '')}: recurrent, MNIST {f.get('preset', '')}, N = {f.get('n', '')}, "
                     f"{f.get('epochs', '')} epochs, {copies}, mode {f.get('mode', '')}")
    else:
        fig.suptitle(f"scan {ds.attrs.get('name', '')}: {f.get('dataset', '')}, width {f.get('width', '')}, "
                     f"{f.get('epochs', '')} epochs, {copies}, mode {f.get('mode', '')}")
    fig.tight_layout()
    return fig

FIGURES = {"curves": curves, "distributions": distributions, "perturbation": perturbation, "entropy": entropy,
           "dynamics": dynamics}


def adaptive_values(ds, var: str, *, layer: Optional[int] = None, live: bool = True, matrix: str = "recurrent",
                    diagonal: bool = True):
    """One number per cell of an adaptive scan (mean over replicas) and what it shows: the
    reduction of :func:`phase_figure` (whole network, a layer or a matrix), plus the targets
    ``test_error``, ``sampled_error`` and ``gap`` (sampled minus mean-field error) and
    ``NAME:PART`` (one layer or matrix), as ``mfphys scan --target`` names them."""
    from mfphys import registry
    from mfphys.scan import network_mean, select_layer

    name, _, part = var.partition(":")
    sampled = registry.get(ds.attrs.get("model") or registry.DEFAULT).sampled_accuracy
    if name == "sampled_error" and sampled in ds:
        return 1.0 - ds[sampled].mean("replica"), ""
    if name == "gap" and sampled in ds:
        return (ds.test_acc.isel(epoch=-1) - ds[sampled]).mean("replica"), "sampled - mean-field error"
    da, what = ds[name], ""
    if "matrix" in da.dims:
        pick = part or matrix
        if not diagonal and pick == "recurrent" and f"{name}_nodiag" in ds:
            da = ds[f"{name}_nodiag"]
        da, what = da.sel(matrix=pick, drop=True), f"{pick} matrix"
    elif "layer" in da.dims:
        pick = int(part) if part else layer
        if pick is None:
            da, what = network_mean(ds, name, live=live), "whole network" + (", live inputs" if live else "")
        else:
            da, what = select_layer(ds, name, pick, live=live), (f"layer {pick}" if pick > 0 else "output layer"
                                                                  if pick == -1 else f"layer {pick} from the output")
    if "epoch" in da.dims:
        da = da.isel(epoch=-1)
    if "dyn_epoch" in da.dims:
        da = da.isel(dyn_epoch=-1)
    return (da.mean("replica") if "replica" in da.dims else da), what


@_styled
def adaptive_figure(ds, variables, *, layer: Optional[int] = None, live: bool = True, matrix: str = "recurrent",
                    diagonal: bool = True, level: Optional[float] = None, points: int = 200):
    """An adaptive scan's picture (docs/scans.md "Adaptive scans"): per variable, the value
    interpolated between the sampled cells (:func:`mfphys.scan.interpolate`) with the cells drawn
    over it as dots, so one sees where the learner spent them.

    One continuous axis: a heatmap with one row per combination of the discrete axes (depth), or
    a curve when there is one; two continuous axes: a heatmap over both. ``level``: the boundary
    where the variable crosses it (a contour; on rows, a mark at each crossing)."""
    from mfphys.order import display_name
    from mfphys.scan import interpolate

    ad = json.loads(ds.attrs["adaptive"])
    cont = list(ad["axes"])
    log = {n: ad["axes"][n]["scale"] == "log" for n in cont}
    disc = [d for d in ad.get("discrete", []) if len(np.unique(ds[d].values)) > 1]
    if len(cont) == 2 and disc:
        from mfphys.errors import MfphysError

        raise MfphysError(f"pick one value of {', '.join(disc)} with --sel {disc[0]}=... (two continuous axes "
                          "are drawn for one combination at a time)")
    n = len(variables)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(5.6 * cols, 4.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    done = (ds.status == "done").values
    for ax, var in zip(axes.flat, variables):
        values, what = adaptive_values(ds, var, layer=layer, live=live, matrix=matrix, diagonal=diagonal)
        grid = interpolate(ds, values, points=points)
        title = display_name(var.partition(":")[0]) + (f" ({what})" if what else "")
        if len(cont) == 1 and not disc:
            x = ds[cont[0]].values[done]
            order = np.argsort(x)
            ax.plot(grid[cont[0]].values, grid.values, color=COLORS["gbp"], lw=1.2, label="interpolated")
            ax.plot(x[order], values.values[done][order], "o", ms=4, color="black", label="cells")
            if level is not None:
                ax.axhline(level, color="#d62728", lw=0.8, ls="--", label=f"level {level:g}")
            ax.set_ylabel(display_name(var.partition(":")[0]))
            ax.legend(fontsize=8)
        elif len(cont) == 1:
            combos = [tuple(grid[d].values[i].item() for d in disc) for i in range(grid.shape[0])]
            labels = [",".join(map(str, c)) for c in combos]
            xs = grid[cont[0]].values
            im = ax.pcolormesh(xs, np.arange(len(labels)), grid.values, shading="nearest", cmap="viridis")
            fig.colorbar(im, ax=ax)
            for i, combo in enumerate(combos):
                sel = done.copy()
                for d, v in zip(disc, combo):
                    sel &= ds[d].values == v
                ax.plot(ds[cont[0]].values[sel], np.full(sel.sum(), i), "o", ms=3.5, mfc="white", mec="black",
                        mew=0.6)
                if level is not None:
                    y = grid.values[i]
                    cross = np.nonzero(np.diff(np.sign(y - level)) != 0)[0]
                    for j in cross:  # the crossing between two grid points, linearly
                        t = (level - y[j]) / (y[j + 1] - y[j])
                        xc = np.exp(np.log(xs[j]) + t * np.log(xs[j + 1] / xs[j])) if log[cont[0]] else \
                            xs[j] + t * (xs[j + 1] - xs[j])
                        ax.plot([xc, xc], [i - 0.45, i + 0.45], color="#d62728", lw=2)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_ylabel(", ".join(disc))
            ax.grid(False)
        else:
            xs, ys = grid[cont[0]].values, grid[cont[1]].values
            im = ax.pcolormesh(xs, ys, grid.values.T, shading="nearest", cmap="viridis")
            fig.colorbar(im, ax=ax)
            ax.plot(ds[cont[0]].values[done], ds[cont[1]].values[done], "o", ms=3.5, mfc="white", mec="black",
                    mew=0.6)
            if level is not None and np.isfinite(grid.values).any():
                with np.errstate(invalid="ignore"):
                    ax.contour(xs, ys, grid.values.T, levels=[level], colors="#d62728", linewidths=1.5)
            if log[cont[1]]:
                ax.set_yscale("log")
            ax.set_ylabel(cont[1])
            ax.grid(False)
        if log[cont[0]]:
            ax.set_xscale("log")
        ax.set_xlabel(cont[0])
        ax.set_title(title + (f", boundary at {level:g}" if level is not None else ""), fontsize=9)
    f = json.loads(ds.attrs.get("fixed", "{}"))
    fig.suptitle(f"adaptive scan {ds.attrs.get('name', '')}: {int(done.sum())} cells, {f.get('epochs', '')} epochs, "
                 f"{ds.sizes['replica']} replica(s)")
    fig.tight_layout()
    return fig
