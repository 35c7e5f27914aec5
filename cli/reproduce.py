"""``mfphys reproduce``: the paper's experiments, datasets and PNG figures, under runs/paper/;
the recurrent model's (``rnn-curves``, ``psychometric``, ``rnn-perturbation``, the group ``rnn``)
under runs/rnn-paper/ (docs/reproduction.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.fileio import make_folder, quote
from mfphys.stats import format_stat
from mfphys.train import load_data

from .common import calibration_text, console, counts_text, err_console, make_progress, user_errors

#: mfphys.reproduce.EXPERIMENTS + "all" (a test checks they agree; importing that module here
#: would load xarray for every `mfphys --help`)
CHOICES = ("curves", "distributions", "perturbation", "entropy", "dynamics", "all")
#: mfphys.rnn.reproduce.EXPERIMENTS + its group "rnn" (the recurrent model, docs/model-rnn.md);
#: "all" keeps meaning the feed-forward paper's experiments (a different paper, another folder)
RNN_CHOICES = ("rnn-curves", "psychometric", "rnn-perturbation", "rnn")


def _train_bar(progress, label, epochs):
    """A progress bar for one training run; returns (epoch callback, task id)."""
    task = progress.add_task(label, total=epochs, status="")

    def cb(rec):
        progress.update(task, advance=1, status=f"test acc {np.mean(rec.test_acc):.4f}")

    return cb, task


def _scan_bar(progress, label):
    task = progress.add_task(label, total=None, status="")

    def cb(ev):
        c = ev.counts
        progress.update(task, total=c["total"], completed=c["done"] + c["failed"],
                        status=counts_text(c) + (f", epoch {ev.record.epoch}" if ev.kind == "epoch" else ""))

    return cb


def accuracy_table(cds) -> Table:
    t = Table(title="1. learning curves: test error (%), mean ± standard error over seeds")
    last = min(10, cds.sizes["epoch"])
    for c in ("mode", "last epoch", f"mean of last {last} epochs", "sampled sub-networks (end)"):
        t.add_column(c, justify="right")
    for mode in cds.mode.values:
        e = cds.test_error.sel(mode=mode)
        t.add_row(str(mode), format_stat(e.isel(epoch=-1).values),
                  format_stat(e.isel(epoch=slice(-last, None)).mean("epoch").values),
                  format_stat(cds.test_error_sampled.sel(mode=mode).values))
    return t


def categories_table(dds) -> Table:
    t = Table(title="2. connection categories per layer (gBP), mean ± standard error over seeds")
    cols = ("frac_vip", "frac_uip", "frac_variable", "frac_vip_exact", "frac_uip_exact", "mean_xi")
    t.add_column("layer", justify="right")
    for c in cols:
        t.add_column(c, justify="right")
    for l in dds.layer.values:
        t.add_row(str(l), *(format_stat(dds[c].sel(layer=l).values) for c in cols))
    return t


def perturbation_table(pds) -> Table:
    t = Table(title=f"3. perturbation of layer {pds.attrs.get('layer', 1)}: test error (%) of sampled sub-networks")
    for c in ("fraction", "removed", "very important removed", "variable removed"):
        t.add_column(c, justify="right")
    for i, f in enumerate(pds.fraction.values):
        t.add_row(f"{f:.2f}", str(int(pds.n_removed.isel(fraction=i).mean())),
                  format_stat(pds.error_vip.isel(fraction=i).values),
                  format_stat(pds.error_variable.isel(fraction=i).values))
    return t


def entropy_table(eds) -> Table:
    t = Table(title=f"4. entropy per connection (nats), {eds.attrs['architecture']}, mean ± standard error over seeds")
    t.add_column("n_train", justify="right")
    for l in eds.layer.values:
        t.add_column(f"layer {l}", justify="right")
    for n in eds.n_train.values:
        t.add_row(f"{n:,}", *(format_stat(eds.entropy.sel(n_train=n, layer=l).values) for l in eds.layer.values))
    return t


def dynamics_table(yds) -> Table:
    t = Table(title="5. connection categories and entropy per layer while learning (gBP), mean ± standard error "
                    "over seeds; layer 1 over live inputs")
    epochs = [int(e) for e in yds.dyn_epoch.values]
    shown = sorted({e for e in (0, 1, 5, 20) if e in epochs} | {epochs[-1]})
    t.add_column("quantity")
    t.add_column("layer", justify="right")
    for e in shown:
        t.add_column(f"epoch {e}", justify="right")
    for name in ("frac_vip", "frac_uip", "frac_variable", "entropy"):
        for l in yds.layer.values:
            t.add_row(name, str(l), *(format_stat(yds[name].sel(layer=l, dyn_epoch=e).values) for e in shown))
    return t


def _start(out, default: str, experiment: str, quick: bool, what: str, est, where: str,
           configs=()) -> Path:
    """Check the memory and disk the runs ``configs`` need, then make the output folder and
    announce the job and its expected duration (one stderr line): a job that cannot fit is
    refused before anything is announced, started or created, as ``mfphys train`` does.
    ``est``: the seconds, or a function that measures them (it calibrates, so it runs only
    once the job is known to fit)."""
    from mfphys import budget
    from mfphys.fileio import check_free_space, check_name_length

    folder = Path(out) if out is not None else Path(default) / ("quick" if quick else "")
    check_name_length(folder, what="--out")
    disk = 0
    for cfg in configs:
        estimate = budget.estimate(cfg)
        budget.check_memory(estimate, what=f"the {cfg.mode} run of this reproduction",
                            hint="use --quick or fewer --seeds")
        disk += estimate.disk
    if configs:
        check_free_space(folder / "run.nc", disk)
    est = est() if callable(est) else est
    make_folder(folder)
    duration = f"{est:.0f} s" if est < 90 else f"{est / 60:.0f} min"
    err_console.print(f"mfphys reproduce {experiment}{' --quick' if quick else ''}: {what}; expected duration "
                      f"about {duration} {where}; writing to {folder}/", markup=False, highlight=False)
    return folder


@user_errors
def reproduce(
    experiment: str = typer.Argument("all", help="curves, distributions, perturbation, entropy, dynamics or all "
                                                 "(the feed-forward paper); rnn-curves, psychometric, "
                                                 "rnn-perturbation or rnn (the recurrent model)"),
    quick: bool = typer.Option(False, "--quick", help="a reduced version that runs in a few minutes"),
    out: Optional[Path] = typer.Option(None, help="output folder (default runs/paper, runs/paper/quick with "
                                                  "--quick; runs/rnn-paper for the recurrent experiments)"),
    seeds: Optional[int] = typer.Option(None, help="independent seeds (default 3, 2 with --quick; the recurrent "
                                                   "experiments: of both tasks)"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (default 100, 6 with --quick; the recurrent "
                                                    "experiments: row-wise MNIST, default 25, 5 with --quick)"),
    backend: str = typer.Option("auto", help="auto, numpy or cupy"),
    workers: Optional[int] = typer.Option(None, help="run the entropy scan's cells on a local Dask cluster"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the MNIST IDX files"),
):
    """Run the paper's experiments (docs/model.md section 7) and write their datasets and figures."""
    from mfphys import reproduce as rep
    from mfphys import store

    from . import figures

    if experiment not in CHOICES + RNN_CHOICES:
        raise MfphysError(f"unknown experiment {quote(experiment)}: choose one of {', '.join(CHOICES + RNN_CHOICES)}")
    if experiment in RNN_CHOICES:
        if workers is not None:
            raise MfphysError("--workers runs the entropy scan's cells: it does not apply to the recurrent "
                              "experiments")
        return reproduce_rnn(experiment, quick=quick, out=out, seeds=seeds, epochs=epochs, backend=backend,
                             data_dir=data_dir)
    overrides = {k: v for k, v in (("seeds", seeds), ("epochs", epochs)) if v is not None}
    overrides["backend"] = backend
    protocol = rep.Protocol.quick(**overrides) if quick else rep.Protocol(**overrides)
    if protocol.seeds < 1 or protocol.epochs < 1:
        raise MfphysError("--seeds and --epochs must be positive")
    todo = rep.EXPERIMENTS if experiment == "all" else (experiment,)
    # every experiment reads MNIST: a data problem is one error line, before any other output
    # (the arrays stay cached in this process, so the runs below do not read the files again)
    load_data(protocol.train_config("gbp"), data_dir)
    folder = _start(out, "runs/paper", experiment, quick, f"{protocol.seeds} seeds, {protocol.epochs} epochs",
                    lambda: protocol.estimate_seconds(todo, calibrate=True), f"({calibration_text()})",
                    [protocol.train_config(m) for m in (("gbp", "bp") if "curves" in todo else ("gbp",))
                     if set(rep.GBP_EXPERIMENTS) & set(todo)])
    t0 = time.perf_counter()
    written = []
    with make_progress() as progress:
        runs = {}
        if set(rep.GBP_EXPERIMENTS) & set(todo):
            modes = ("gbp", "bp") if "curves" in todo else ("gbp",)
            for mode in modes:
                cfg = protocol.train_config(mode)
                cb, task = _train_bar(progress, f"train {mode}", cfg.epochs)
                runs[mode] = rep.train_or_reuse(cfg, folder / f"run-{mode}.nc", data_dir=data_dir, callback=cb,
                                                dynamics=mode == "gbp" and "dynamics" in todo)
                if not progress.tasks[task].completed:
                    progress.update(task, completed=cfg.epochs, status="reused the existing run file")
        results = {}
        if "curves" in todo:
            results["curves"] = rep.curves_dataset(runs["gbp"], runs["bp"], protocol)
        if "distributions" in todo:
            results["distributions"] = rep.distributions_dataset(runs["gbp"], protocol)
        if "perturbation" in todo:
            task = progress.add_task("perturbation", total=2 * len(protocol.fractions) + 1, status="")
            results["perturbation"] = rep.perturbation_dataset(folder / "run-gbp.nc", protocol, data_dir=data_dir,
                                                               callback=lambda: progress.advance(task))
        if "entropy" in todo:
            scan_folder = folder / "entropy-scan"
            rep.run_entropy_scan(protocol, scan_folder, data_dir=data_dir, workers=workers,
                                 callback=_scan_bar(progress, "entropy scan"))
            results["entropy"] = rep.entropy_dataset(scan_folder, protocol)
        if "dynamics" in todo:
            results["dynamics"] = rep.dynamics_dataset(runs["gbp"], protocol)
    for name, ds in results.items():
        written.append(store.write_atomic(ds, folder / f"{name}.nc"))
        written.append(figures.FIGURES[name](ds, folder / f"{name}.png"))
    tables = {"curves": accuracy_table, "distributions": categories_table, "perturbation": perturbation_table,
              "entropy": entropy_table, "dynamics": dynamics_table}
    for name, ds in results.items():
        console.print(tables[name](ds))
    console.print(f"done in {time.perf_counter() - t0:.0f} s; wrote {', '.join(str(p) for p in written)}",
                  markup=False, highlight=False)


