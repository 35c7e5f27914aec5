"""``mfphys train``: train one architecture, many seeds at once, and write one run file."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.fileio import check_free_space, check_writable
from mfphys.model import architecture
from mfphys.order import display_name
from mfphys.stats import format_stat
from mfphys.train import TrainConfig, load_data
from mfphys.train import train as run_training

from .common import blas_limit, command_line, console, err_console, make_progress, parse_ints, user_errors

D = TrainConfig()


def default_out(cfg: TrainConfig, name: str | None = None) -> Path:
    """``runs/<name>.nc``, or a name that tells runs apart (data, architecture, mode, seed, time to the
    second) made unique with ``-2``, ``-3``, ...: a default name never replaces an existing file."""
    if name is not None:
        return Path("runs") / f"{name}.nc"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{cfg.dataset}-{architecture(cfg.layers)}-{cfg.mode}-seed{cfg.seed}-{stamp}"
    path, k = Path("runs") / f"{stem}.nc", 1
    while path.exists():
        k += 1
        path = Path("runs") / f"{stem}-{k}.nc"
    return path


def check_name(name: str) -> str:
    """A run name is a file name: ``runs/<name>.nc``."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise MfphysError(f"--name {name!r}: give a plain file name (no '/', not starting with '.'), "
                          f"the run is written to runs/<name>.nc")
    return name.removesuffix(".nc")


def summary_table(ds) -> Table:
    """Per-layer order parameters, mean over replicas (``mfphys order`` shows their errors).

    Layer 1 counts the connections from live inputs only, as docs/order-parameters.md asks;
    ``frac_uip`` is the same set as ``sparsity`` (one column).
    """
    live = "frac_vip_live" in ds
    t = Table(title=f"{ds.attrs['title']}  ({ds.sizes['replica']} replica(s), {ds.sizes['epoch']} epochs); "
                    f"order parameters, mean over replicas",
              caption="layer 1 over the connections from live inputs (all inputs: mfphys order)" if live else None)
    t.add_column("layer", justify="right")
    cols = ("frac_vip", "frac_uip", "frac_variable", "mean_xi", "entropy", "entropy_median")
    for c in cols:
        t.add_column(display_name(c), justify="right")
    for l in ds.layer.values:
        src = {c: ds[f"{c}_live"] if live and f"{c}_live" in ds else ds[c] for c in cols}
        t.add_row(f"{l} (live)" if live and l == 1 else str(l),
                  *(f"{float(src[c].sel(layer=l).mean()):.4g}" for c in cols))
    return t


def print_estimate(cfg: TrainConfig, estimate, out: Path) -> None:
    """What ``--dry-run`` prints: the job, its memory by part against what is free, its file."""
    from mfphys.budget import available_memory
    from mfphys.fileio import free_bytes, mib

    console.print(f"{cfg.mode} {architecture(cfg.layers)} on {cfg.dataset}: {cfg.replicas} replica(s), "
                  f"{cfg.epochs} epochs of {cfg.n_train} patterns in batches of {cfg.batch_size}, {cfg.dtype}")
    t = Table(title="memory estimate", box=None)
    t.add_column("part")
    t.add_column("bytes", justify="right")
    for part, nbytes in estimate.memory.items():
        t.add_row(part, mib(nbytes))
    avail = available_memory()
    t.add_row("total (peak)", mib(estimate.peak))
    t.add_row("available now", "unknown" if avail is None else mib(avail))
    console.print(t)
    free = free_bytes(out)
    console.print(f"run file: {out}, about {mib(estimate.disk)} ({'unknown' if free is None else mib(free)} free)")


