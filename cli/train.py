"""``mfphys train``: train one architecture, many seeds at once, and write one run file.

One life cycle for every model family (plan the run file, estimate and refuse, ``--dry-run``,
progress, Ctrl-C, summary); the family's adapter (cli/families/) supplies its options,
configuration, file name and summary.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import List, Optional

import typer

from mfphys import registry
from mfphys.errors import MfphysError
from mfphys.fileio import quote
from mfphys.model import architecture
from mfphys.train import DYNAMICS_EVERY, TrainConfig

from . import families
from .common import (
    blas_limit,
    command_line,
    console,
    err_console,
    given_options,
    is_tty,
    make_progress,
    option_flag,
    stop_on_ctrl_c,
    user_errors,
)

D = TrainConfig()
#: mfphys.runfile's checkpoint defaults, as help shows them (a test checks they agree; importing
#: mfphys.runfile here would load xarray and pandas for every `mfphys --help`)
CHECKPOINT_EVERY = 0
CHECKPOINT_SECONDS = 10.0
#: the options every family reads (the families' own are in their adapters' OPTIONS)
COMMON = ("family", "n_train", "n_test", "epochs", "replicas", "seed", "mode", "backend", "dtype", "eval_samples",
          "resume", "checkpoint_every", "checkpoint_seconds", "dynamics_every", "data_dir", "out", "quiet", "dry_run",
          "name", "tag", "note", "blas_threads")
FFN = "Feed-forward options"
RNN = "Recurrent options"
#: what a recurrent run does with an option whose default help shows is the feed-forward one
PRESETS = " (--family rnn: the preset's unless given)"


def check_name(name: str) -> str:
    """A run name is a file name: ``runs/<name>.nc``."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise MfphysError(f"--name {quote(name)}: give a plain file name (no '/', not starting with '.'), "
                          f"the run is written to runs/<name>.nc")
    return name.removesuffix(".nc")


@user_errors
def train(
    ctx: typer.Context,
    family: str = typer.Option(registry.DEFAULT, "--family", "--model",
                               help="model family: ffn (the feed-forward network, docs/model.md) or rnn (the "
                                    "recurrent one, docs/model-rnn.md); --model is the same option"),
    dataset: str = typer.Option(D.dataset, help="mnist, fashion-mnist or teacher (teacher-student, no download)",
                                rich_help_panel=FFN),
    layers: str = typer.Option(architecture(D.layers).replace("-", ","), help="layer widths, input first",
                               rich_help_panel=FFN),
    n_train: int = typer.Option(D.n_train, help="train on the first N training patterns" + PRESETS),
    n_test: Optional[int] = typer.Option(None, help="evaluate on the first N test patterns (default: all)"),
    epochs: int = typer.Option(D.epochs, help="training epochs" + PRESETS),
    batch_size: int = typer.Option(D.batch_size, help="mini-batch size", rich_help_panel=FFN),
    lr: float = typer.Option(D.lr, help="Adam learning rate", rich_help_panel=FFN),
    lr_halve_every: int = typer.Option(D.lr_halve_every, help="halve lr every N epochs (20 = the paper's 2020 "
                                                              "code, with --epochs 200); 0 = constant",
                                       rich_help_panel=FFN),
    activation: str = typer.Option(D.activation, help="hidden-unit activation: relu, tanh, sigmoid, softplus, linear",
                                   rich_help_panel=FFN),
    replicas: int = typer.Option(D.replicas, "--replicas", "-R", help="independent seeds trained together; "
                                                                      "replica r uses seed + r" + PRESETS),
    seed: int = typer.Option(D.seed, help="base random seed"),
    mode: str = typer.Option(D.mode, help="gbp (spike-and-slab ensemble) or bp (ordinary network, pi = Xi = 0)"),
    backend: str = typer.Option(D.backend, help="auto (CuPy if a GPU works, else NumPy), numpy or cupy"),
    dtype: str = typer.Option(D.dtype, help="float32 or float64"),
    weight_decay: float = typer.Option(D.weight_decay, help="decay added to the Adam step", rich_help_panel=FFN),
    decay_on: str = typer.Option(",".join(D.decay_on), help="parameters that get the decay (m,xi: 2020 code; "
                                                            "pi,m,xi: later revision)", rich_help_panel=FFN),
    init_m_std: float = typer.Option(D.init_m_std, help="std of the initial m", rich_help_panel=FFN),
    init_xi: float = typer.Option(D.init_xi, help="initial Xi ~ init_xi * Uniform(0, 1)", rich_help_panel=FFN),
    eval_samples: int = typer.Option(D.eval_samples, help="sampled sub-networks evaluated at the end (K)"
                                                          + PRESETS),
    teacher_seed: int = typer.Option(D.teacher_seed, help="seed of the teacher network (--dataset teacher)",
                                     rich_help_panel=FFN),
    adam_reset: str = typer.Option(D.adam_reset, help="restart Adam's moments and step count: never (later "
                                                      "revision) or epoch (every epoch, the 2020 code)",
                                   rich_help_panel=FFN),
    protocol: Optional[str] = typer.Option(None, help="preset of the paper's code: 2020 (200 epochs, lr halved "
                                                      "every 20, Adam reset every epoch, decay on m,xi) or revised "
                                                      "(100, constant lr, no reset, decay on pi,m,xi); options "
                                                      "given explicitly win", rich_help_panel=FFN),
    resume: Optional[Path] = typer.Option(None, help="continue this run file (interrupted, or finished: "
                                                     "with more --epochs); its family and configuration are used"),
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
    preset: Optional[str] = typer.Option(None, help="row_mnist (default), pixel_mnist or multisensory "
                                                    "(docs/model-rnn.md section 7)", rich_help_panel=RNN),
):
    """Train spike-and-slab ensembles by gBP (or the BP baseline) and write one netCDF run file.

    The file exists from the start (status running) and is rewritten at checkpoints; Ctrl-C saves
    the last epoch (status interrupted, exit 130). The same command again, or --resume FILE,
    continues it; a finished run continues to more --epochs. --family rnn trains a recurrent preset
    instead (docs/model-rnn.md section 9), with the same checkpoints and --resume.
    """
    # the parameters as typer converted them (ctx.params holds click's values: paths as text)
    values = {k: v for k, v in locals().items() if k != "ctx"}
    values["name"] = check_name(name) if name is not None else None
    given = given_options(ctx)
    family = resumed_family(family, resume, given)
    adapter = families.adapter(family)
    check_options(adapter, given)
    run(adapter, values, given)


