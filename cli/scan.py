"""``mfphys scan`` (a resumable grid of runs over depth x n_train, or steps x n_train for the recurrent
model) and ``mfphys scan-plot`` (its phase picture).

See docs/scans.md. Exit codes: 0 every cell done; 2 bad input (one line, nothing written);
4 the scan ran through but some cells failed, a divergence included (recorded in
``cells/<key>.failed.json``); 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.fileio import atomic_file, quote
from mfphys.train import TrainConfig

from . import families
from .common import (
    calibration_text,
    command_line,
    console,
    counts_text,
    err_console,
    given_options,
    given_values,
    make_progress,
    option_flag,
    stop_on_ctrl_c,
    user_errors,
)

#: exit code when the scan ran to the end but some cells failed
EXIT_FAILED_CELLS = 4

LIST = "; a comma-separated list scans it"


#: option defaults as help shows them: TrainConfig's, as in mfphys.scan.DEFAULTS (a test checks they
#: agree; importing the scan package here would slow down every `mfphys --help`)
_D = TrainConfig()


def _text(value) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


#: the scan options of each family, in the order that makes the grid's dimensions (and keys): the adapters'
SCAN_OPTIONS = families.adapter("ffn").SCAN_OPTIONS
RNN_SCAN_OPTIONS = families.adapter("rnn").SCAN_OPTIONS
#: the families a scan trains (the scan machinery's, mfphys.scan)
MODELS = ("ffn", "rnn")
FFN = "Feed-forward options"
RNN = "Recurrent options"
ADAPTIVE = "Adaptive scans"
CLUSTER = "Batch clusters (--cluster; docs/scans.md)"
#: the options of --cluster, by parameter name
CLUSTER_OPTIONS = ("jobs", "cores", "memory", "walltime", "queue", "account", "job_extra")


def _check_family_options(ctx: typer.Context, family: str) -> None:
    """Refuse, in one line, options given explicitly that the scan's family does not take."""
    every = {o for name in families.names() for o in families.adapter(name).SCAN_OPTIONS}
    bad = sorted(given_options(ctx, sorted(every)) - set(families.adapter(family).SCAN_OPTIONS))
    if bad:
        flags = ", ".join(option_flag(b) for b in bad)
        what = ("the recurrent model scans --steps x --n-train (options: "
                + ", ".join(option_flag(o) for o in RNN_SCAN_OPTIONS) + ")") if family == "rnn" \
            else "they are options of --family rnn"
        raise MfphysError(f"{flags} {'does' if len(bad) == 1 else 'do'} not apply to --family {family}: {what}")


