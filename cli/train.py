"""``mfphys train``: train one architecture, many seeds at once, and write one run file."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.fileio import check_free_space, check_writable
from mfphys.model import architecture
from mfphys.order import display_name
from mfphys.runfile import CHECKPOINT_EVERY, CHECKPOINT_SECONDS
from mfphys.stats import format_stat
from mfphys.train import DYNAMICS_EVERY, PROTOCOLS, TrainConfig, load_data

from .common import (
    blas_limit,
    command_line,
    console,
    err_console,
    make_progress,
    parse_ints,
    run_path,
    stop_on_ctrl_c,
    user_errors,
)

D = TrainConfig()


def default_out(cfg: TrainConfig, name: str | None = None) -> Path:
    """``runs/<name>.nc``, or a name that tells runs apart (data, architecture, mode, seed, time to the
    second) made unique with ``-2``, ``-3``, ...: a default name never replaces an existing file."""
    return run_path(f"{cfg.dataset}-{architecture(cfg.layers)}-{cfg.mode}-seed{cfg.seed}", name)


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
    console.print(f"{cfg.mode} {architecture(cfg.layers)} on {cfg.dataset}: {cfg.replicas} replica(s), "
                  f"{cfg.epochs} epochs of {cfg.n_train} patterns in batches of {cfg.batch_size}, {cfg.dtype}")
    estimate_table(estimate, out)


def estimate_table(estimate, out: Path) -> None:
    """The memory by part against what is free now, and the run file's size against free disk."""
    from mfphys.budget import available_memory
    from mfphys.fileio import free_bytes, mib

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
    ctx: typer.Context,
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
    adam_reset: str = typer.Option(D.adam_reset, help="restart Adam's moments and step count: never (later "
                                                      "revision) or epoch (every epoch, the 2020 code)"),
    protocol: Optional[str] = typer.Option(None, help="preset of the paper's code: 2020 (200 epochs, lr halved "
                                                      "every 20, Adam reset every epoch, decay on m,xi) or revised "
                                                      "(100, constant lr, no reset, decay on pi,m,xi); options "
                                                      "given explicitly win"),
    resume: Optional[Path] = typer.Option(None, help="continue this run file (interrupted, or finished: "
                                                     "with more --epochs); its configuration is used"),
    checkpoint_every: int = typer.Option(CHECKPOINT_EVERY, help="rewrite the run file every N epochs (0: not "
                                                                "by epochs)"),
    checkpoint_seconds: float = typer.Option(CHECKPOINT_SECONDS, help="rewrite the run file once S seconds "
                                                                      "passed since the last write (0: not by time)"),
    dynamics_every: int = typer.Option(DYNAMICS_EVERY, help="record the order parameters every K epochs, "
                                                            "besides epochs 0, 1, 2, 5, 10, 20, 50, ... and the "
                                                            "last (0: those only)"),
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
    model: str = typer.Option("ffn", help="ffn (feed-forward, the options above) or rnn (recurrent, "
                                          "docs/model-rnn.md: --preset and a few options)"),
    preset: Optional[str] = typer.Option(None, help="--model rnn: row_mnist (default), pixel_mnist or "
                                                    "multisensory"),
):
    """Train spike-and-slab ensembles by gBP (or the BP baseline) and write one netCDF run file.

    The file exists from the start (status running) and is rewritten at checkpoints; Ctrl-C saves
    the last epoch (status interrupted, exit 130). The same command again, or --resume FILE,
    continues it; a finished run continues to more --epochs. --model rnn trains a recurrent preset
    instead (docs/model-rnn.md section 9), with the same checkpoints and --resume.
    """
    from mfphys import budget, runfile, store

    from . import rnn as rnn_cmd

    if model not in ("ffn", "rnn"):
        raise MfphysError(f"unknown --model {model!r}: choose ffn (feed-forward) or rnn (recurrent)")
    given = {k for k in ctx.params if getattr(ctx.get_parameter_source(k), "name", "DEFAULT")
             not in ("DEFAULT", "DEFAULT_MAP")}
    if resume is not None and "model" not in given and resume.is_file():  # --resume FILE: the file's model
        with contextlib.suppress(MfphysError):  # else plan_run says what is wrong with the file
            model = store.model_of(store.read_attrs(resume))
    rnn_cmd.check_options(given, model)
    if model == "rnn":  # the recurrent presets (cli/rnn.py), with the same run-file life cycle
        rnn_cmd.train(preset, dict(
            epochs=epochs, replicas=replicas, seed=seed, n_train=n_train, n_test=n_test, backend=backend, dtype=dtype,
            mode=mode, eval_samples=eval_samples, blas_threads=blas_threads), given,
            out=out, name=check_name(name) if name is not None else None, tags=tag, note=note, data_dir=data_dir,
            quiet=quiet, resume=resume, checkpoint_every=checkpoint_every, checkpoint_seconds=checkpoint_seconds,
            dynamics_every=dynamics_every, dry_run=dry_run)
        return
    values = dict(
        dataset=dataset, layers=parse_ints(layers, "--layers"), n_train=n_train, n_test=n_test, epochs=epochs,
        batch_size=batch_size, lr=lr, lr_halve_every=lr_halve_every, activation=activation, replicas=replicas,
        seed=seed, mode=mode, backend=backend, dtype=dtype, weight_decay=weight_decay,
        decay_on=tuple(s for s in decay_on.split(",") if s), init_m_std=init_m_std, init_xi=init_xi,
        eval_samples=eval_samples, teacher_seed=teacher_seed, adam_reset=adam_reset,
    )
    name = check_name(name) if name is not None else None
    if blas_threads is not None and blas_threads < 1:
        raise MfphysError(f"--blas-threads must be >= 1, got {blas_threads}")
    if resume is not None and out is not None and out != resume:
        raise MfphysError(f"--resume writes to the file it continues ({resume}): leave out --out {out}")
    cfg = make_config(values, protocol, resume, ctx)
    out = resume or out or default_out(cfg, name)
    plan = runfile.plan_run(out, cfg, resume=resume is not None)
    if plan.action == "done":
        console.print(f"{out} is done ({cfg.epochs} epochs): nothing to train (give more --epochs to continue it)")
        return
    estimate = budget.train_estimate(cfg)
    if dry_run:
        print_estimate(cfg, estimate, out)
    out = check_writable(out)
    budget.check_memory(estimate)
    check_free_space(out, estimate.disk)
    if dry_run:
        return
    policy = runfile.CheckpointPolicy(checkpoint_every, checkpoint_seconds).validate()
    done = plan.state.epoch if plan.state is not None else 0
    data = load_data(cfg, data_dir)  # a data problem is one error line, before any progress bar
    old = plan.attrs or {}  # a resumed run keeps its labels unless new ones are given
    labels = store.label_attrs(name or old.get("name") or out.stem, tag or json.loads(old.get("tags", "[]")),
                               note or old.get("note"))
    with blas_limit(blas_threads), make_progress() as progress, stop_on_ctrl_c() as stop:
        task = progress.add_task(f"{cfg.mode} {architecture(cfg.layers)}", total=cfg.epochs, completed=done,
                                 status="", visible=not quiet)

        def on_start(state):
            if not quiet:
                what = {"new": "writing", "resume": f"resuming at epoch {done}:",
                        "extend": f"continuing from epoch {done}:"}[plan.action]
                console.print(f"{what} {out}; watch it: mfphys tui {out.parent}")

        def on_epoch(rec):
            progress.update(task, advance=1, status=f"loss {np.mean(rec.train_loss):.4f}  "
                                                    f"test acc {np.mean(rec.test_acc):.4f}")

        try:
            result = runfile.train_run(plan, policy=policy, dynamics_every=dynamics_every, dataset=data,
                                       callback=on_epoch, stop=stop, on_start=on_start, command=command_line(),
                                       attrs=labels)
        except runfile.Interrupted as exc:
            progress.stop()
            err_console.print(f"interrupted after epoch {exc.epoch} of {exc.epochs}: {out} holds it (status "
                              f"interrupted); continue with: mfphys train --resume {out}", markup=False)
            raise typer.Exit(130) from None
    if not quiet:
        ds = store.open_run(out)
        console.print(summary_table(ds))
        last = min(10, ds.sizes["epoch"])
        console.print(f"test accuracy (mean-field, last epoch): {format_stat(ds.test_acc.isel(epoch=-1).values)}   "
                      f"mean of the last {last} epochs: "
                      f"{format_stat(ds.test_acc.isel(epoch=slice(-last, None)).mean('epoch').values)}   "
                      f"sampled sub-networks: {format_stat(ds.test_acc_sampled.values)}   "
                      f"vote: {format_stat(ds.test_acc_vote.values)}")
        console.print(f"{result.backend}, {result.timings['train_seconds']:.1f} s; wrote {out}")


