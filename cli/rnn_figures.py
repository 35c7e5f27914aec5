"""PNG figures of the recurrent model's experiments (``mfphys.rnn.reproduce``; matplotlib Agg).

Each function takes the experiment's dataset and writes one PNG atomically; bands and error
bars are the standard deviation over seeds. The style and the atomic write are those of the
feed-forward figures (:mod:`mfphys.cli.figures`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from mfphys.stats import sample_std

from .figures import COLORS, _save, _styled

#: evaluation modes (docs/model-rnn.md section 5): label, colour, line style
MODES = {"mf": ("noise-free mean field", "#1f77b4", "-"), "noisy": ("noisy mean field", "#9467bd", "--"),
         "quenched": ("quenched (sampled networks)", "#ff7f0e", "-."),
         "annealed": ("annealed (sampled)", "#8c564b", ":")}
MODALITIES = {"v": "visual", "a": "auditory", "va": "visual + auditory"}


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n > 1)}"


@_styled
def curves(ds, path: Path) -> Path:
    """Left: test error (%) vs epoch, noise-free mean field, gBP vs BPTT (mean ± std over seeds).
    Right: the final test error of every evaluation mode, both trainings."""
    fig = Figure(figsize=(11.0, 4.2))
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    epochs = ds.epoch.values
    for mode, label in (("gbp", "gBP (spike-and-slab ensemble)"), ("bp", "BPTT baseline (deterministic)")):
        err = 100 * (1 - ds.test_acc.sel(mode=mode).values)  # (replica, epoch)
        mean, std = err.mean(axis=0), sample_std(err, 0)
        ax.plot(epochs, mean, color=COLORS[mode], marker="o", ms=2.5, label=f"{label}: {mean[-1]:.2f} %")
        ax.fill_between(epochs, mean - std, mean + std, color=COLORS[mode], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%), noise-free mean field")
    ax.legend(title="last epoch")
    ax.set_title(f"row-wise MNIST {ds.attrs['architecture']}: mean ± std over {_seeds(ds.sizes['replica'])}")
    modes = [str(m) for m in ds.eval_mode.values] + ["vote"]
    x = np.arange(len(modes))
    for i, (mode, label) in enumerate((("gbp", "gBP"), ("bp", "BPTT"))):
        acc = np.concatenate([ds.final_acc.sel(mode=mode).transpose("eval_mode", "replica").values,
                              ds.final_acc_vote.sel(mode=mode).values[None]])
        err = 100 * (1 - acc)
        bars = bx.bar(x + (i - 0.5) * 0.38, err.mean(axis=1), 0.38, yerr=sample_std(err, 1), capsize=3,
                      color=COLORS[mode], label=label)
        bx.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    bx.set_xticks(x, ["mean\nfield", "noisy", "quenched", "annealed", "quenched\nvote"])
    bx.set_ylabel("test error (%) after the last epoch")
    bx.set_title("every evaluation mode (sampled: mean of the draws)")
    bx.legend()
    fig.tight_layout()
    return _save(fig, path)


@_styled
def psychometric(ds, path: Path) -> Path:
    """P(choose high) vs event rate, one panel per modality, one line per evaluation mode
    (mean ± std over seeds), the category boundary at 12.5 Hz."""
    mods = [str(m) for m in ds.modality.values]
    fig = Figure(figsize=(4.0 * len(mods), 4.0))
    axes = fig.subplots(1, len(mods), sharey=True, squeeze=False)[0]
    rate = ds.rate.values
    for ax, m in zip(axes, mods):
        accs = []
        for ev in ds.eval_mode.values:
            label, colour, style = MODES[str(ev)]
            p = ds.p_high.sel(eval_mode=ev, modality=m).transpose("replica", "rate").values
            mean = p.mean(axis=0)
            ax.plot(rate, mean, color=colour, ls=style, marker="o", ms=3.5, label=label)
            if p.shape[0] > 1:
                std = sample_std(p, 0)
                ax.fill_between(rate, mean - std, mean + std, color=colour, alpha=0.12, lw=0)
            acc = float(ds.psychometric_acc.sel(eval_mode=ev, modality=m).mean())
            accs.append(f"{label.split(' (')[0]}: {acc:.1%}")
        ax.axvline(12.5, color="grey", lw=0.8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("event rate (Hz)")
        ax.set_title(MODALITIES.get(m, m))
        # the upper left stays empty for a trained network (low rates: P(high) near 0)
        ax.text(0.03, 0.95, "psychometric accuracy\n" + "\n".join(accs), transform=ax.transAxes, va="top",
                fontsize=7.5, bbox=dict(boxstyle="round", fc="white", ec="0.8", alpha=0.9))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, -0.06))
    axes[0].set_ylabel("P(choose high)")
    stops = ", ".join(str(int(e)) for e in ds.stop_epoch.values)
    fig.suptitle(f"multisensory integration {ds.attrs['architecture']}: mean ± std over "
                 f"{_seeds(ds.sizes['replica'])} (stopped at epochs {stops})")
    fig.tight_layout()
    return _save(fig, path)


@_styled
def perturbation(ds, path: Path) -> Path:
    """Test error vs removed fraction of the matrix's very important connections against as many
    variable ones; left the noise-free mean field, right the quenched networks."""
    fig = Figure(figsize=(11.0, 4.2))
    axes = fig.subplots(1, 2)
    f = ds.fraction.values
    matrix = ds.attrs.get("matrix", "recurrent")
    for ax, (suffix, what) in zip(axes, (("_mf", "noise-free mean field"),
                                         ("", f"quenched networks ({ds.sizes['sample']} draws per seed)"))):
        for arm, label in (("vip", "very important removed"), ("variable", "same number of variable removed")):
            err = ds[f"error_{arm}{suffix}"].values  # (fraction, replica)
            ax.errorbar(f, err.mean(axis=1), yerr=sample_std(err, 1) if err.shape[1] > 1 else None, marker="o",
                        ms=4, capsize=3, color=COLORS[arm], label=label)
        ax.set_xlabel(f"fraction f of the {matrix} matrix's very important connections")
        ax.set_ylabel("test error (%)")
        ax.set_title(what)
        ax.legend()
    n_vip = ds.n_vip.values
    fig.suptitle(f"targeted perturbation of the {matrix} matrix, {ds.attrs.get('architecture', '')}: mean ± std "
                 f"over {_seeds(ds.sizes['replica'])}\n({int(n_vip.min())}-{int(n_vip.max())} very important "
                 f"connections per seed)")
    fig.tight_layout()
    return _save(fig, path)


FIGURES = {"rnn-curves": curves, "psychometric": psychometric, "rnn-perturbation": perturbation}