def print_plan(plan, folder: Path) -> None:
    """What ``scan --dry-run`` prints."""
    from mfphys.fileio import mib

    def free(n):
        return "unknown" if n is None else mib(n)

    t = Table(title=f"scan {folder} (dry run: nothing was written)", box=None, show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("cells", f"{plan.total} ({plan.done} done, {len(plan.todo)} to train)")
    if plan.packed:  # docs/scans.md "Packed cells"
        t.add_row("packed groups", f"{len(plan.packed)} ({sum(plan.packed)} cells, each group one run)")
    t.add_row("runs at once", str(plan.parallel))
    t.add_row("memory of the runs at once", f"{mib(plan.memory)} ({free(plan.free_memory)} available)")
    t.add_row("disk for the cell files", f"{mib(plan.disk)} ({free(plan.free_disk)} free)")
    if plan.seconds is not None:
        from mfphys.budget import RUN_OVERHEAD_SECONDS, load_factor

        seconds = plan.seconds + RUN_OVERHEAD_SECONDS * load_factor()  # start-up and files, at the load of now
        t.add_row("estimated time", f"{seconds / 60:.1f} min ({calibration_text()})")
    console.print(t)


def _cluster_spec(ctx: typer.Context, kind: str | None, **options):
    """The ``mfphys.scan.ClusterSpec`` of ``--cluster`` and its options, or None; its options
    without ``--cluster`` are refused in one line."""
    if kind is None:
        given = [option_flag(k) for k in CLUSTER_OPTIONS if k in given_options(ctx)]
        if given:
            raise MfphysError(f"{', '.join(given)}: give --cluster slurm|pbs|sge too (batch jobs)")
        return None
    from mfphys.scan import ClusterSpec

    return ClusterSpec(kind.lower(), **options)


@user_errors
def scan(
    ctx: typer.Context,
    family: Optional[str] = typer.Option(None, "--family", "--model",
                                         help="model family: ffn (feed-forward: --depth x --n-train) or rnn "
                                              "(recurrent: --steps x --n-train); --model is the same option "
                                              "\\[default: ffn, or model in --config]"),
    depth: Optional[str] = typer.Option(None, help="hidden-layer counts to scan, e.g. 1,2,3,4", rich_help_panel=FFN),
    steps: Optional[str] = typer.Option(None, help="steps T per MNIST image to scan (T divides 784), "
                                                   "e.g. 7,14,28,56,112", rich_help_panel=RNN),
    preset: Optional[str] = typer.Option(None, help="the MNIST preset every cell starts from "
                                                    "(row_mnist or pixel_mnist) \\[default: row_mnist]",
                                         rich_help_panel=RNN),
    n: Optional[str] = typer.Option(None, "--n", help="hidden units N" + LIST + " \\[default: the preset's]",
                                    rich_help_panel=RNN),
    n_train: Optional[str] = typer.Option(None, help="training-set sizes to scan, e.g. 1000,10000,60000"),
    width: str = typer.Option("100", help="hidden-layer width" + LIST, rich_help_panel=FFN),
    input_dim: str = typer.Option("784", help="input size N0 for --dataset teacher", rich_help_panel=FFN),
    dataset: str = typer.Option(_D.dataset, help="mnist, fashion-mnist or teacher" + LIST, rich_help_panel=FFN),
    n_test: str = typer.Option("all", help="test patterns (first N)"),
    epochs: str = typer.Option(_text(_D.epochs), help="training epochs (--family rnn: the preset's unless given)"
                                                      + LIST),
    batch_size: str = typer.Option(_text(_D.batch_size), help="mini-batch size (--family rnn: the preset's unless "
                                                              "given)" + LIST),
    lr: str = typer.Option(_text(_D.lr), help="Adam learning rate (--family rnn: every learning rate of the "
                                              "preset; default the preset's)" + LIST),
    lr_halve_every: str = typer.Option(_text(_D.lr_halve_every), help="halve lr every N epochs; 0 = constant",
                                       rich_help_panel=FFN),
    activation: str = typer.Option(_D.activation, help="hidden activation" + LIST, rich_help_panel=FFN),
    mode: str = typer.Option(_D.mode, help="gbp or bp" + LIST),
    replicas: int = typer.Option(_D.replicas, "--replicas", "-R", help="seeds per cell, trained together; "
                                                                         "replica r uses seed + r"),
    seed: str = typer.Option(_text(_D.seed), help="base seed, the same in every cell"),
    backend: str = typer.Option(_D.backend, help="auto, numpy or cupy"),
    dtype: str = typer.Option(_D.dtype, help="float32 or float64"),
    weight_decay: str = typer.Option(_text(_D.weight_decay), help="decay added to the Adam step", rich_help_panel=FFN),
    decay_on: str = typer.Option(_text(_D.decay_on), help="parameters that get the decay", rich_help_panel=FFN),
    init_m_std: str = typer.Option("sqrt(2/784)", help="std of the initial m (a number)", rich_help_panel=FFN),
    init_xi: str = typer.Option(_text(_D.init_xi), help="initial Xi scale", rich_help_panel=FFN),
    eval_samples: str = typer.Option(_text(_D.eval_samples), help="sampled sub-networks evaluated at the end"),
    teacher_seed: str = typer.Option(_text(_D.teacher_seed), help="teacher network seed (--dataset teacher only)",
                                     rich_help_panel=FFN),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with \\[grid] and \\[fixed] tables "
                                                                 "(options given here override it)"),
    name: Optional[str] = typer.Option(None, help="scan name; the folder is runs/<name> (default name: "
                                                  "<dataset>-scan-<hash of the configuration>)"),
    out: Optional[Path] = typer.Option(None, help="scan folder, instead of runs/<name> (not with --name)"),
    workers: Optional[int] = typer.Option(None, help="run cells on a local Dask cluster of N single-threaded "
                                                     "processes (about one per core)"),
    scheduler: Optional[str] = typer.Option(None, help="run cells on the Dask cluster at this address "
                                                       "(tcp://host:8786)"),
    connect_timeout: float = typer.Option(5.0, help="seconds to wait for --scheduler"),
    cluster: Optional[str] = typer.Option(None, help="run cells on Dask workers in batch jobs of this scheduler: "
                                                     "slurm, pbs or sge (needs mfphys\\[cluster], and the scan "
                                                     "folder and data folder on a shared file system)",
                                          rich_help_panel=CLUSTER),
    jobs: int = typer.Option(1, help="batch jobs to submit", rich_help_panel=CLUSTER),
    cores: int = typer.Option(1, help="cores per job (one single-threaded worker each)", rich_help_panel=CLUSTER),
    memory: Optional[str] = typer.Option(None, help="memory per job, e.g. 16GB \\[default: twice the largest "
                                                    "cell's estimate per core]", rich_help_panel=CLUSTER),
    walltime: Optional[str] = typer.Option(None, help="time limit per job, e.g. 02:00:00", rich_help_panel=CLUSTER),
    queue: Optional[str] = typer.Option(None, help="queue (SLURM partition)", rich_help_panel=CLUSTER),
    account: Optional[str] = typer.Option(None, help="account to charge (SGE: project)", rich_help_panel=CLUSTER),
    job_extra: List[str] = typer.Option([], help="a line for the job script's header, e.g. --qos=normal; "
                                                 "repeatable", rich_help_panel=CLUSTER),
    blas_threads: int = typer.Option(1, help="BLAS threads per cell; 1 makes the numbers independent of "
                                             "where a cell ran (use --workers for speed)"),
    retry_failed: bool = typer.Option(True, help="train cells that failed before again"),
    pack: bool = typer.Option(True, "--pack/--no-pack", help="train cells that differ only in seed, lr (and its "
                              "schedule), weight decay, Adam's constants, initial scales or n_train as one "
                              "batched run per group (checkpointed, resumable), the same numbers and files as alone; "
                              "--no-pack trains every cell on its own (docs/scans.md, \"Packed cells\")"),
    reuse: List[Path] = typer.Option([], help="another scan folder whose finished cells (same key and "
                                              "configuration) are copied instead of trained; repeatable"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the IDX files (else $MFPHYS_DATA_DIR, cache)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars or summary"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check the options, print the cells, memory, disk and a "
                                                         "time estimate from a short calibration, then stop"),
    adaptive: bool = typer.Option(False, "--adaptive", help="sample continuous axes where --target changes most "
                                                            "(python-adaptive) instead of a grid",
                                  rich_help_panel=ADAPTIVE),
    axis: List[str] = typer.Option([], "--axis", help="a continuous axis NAME=LOW:HIGH[:log|linear], e.g. "
                                                      "n_train=500:60000:log or alpha=0.5:8 (teacher P/N0); "
                                                      "repeatable", rich_help_panel=ADAPTIVE),
    target: str = typer.Option("test_error", help="what to resolve: test_error, sampled_error, gap, sparsity, "
                                                  "frac_vip, entropy, any scalar the cells record (NAME:LAYER for "
                                                  "one layer); comma-separated for several",
                               rich_help_panel=ADAPTIVE),
    cells: Optional[int] = typer.Option(None, "--cells", help="budget: finished cells in the folder at the end",
                                        rich_help_panel=ADAPTIVE),
    loss_goal: Optional[float] = typer.Option(None, "--loss-goal", help="budget: stop once the learner's loss "
                                                                        "is at most this", rich_help_panel=ADAPTIVE),
):
    """Train a grid of runs over --depth x --n-train (and any list-valued option) into one resumable scan folder.

    With --family rnn the cells are recurrent runs (an MNIST preset read in --steps steps) over
    --steps x --n-train. Rerun the same command to finish an interrupted scan: cells already
    written are kept.
    """
    from mfphys import scan as scan_mod
    from mfphys.checks import check_scan_options

    check_scan_options(workers=workers, blas_threads=blas_threads, connect_timeout=connect_timeout)
    adaptive_given = sorted(given_options(ctx, ["axis", "target", "cells", "loss_goal"]))
    if adaptive_given and not adaptive:
        raise MfphysError(f"{', '.join(option_flag(o) for o in adaptive_given)}: options of an adaptive scan "
                          "(add --adaptive)")
    if family is not None and family not in MODELS:
        known = f"{', '.join(MODELS)}" + ("" if set(families.names()) <= set(MODELS) else
                                          " (the others have no scans yet)")
        raise MfphysError(f"unknown --family {quote(family)}: choose one of {known}")
    resolved = family or (scan_mod.config_model(config) if config is not None else None) or "ffn"
    if not families.adapter(resolved).SCAN_OPTIONS:  # a family from another package without its own adapter
        raise families.adapter(resolved).no_command_line(resolved, "scan it")
    _check_family_options(ctx, resolved)
    # only the options given on the command line: the others come from --config, else the defaults
    options = given_values(ctx, families.adapter(resolved).SCAN_OPTIONS)
    if options["replicas"] is not None and int(options["replicas"]) < 1:
        raise MfphysError(f"--replicas must be positive, got {replicas}")
    if name is not None and out is not None:
        raise MfphysError("give --name (the folder runs/<name>) or --out (any folder), not both")
    if adaptive:  # the options above, and the adaptive ones: cli/scan_adaptive.py
        from . import scan_adaptive

        return scan_adaptive.run(options=options, axis=axis, target=target, cells=cells, loss_goal=loss_goal,
                                 config=config, name=name, out=out, family=family, workers=workers,
                                 scheduler=scheduler, connect_timeout=connect_timeout, blas_threads=blas_threads,
                                 retry_failed=retry_failed, reuse=reuse, data_dir=data_dir, quiet=quiet,
                                 dry_run=dry_run, exit_failed=EXIT_FAILED_CELLS, print_plan=print_plan)
    spec = scan_mod.spec_from_options(options, config=config, name=name, model=family)
    folder = out if out is not None else Path("runs") / (spec.name or spec.default_name())
    if dry_run:
        print_plan(scan_mod.plan_scan(spec, folder, workers=workers, calibrate=True, blas_threads=blas_threads,
                                      pack=pack),
                   folder)
        return
    command = command_line()
    adapter = families.adapter(spec.model)
    batch = _cluster_spec(ctx, cluster, jobs=jobs, cores=cores, memory=memory, walltime=walltime, queue=queue,
                          account=account, job_extra=tuple(job_extra))

    # the bars appear once the checks have passed (event "begin"): bad input gives one line only
    progress = make_progress(quiet=quiet)
    cells_task = progress.add_task(folder.name, total=len(spec.cells()), status="")
    cell_task = progress.add_task("", total=1, status="", visible=False)
    last: dict = {}
    # cells trained in this process stop after the epoch in progress on the first Ctrl-C, with a
    # checkpoint the next run resumes from; on Dask the first Ctrl-C stops at once
    in_process = workers is None and scheduler is None
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(stop_on_ctrl_c("stopping after this epoch of the cell in progress "
                                                  "(Ctrl-C again to stop at once)")) if in_process else None

        def on_event(ev: scan_mod.ScanEvent):
            if ev.kind == "begin":
                stack.enter_context(progress)
            c = ev.counts
            last.update(counts=dict(c), cell=ev.cell if ev.cell is not None else last.get("cell"))
            progress.update(cells_task, completed=c["done"] + c["failed"], status=counts_text(c))
            if ev.kind == "cell_start":
                if stop is not None and stop():
                    raise KeyboardInterrupt
                progress.reset(cell_task, total=ev.cell.config.epochs, description=f"  {ev.cell.key}",
                               status="loading data", visible=True)
            elif ev.kind == "epoch":
                progress.update(cell_task, advance=1, status=adapter.epoch_status(ev.record))
                if stop is not None and stop():
                    from mfphys.runfile import StopAfterEpoch

                    raise StopAfterEpoch
            elif ev.kind in ("cell_done", "cell_failed", "end"):
                progress.update(cell_task, visible=False)

        try:
            report = scan_mod.run_scan(spec, folder, workers=workers, scheduler=scheduler, callback=on_event,
                                       data_dir=data_dir, retry_failed=retry_failed, command=command,
                                       connect_timeout=connect_timeout, blas_threads=blas_threads, reuse=reuse,
                                       cluster=batch, pack=pack)
        except KeyboardInterrupt as exc:
            progress.stop()
            err_console.print(interrupted_text(folder, last, exc, command), markup=False)
            raise typer.Exit(130) from None
    if not quiet:
        ds = scan_mod.open_scan(folder)
        console.print(adapter.scan_summary(ds))
        reused = f", {report.reused} reused" if report.reused else ""
        console.print(f"{report.done}/{report.total} cells done ({report.trained} trained now, {report.skipped} "
                      f"kept{reused}), {report.failed} failed; {report.seconds:.1f} s; {folder}")
    if report.failed:
        for key, error in report.failed_cells:
            err_console.print(f"cell {key} failed: {error}", markup=False)
        raise typer.Exit(EXIT_FAILED_CELLS)