def resumed_family(family: str, resume: Path | None, given: set) -> str:
    """``--resume FILE`` without ``--family``: the file's family (else the one given or the default)."""
    if resume is None or "family" in given or not resume.is_file():
        return family
    from mfphys import store

    with contextlib.suppress(MfphysError):  # else the life cycle says what is wrong with the file
        return store.model_of(store.read_attrs(resume))
    return family


def check_options(adapter, given: set) -> None:
    """Refuse, in one line, options given explicitly that the family does not read."""
    bad = sorted(given - set(COMMON) - set(adapter.OPTIONS))
    if not bad:
        return
    owners = {families.owner(b) for b in bad} - {None}
    whose = f": {'it is an option' if len(bad) == 1 else 'they are options'} of --family {'/'.join(sorted(owners))}" \
        if owners else ""
    raise MfphysError(f"{', '.join(option_flag(b) for b in bad)} {'does' if len(bad) == 1 else 'do'} not apply to "
                      f"--family {adapter.NAME}{whose} (mfphys train --help shows each family's options in a panel "
                      f"of their own)")


def resumed_config(adapter, resume: Path):
    """The attributes and configuration of the run file ``resume`` (``--resume``), or one line."""
    from mfphys import store
    from mfphys.fileio import check_readable

    check_readable(resume, what="--resume")
    try:
        attrs = store.read_attrs(resume)
        store.file_kind(attrs, expect="run", where=str(resume))
        family = store.model_of(attrs)
    except MfphysError as exc:
        raise MfphysError(f"{exc}; nothing was written") from None
    if family != adapter.NAME:
        title = families.adapter(family).TITLE if family in families.names() else family
        raise MfphysError(f"--resume {resume} is a {title} run file: continue it with --family {family} (or "
                          f"without --family); nothing was written")
    return attrs, store.config_from_attrs(attrs, resume)


def run(adapter, values: dict, given: set) -> None:
    """The life cycle of a run: configuration, plan, estimate, dry run, training with progress and
    Ctrl-C, summary."""
    from mfphys import runfile
    from mfphys.checks import check_blas_threads, check_dynamics_every
    from mfphys.fileio import claim_file

    resume, out = values["resume"], values["out"]
    check_blas_threads(values["blas_threads"])  # every count is bounded before any work (mfphys.checks)
    check_dynamics_every(values["dynamics_every"])
    if resume is not None and out is not None and out != resume:
        raise MfphysError(f"--resume writes to the file it continues ({resume}): leave out --out {out}")
    policy = runfile.CheckpointPolicy(values["checkpoint_every"], values["checkpoint_seconds"]).validate()
    attrs = base = None
    if resume is not None:
        attrs, base = resumed_config(adapter, resume)
    values = adapter.resolve(values, given, attrs)
    cfg = adapter.config(values, given, base)
    out = resume or (Path(out) if out is not None else adapter.default_out(cfg, values["name"], values))
    # one writer per run file: the claim is held from the plan to the last write (mfphys.fileio.claim_file)
    with claim_file(out):
        _run_claimed(adapter, values, cfg, out, resume, policy)