def make_config(values: dict, protocol: str | None, resume: Path | None, ctx=None) -> TrainConfig:
    """The TrainConfig of the options: the options given on the command line win over a
    ``--protocol`` preset, which wins over the defaults, or, with ``--resume``, over the file's
    configuration (so ``--resume RUN.nc`` alone continues the run as it was made). ``ctx`` (the
    command's context) tells which options were given; without it, all are."""
    from mfphys import store

    if protocol is not None and protocol not in PROTOCOLS:
        raise MfphysError(f"unknown --protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    given = {k for k in values if ctx is None or getattr(ctx.get_parameter_source(k), "name", "") != "DEFAULT"}
    base = values
    if resume is not None:
        if not resume.exists():
            raise MfphysError(f"--resume {resume}: no such file")
        try:
            attrs = store.read_attrs(resume)
            store.file_kind(attrs, expect="run", where=str(resume))
        except MfphysError as exc:
            raise MfphysError(f"{exc}; nothing was written") from None
        if store.model_of(attrs) != "ffn":
            raise MfphysError(f"--resume {resume} is a recurrent run file: continue it with --model rnn; "
                              f"nothing was written")
        base = dataclasses.asdict(store.config_from_attrs(attrs, resume))
    preset = {k: v for k, v in PROTOCOLS.get(protocol, {}).items() if k not in given}
    return TrainConfig(**{**base, **preset, **{k: values[k] for k in given}})