def mean_over_seeds(ds):
    """A scan's ``seed`` axis averaged as its replicas are (seeds are independent copies of a cell):
    every numeric variable's mean over the seeds (NaN where a seed's cell is not done, shown as
    "—"), a cell's status ``done`` when all its seeds are (else the first other status), and the
    number of seeds in the ``seeds_averaged`` attribute (the figure's title says it)."""
    import numpy as np

    n = ds.sizes["seed"]
    status = ds.status.transpose(..., "seed")
    st = status.values
    other = np.take_along_axis(st, (st != "done").argmax(-1)[..., None], -1)[..., 0]
    merged = np.where((st == "done").all(-1), "done", other)
    numeric = [v for v in ds.data_vars if "seed" in ds[v].dims and ds[v].dtype.kind in "fiub"]
    out = ds.drop_vars([v for v in ds.data_vars if "seed" in ds[v].dims])
    out = out.assign({v: ds[v].mean("seed", skipna=False) for v in numeric})
    out["status"] = (status.dims[:-1], merged)
    out = out.drop_vars("seed", errors="ignore")
    out.attrs = {**ds.attrs, "seeds_averaged": n}
    return out


def interrupted_text(folder: Path, last: dict, exc: BaseException, command: str) -> str:
    """What a Ctrl-C on a scan says: the cells done, what the cell in progress kept, and the
    command (as typed, so it works from the same folder) that continues the scan."""
    from mfphys.runfile import Interrupted

    c = last.get("counts") or {}
    text = "interrupted"
    if c:
        text += f": {c.get('done', 0)} of {c.get('total', '?')} cells done"
        text += f", {c['failed']} failed" if c.get("failed") else ""
    cell = last.get("cell")
    if isinstance(exc, Interrupted) and cell is not None:
        text += f"; cell {cell.key} keeps its checkpoint after epoch {exc.epoch} of {exc.epochs}"
        if c.get("running", 0) > 1:  # a packed group: every cell of it checkpointed together
            text += f", as do the {c['running'] - 1} other cells packed with it"
    elif cell is not None and (folder / "cells" / f"{cell.key}.partial.nc").exists():
        text += f"; cell {cell.key} resumes from its last checkpoint"
    return text + f"; continue with: {command}"