def _run_claimed(adapter, values: dict, cfg, out: Path, resume, policy) -> None:
    from mfphys import budget, runfile
    from mfphys.fileio import check_free_space, check_writable

    plan = runfile.plan_run(out, cfg, resume=resume is not None)
    if plan.action == "done":
        console.print(f"{out} is done ({(plan.attrs or {}).get('epochs_done', cfg.epochs)} epochs): nothing to "
                      f"train (give more --epochs to continue it)")
        return
    estimate = adapter.estimate(cfg)
    if values["dry_run"]:
        from .tables import estimate_table, time_line

        console.print(adapter.describe(cfg, values))
        estimate_table(estimate, out)
    out = check_writable(out)
    budget.check_memory(estimate, **({"hint": adapter.MEMORY_HINT} if adapter.MEMORY_HINT else {}))
    check_free_space(out, estimate.disk)
    if values["dry_run"]:
        with blas_limit(values.get("blas_threads")):  # timed only once it is known to fit
            line = time_line(cfg)
        if line:
            console.print(line, markup=False, highlight=False)
        return
    data = adapter.load_data(cfg, values["data_dir"])  # a data problem is one error line, before any progress bar
    result = train_with_progress(adapter, values, cfg, plan, out, policy, data)
    if not values["quiet"]:
        summarize(adapter, out, result)


def labels(values: dict, plan, out: Path) -> dict:
    """The run's name, tags and note: a resumed run keeps its own unless new ones are given."""
    from mfphys import store

    old = plan.attrs or {}
    return store.label_attrs(values["name"] or old.get("name") or out.stem,
                             values["tag"] or json.loads(old.get("tags", "[]")), values["note"] or old.get("note"))


def train_with_progress(adapter, values: dict, cfg, plan, out: Path, policy, data):
    """Train ``plan`` under a progress bar; the first Ctrl-C saves the epoch and exits 130 with the resume hint."""
    from mfphys import runfile

    quiet = values["quiet"]
    done = plan.state.epoch if plan.state is not None else 0
    attrs = {**labels(values, plan, out), **adapter.run_attrs(values)}
    with adapter.running(values), make_progress() as progress, stop_on_ctrl_c() as stop:
        task = progress.add_task(adapter.label(cfg, values), total=cfg.epochs, completed=done, status="",
                                 visible=not quiet)

        def on_start(state):
            if not quiet:
                what = {"new": "writing", "resume": f"resuming at epoch {done}:",
                        "extend": f"continuing from epoch {done}:"}[plan.action]
                # on a terminal the bar's own console prints above the bar (stdout would share its line)
                (progress.console if is_tty() and not quiet else console).print(
                    f"{what} {out}; watch it: mfphys tui {out.parent}")

        def on_epoch(rec):
            progress.update(task, completed=rec.epoch, status=adapter.epoch_status(rec))

        try:
            return runfile.train_run(plan, policy=policy, dynamics_every=values["dynamics_every"], dataset=data,
                                     callback=on_epoch, stop=stop, on_start=on_start, command=command_line(),
                                     attrs=attrs)
        except runfile.Interrupted as exc:
            progress.stop()
            if exc.evaluating:
                err_console.print(f"interrupted during the final evaluation: {out} holds all {exc.epoch} epochs "
                                  f"(status interrupted); finish the evaluation with: mfphys train --resume {out}",
                                  markup=False)
            else:
                err_console.print(f"interrupted after epoch {exc.epoch} of {exc.epochs}: {out} holds it (status "
                                  f"interrupted); continue with: mfphys train --resume {out}", markup=False)
            raise typer.Exit(130) from None


def summarize(adapter, out: Path, result) -> None:
    """The family's end-of-run tables and lines, then the backend, the time and the file."""
    from mfphys import store

    for item in adapter.summary(store.open_run(out), out):
        console.print(item)
    console.print(f"{result.backend}, {adapter.timings(result)}; wrote {out}")
