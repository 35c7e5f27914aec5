"""Publication-quality PNG figures of the paper's experiments (matplotlib, Agg backend).

Each function takes the experiment's dataset (``mfphys.reproduce``) and writes one PNG
atomically; error bars are the standard deviation over replicas (seeds).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mfphys import store  # noqa: E402

COLORS = {"gbp": "#1f77b4", "bp": "#d62728", "vip": "#d62728", "variable": "#2ca02c"}
plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 10, "axes.grid": True,
                     "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})


def _save(fig, path: Path) -> Path:
    try:
        with store.atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _std(a, axis):
    return a.std(axis=axis, ddof=1) if a.shape[axis] > 1 else np.zeros(np.delete(a.shape, axis))


def curves(ds, path: Path) -> Path:
    """Test error (%) vs epoch, gBP vs BP: mean over seeds with a ±1 std band."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    epochs = ds.epoch.values
    last = min(10, len(epochs))
    for mode, label in (("gbp", "gBP (spike-and-slab ensemble)"), ("bp", "BP (deterministic)")):
        err = ds.test_error.sel(mode=mode).values  # (replica, epoch)
        mean, std = err.mean(axis=0), _std(err, 0)
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


def distributions(ds, path: Path) -> Path:
    """Histograms of pi, m, Xi (rows) per layer (columns), all replicas, log counts."""
    L = ds.sizes["layer"]
    fig, axes = plt.subplots(3, L, figsize=(3.4 * L, 7.6), squeeze=False)
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


def perturbation(ds, path: Path) -> Path:
    """Test error vs fraction removed: very important vs the same number of variable connections."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    f = ds.fraction.values
    for arm, label in (("vip", "very important removed"), ("variable", "same number of variable removed")):
        err = ds[f"error_{arm}"].values  # (fraction, replica)
        ax.errorbar(f, err.mean(axis=1), yerr=_std(err, 1), marker="o", ms=4, capsize=3, color=COLORS[arm],
                    label=label)
    ax.set_xlabel(f"fraction f of layer {ds.attrs.get('layer', 1)}'s very important connections")
    ax.set_ylabel("test error (%), sampled sub-networks")
    n = ds.sizes["replica"]
    ax.set_title(f"targeted perturbation (mean ± std over {n} seed{'s' * (n > 1)}, "
                 f"{ds.sizes['sample']} draws each)")
    ax.legend()
    return _save(fig, path)


def entropy(ds, path: Path) -> Path:
    """Mean entropy per connection vs layer, one line per training-set size, ± std over seeds."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    layers = ds.layer.values
    cmap = plt.get_cmap("viridis")
    sizes = ds.n_train.values
    for i, n in enumerate(sizes):
        e = ds.entropy.sel(n_train=n).values  # (replica, layer)
        ax.errorbar(layers + (i - (len(sizes) - 1) / 2) * 0.04, e.mean(axis=0), yerr=_std(e, 0), marker="o",
                    ms=4, capsize=3, color=cmap(i / max(len(sizes) - 1, 1)), label=f"{n:,} images")
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel("entropy per connection (nats)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(f"entropy per connection, {ds.attrs['architecture']}")
    ax.legend(title="training set", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)


FIGURES = {"curves": curves, "distributions": distributions, "perturbation": perturbation, "entropy": entropy}