#: what ``scan-plot`` shows by default: the phase-like picture of docs/scans.md
PLOT_VARS = "test_error,frac_uip,frac_vip,entropy"


@user_errors
def scan_plot(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="scan folder (runs/<name>)"),
    out: Optional[Path] = typer.Option(None, help="PNG to write (default: <folder>/phase.png)"),
    variables: str = typer.Option(PLOT_VARS, "--vars", help="variables to show, comma-separated"),
    layer: Optional[int] = typer.Option(None, help="show this layer of per-layer variables: 1, 2, ... from the "
                                                   "inputs, -1 (the output layer), -2, ... from the output "
                                                   "(default: the connection-weighted mean over the network)"),
    all_inputs: bool = typer.Option(False, "--all-inputs", help="layer 1 over all its connections, dead "
                                                                "inputs included (default: live inputs only)"),
    sel: List[str] = typer.Option([], help="pick one value of another scanned option, e.g. --sel lr=0.1"),
    matrix: Optional[str] = typer.Option(None, help="recurrent scans: the matrix whose order parameters are shown, "
                                                    "input, recurrent or output \\[default: recurrent]"),
    diagonal: bool = typer.Option(True, "--diagonal/--no-diagonal", help="recurrent scans: count the recurrent "
                                                                          "matrix's diagonal (self-connections)"),
    level: Optional[float] = typer.Option(None, help="adaptive scans: draw the boundary where the variable "
                                                     "crosses this level (e.g. sparsity 0.05)"),
):
    """Draw a scan's phase-like picture: heatmaps over depth x n_train (mean over replicas and seeds).

    Layer 1's order parameters count the connections from live inputs only (those that vary
    over the training set; docs/order-parameters.md), unless --all-inputs. A recurrent scan
    (--family rnn) is drawn over steps x n_train, with one matrix's order parameters (--matrix).
    """
    from mfphys import scan as scan_mod

    from . import figures

    ds = scan_mod.open_scan(folder)
    if "adaptive" in ds.attrs:  # sampled cells over the interpolated picture: cli/scan_adaptive.py
        from . import scan_adaptive

        return scan_adaptive.plot(ds, folder, out=out, variables=variables if "variables" in given_options(ctx)
                                  else None, layer=layer, all_inputs=all_inputs, matrix=matrix, diagonal=diagonal,
                                  sel=sel, level=level)
    if level is not None:
        raise MfphysError("--level draws a boundary over an adaptive scan's interpolated picture; "
                          f"{folder} is a grid scan")
    rnn = ds.attrs.get("model") == "rnn"

    given = given_options(ctx).__contains__

    if rnn:
        bad = [flag for param, flag in (("layer", "--layer"), ("all_inputs", "--all-inputs")) if given(param)]
        if bad:
            raise MfphysError(f"{', '.join(bad)}: {folder} is a recurrent scan; pick a matrix with --matrix "
                              "input|recurrent|output")
        from mfphys.rnn.model import MATRICES

        matrix = matrix or "recurrent"
        if matrix not in MATRICES:
            raise MfphysError(f"--matrix {quote(matrix)}: choose one of {', '.join(MATRICES)}")
    else:
        bad = [flag for param, flag in (("matrix", "--matrix"), ("diagonal", "--no-diagonal")) if given(param)]
        if bad:
            raise MfphysError(f"{', '.join(bad)}: only a recurrent scan (mfphys scan --family rnn) has matrices; "
                              f"{folder} is feed-forward (pick a layer with --layer)")
    plane = ("steps" if rnn else "depth", "n_train")
    for item in sel:
        key, _, value = item.partition("=")
        if key not in ds.status.dims or key in plane:
            raise MfphysError(f"--sel {quote(item)}: {quote(key)} is not another scanned option of {folder}")
        try:
            # read the value as the scan read its grid: type(x)(text) would make "false" True
            ds = ds.sel({key: scan_mod.coerce_option(key, value, f"--sel {quote(item)}", "rnn" if rnn else "ffn")})
        except (KeyError, ValueError, MfphysError):
            raise MfphysError(f"--sel {quote(item)}: {key} takes one of "
                              f"{', '.join(map(str, ds[key].values))}") from None
    cell_status = ds.status  # every cell, before the seeds are averaged
    if "seed" in ds.status.dims and ds.sizes["seed"] > 1:
        ds = mean_over_seeds(ds)
    extra = [d for d in ds.status.dims if d not in plane and ds.sizes[d] > 1]
    if extra:
        raise MfphysError(f"{folder} also scans {', '.join(extra)}: pick one value with --sel {extra[0]}=...")
    single = [d for d in ds.status.dims if d not in plane]
    if single:
        ds = ds.squeeze(single, drop=True)
    if not (ds.status == "done").any():
        raise MfphysError(f"{folder}: no cell is done yet, nothing to draw (rerun its mfphys scan to fill it)")
    names = [v for v in (s.strip() for s in variables.split(",")) if v]
    unknown = [v for v in names if v not in ds]
    if unknown or not names:
        raise MfphysError(f"--vars: unknown variable(s) {', '.join(unknown) or '(none given)'}; e.g. {PLOT_VARS}")
    L = ds.sizes.get("layer", 0)
    if layer is not None and not rnn and not (1 <= layer <= L or -L <= layer <= -1):
        raise MfphysError(f"--layer must be in 1..{L} (from the inputs) or -{L}..-1 (-1 = the output layer), "
                          f"got {layer}")
    if not (ds.status == "done").any():
        raise MfphysError(f"{folder}: no cell is done yet, nothing to draw")
    out = out or Path(folder) / "phase.png"
    if out.suffix.lower() != ".png":
        raise MfphysError(f"--out {out}: give a file name ending in .png")
    fig = figures.phase_figure(ds, names, layer=layer, live=not all_inputs, matrix=matrix or "recurrent",
                               diagonal=diagonal)
    with atomic_file(out) as tmp:  # like every file we write: a reader never sees half a PNG
        fig.savefig(tmp, dpi=120, format="png")
    counts = {s: int((cell_status == s).sum()) for s in ("done", "failed", "running", "pending")}
    console.print(f"wrote {out} ({counts['done']} cell(s) done, {counts['pending'] + counts['running']} not yet, "
                  f"{counts['failed']} failed)")