# --- the recurrent model (mfphys.rnn.reproduce) ---------------------------------------------------------

MODE_LABELS = {"mf": "noise-free mean field", "noisy": "noisy mean field", "quenched": "quenched (sampled)",
               "annealed": "annealed (sampled)"}


def rnn_curves_table(cds) -> Table:
    t = Table(title=f"row-wise MNIST {cds.attrs['architecture']}, {cds.sizes['epoch']} epochs: test accuracy at "
                    "the end, mean ± standard error over seeds")
    t.add_column("evaluation")
    for mode in cds.mode.values:
        t.add_column({"gbp": "gBP (ensemble)", "bp": "BPTT baseline"}[str(mode)], justify="right")
    for ev in cds.eval_mode.values:
        t.add_row(MODE_LABELS[str(ev)], *(format_stat(cds.final_acc.sel(mode=m, eval_mode=ev).values)
                                          for m in cds.mode.values))
    t.add_row("quenched, vote of the draws", *(format_stat(cds.final_acc_vote.sel(mode=m).values)
                                               for m in cds.mode.values))
    return t


def psychometric_table(pds) -> Table:
    stops = ", ".join(str(int(e)) for e in pds.stop_epoch.values)
    t = Table(title=f"multisensory integration: psychometric accuracy per modality, mean ± standard error over seeds "
                    f"(stop epochs {stops})")
    t.add_column("evaluation")
    names = {"v": "visual", "a": "auditory", "va": "both"}
    for m in pds.modality.values:
        t.add_column(names.get(str(m), str(m)), justify="right")
    for ev in pds.eval_mode.values:
        t.add_row(MODE_LABELS[str(ev)], *(format_stat(pds.psychometric_acc.sel(eval_mode=ev, modality=m).values)
                                          for m in pds.modality.values))
    return t