@user_errors
def train(
    dataset: str = typer.Option(D.dataset, help="mnist, fashion-mnist or teacher (teacher-student, no download)"),
    layers: str = typer.Option(architecture(D.layers).replace("-", ","), help="layer widths, input first"),
    n_train: int = typer.Option(D.n_train, help="train on the first N training patterns"),
    n_test: Optional[int] = typer.Option(None, help="evaluate on the first N test patterns (default: all)"),
    epochs: int = typer.Option(D.epochs, help="training epochs"),
    batch_size: int = typer.Option(D.batch_size, help="mini-batch size"),
    lr: float = typer.Option(D.lr, help="Adam learning rate"),
    lr_halve_every: int = typer.Option(D.lr_halve_every, help="halve lr every N epochs (20 = the paper's 2020 "
                                                              "code, with --epochs 200); 0 = constant"),
    activation: str = typer.Option(D.activation, help="hidden-unit activation: relu, tanh, sigmoid, softplus, linear"),
    replicas: int = typer.Option(D.replicas, "--replicas", "-R", help="independent seeds trained together; "
                                                                      "replica r uses seed + r"),
    seed: int = typer.Option(D.seed, help="base random seed"),
    mode: str = typer.Option(D.mode, help="gbp (spike-and-slab ensemble) or bp (ordinary network, pi = Xi = 0)"),
    backend: str = typer.Option(D.backend, help="auto (CuPy if a GPU works, else NumPy), numpy or cupy"),
    dtype: str = typer.Option(D.dtype, help="float32 or float64"),
    weight_decay: float = typer.Option(D.weight_decay, help="decay added to the Adam step"),
    decay_on: str = typer.Option(",".join(D.decay_on), help="parameters that get the decay (m,xi: 2020 code; "
                                                            "pi,m,xi: later revision)"),
    init_m_std: float = typer.Option(D.init_m_std, help="std of the initial m"),
    init_xi: float = typer.Option(D.init_xi, help="initial Xi ~ init_xi * Uniform(0, 1)"),
    eval_samples: int = typer.Option(D.eval_samples, help="sampled sub-networks evaluated at the end (K)"),
    teacher_seed: int = typer.Option(D.teacher_seed, help="seed of the teacher network (--dataset teacher)"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the IDX files (else $MFPHYS_DATA_DIR, cache)"),
    out: Optional[Path] = typer.Option(None, help="run file to write (default: runs/<name>.nc with --name, else "
                                                  "runs/<dataset>-<arch>-<mode>-seed<seed>-<time>.nc)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or summary"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check everything, print the memory and disk estimates "
                                                         "and the file it would write, then stop"),
    name: Optional[str] = typer.Option(None, help="the run's name (attribute name); the file is runs/<name>.nc "
                                                  "unless --out"),
    tag: List[str] = typer.Option([], help="a tag stored with the run (attribute tags); repeatable"),
    note: Optional[str] = typer.Option(None, help="a free-text note stored with the run (attribute note)"),
    blas_threads: Optional[int] = typer.Option(None, help="BLAS threads (default: the BLAS library's own choice, "
                                                          "usually one per core)"),
):
    """Train spike-and-slab ensembles by gBP (or the BP baseline) and write one netCDF run file."""
    from mfphys import budget, store

    cfg = TrainConfig(
        dataset=dataset, layers=parse_ints(layers, "--layers"), n_train=n_train, n_test=n_test, epochs=epochs,
        batch_size=batch_size, lr=lr, lr_halve_every=lr_halve_every, activation=activation, replicas=replicas,
        seed=seed, mode=mode, backend=backend, dtype=dtype, weight_decay=weight_decay,
        decay_on=tuple(s for s in decay_on.split(",") if s), init_m_std=init_m_std, init_xi=init_xi,
        eval_samples=eval_samples, teacher_seed=teacher_seed,
    )
    name = check_name(name) if name is not None else None
    if blas_threads is not None and blas_threads < 1:
        raise MfphysError(f"--blas-threads must be >= 1, got {blas_threads}")
    estimate = budget.train_estimate(cfg)
    out = out or default_out(cfg, name)
    if dry_run:
        print_estimate(cfg, estimate, out)
    out = check_writable(out)
    budget.check_memory(estimate)
    check_free_space(out, estimate.disk)
    if dry_run:
        return
    data = load_data(cfg, data_dir)  # a data problem is one error line, before any progress bar
    if out.exists() and not quiet:
        err_console.print(f"note: {out} exists and will be replaced when this run finishes", markup=False)
    with blas_limit(blas_threads), make_progress() as progress:
        task = progress.add_task(f"{cfg.mode} {architecture(cfg.layers)}", total=cfg.epochs, status="",
                                 visible=not quiet)

        def on_epoch(rec):
            progress.update(task, advance=1, status=f"loss {np.mean(rec.train_loss):.4f}  "
                                                    f"test acc {np.mean(rec.test_acc):.4f}")

        result = run_training(cfg, dataset=data, callback=on_epoch)
    command = command_line()
    ds = store.run_to_dataset(result, command=command, name=name or out.stem, tags=tag, note=note)
    store.write_atomic(ds, out)
    if not quiet:
        console.print(summary_table(ds))
        last = min(10, ds.sizes["epoch"])
        console.print(f"test accuracy (mean-field, last epoch): {format_stat(ds.test_acc.isel(epoch=-1).values)}   "
                      f"mean of the last {last} epochs: "
                      f"{format_stat(ds.test_acc.isel(epoch=slice(-last, None)).mean('epoch').values)}   "
                      f"sampled sub-networks: {format_stat(ds.test_acc_sampled.values)}   "
                      f"vote: {format_stat(ds.test_acc_vote.values)}")
        console.print(f"{result.backend}, {result.timings['train_seconds']:.1f} s; wrote {out}")
