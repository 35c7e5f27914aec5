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
    if rnn:
        fig.suptitle(f"scan {ds.attrs.get('name', '')}: recurrent, MNIST {f.get('preset', '')}, N = {f.get('n', '')}, "
                     f"{f.get('epochs', '')} epochs, {ds.sizes['replica']} replica(s), mode {f.get('mode', '')}")
    else:
        fig.suptitle(f"scan {ds.attrs.get('name', '')}: {f.get('dataset', '')}, width {f.get('width', '')}, "
                     f"{f.get('epochs', '')} epochs, {ds.sizes['replica']} replica(s), mode {f.get('mode', '')}")
    fig.tight_layout()
    return fig

FIGURES = {"curves": curves, "distributions": distributions, "perturbation": perturbation, "entropy": entropy,
           "dynamics": dynamics}