def rnn_perturbation_table(qds) -> Table:
    t = Table(title=f"perturbation of the {qds.attrs.get('matrix', 'recurrent')} matrix: test error (%), "
                    "mean ± standard error over seeds")
    for c in ("fraction", "removed", "VIP removed, mean field", "variable removed, mean field",
              "VIP removed, quenched", "variable removed, quenched"):
        t.add_column(c, justify="right")
    for i, f in enumerate(qds.fraction.values):
        t.add_row(f"{f:.2f}", str(int(qds.n_removed.isel(fraction=i).mean())),
                  *(format_stat(qds[v].isel(fraction=i).values)
                    for v in ("error_vip_mf", "error_variable_mf", "error_vip", "error_variable")))
    return t


def reproduce_rnn(experiment: str, *, quick: bool, out, seeds, epochs, backend: str, data_dir) -> None:
    """The recurrent experiments (mfphys.rnn.reproduce): train or reuse the runs, write the datasets
    and figures, print the tables."""
    from mfphys import store
    from mfphys.data import load_dataset
    from mfphys.rnn import reproduce as rep

    from . import rnn_figures

    overrides = {"backend": backend}
    if seeds is not None:
        overrides.update(seeds=seeds, ms_seeds=seeds)
    if epochs is not None:
        overrides["epochs"] = epochs
    if any(v is not None and v < 1 for v in (seeds, epochs)):
        raise MfphysError("--seeds and --epochs must be positive")
    protocol = (rep.RnnProtocol.quick(**overrides) if quick else rep.RnnProtocol(**overrides)).validate()
    todo = rep.EXPERIMENTS if experiment == rep.GROUP else (experiment,)
    configs = protocol.configs(todo)
    dataset = None
    if "gbp" in configs:  # MNIST: a data problem is one error line, before any other output
        cfg = configs["gbp"]
        dataset = load_dataset("mnist", n_train=cfg.n_train, n_test=cfg.n_test, data_dir=data_dir)
    # name only the runs this experiment trains (the psychometric curves need no row-wise MNIST)
    trains = []
    if "gbp" in configs:
        trains.append(f"row-wise MNIST {protocol.seeds} seeds x {protocol.epochs} epochs"
                      + (" (gBP and BPTT)" if "bp" in configs else ""))
    if "multisensory" in configs:
        trains.append(f"multisensory {protocol.ms_seeds} seeds")
    folder = _start(out, "runs/rnn-paper", experiment, quick, ", ".join(trains),
                    lambda: protocol.estimate_seconds(todo, calibrate=True), f"({calibration_text()})",
                    list(configs.values()))
    t0 = time.perf_counter()
    runs, results, written = {}, {}, []
    labels = {"gbp": "train row-wise gBP", "bp": "train row-wise BPTT", "multisensory": "train multisensory"}
    with make_progress() as progress:
        for role, cfg in configs.items():
            task = progress.add_task(labels[role], total=cfg.epochs, status="")

            def cb(rec, task=task, role=role):
                status = (f"test acc {np.nanmean(rec.test_acc):.4f}" if role != "multisensory"
                          else f"loss {np.nanmean(rec.train_loss):.4f}, {int(rec.active.sum())} training")
                progress.update(task, completed=rec.epoch, status=status)

            reused = rep.reusable(folder / rep.RUN_FILES[role], cfg) is not None
            runs[role] = rep.train_or_reuse(cfg, folder / rep.RUN_FILES[role], data_dir=data_dir, dataset=dataset,
                                            callback=cb, preset_name="multisensory" if role == "multisensory"
                                            else "row_mnist")
            progress.update(task, completed=cfg.epochs, status="reused the existing run file" if reused else "done")
        if "rnn-curves" in todo:
            results["rnn-curves"] = rep.curves_dataset(runs["gbp"], runs["bp"], protocol)
        if "psychometric" in todo:
            results["psychometric"] = rep.psychometric_dataset(runs["multisensory"], protocol)
        if "rnn-perturbation" in todo:
            task = progress.add_task("perturbation", total=2 * len(protocol.fractions) + 1, status="")
            results["rnn-perturbation"] = rep.perturbation_dataset(
                folder / rep.RUN_FILES["gbp"], protocol, data_dir=data_dir, dataset=dataset,
                callback=lambda: progress.advance(task))
    for name, ds in results.items():
        written.append(store.write_atomic(ds, folder / f"{name}.nc"))
        written.append(rnn_figures.FIGURES[name](ds, folder / f"{name}.png"))
    tables = {"rnn-curves": rnn_curves_table, "psychometric": psychometric_table,
              "rnn-perturbation": rnn_perturbation_table}
    for name, ds in results.items():
        console.print(tables[name](ds))
    console.print(f"done in {time.perf_counter() - t0:.0f} s; wrote {', '.join(str(p) for p in written)}",
                  markup=False, highlight=False)
