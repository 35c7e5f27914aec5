"""``mfphys scan --adaptive`` and ``mfphys scan-plot`` of an adaptive scan (docs/scans.md "Adaptive scans").

The options are those of ``mfphys scan`` (cli/scan.py hands them over) plus the continuous axes
(``--axis NAME=LOW:HIGH[:log|linear]``), the ``--target`` and the budget (``--cells``,
``--loss-goal``). python-adaptive is imported by the library only once such a scan runs.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.fileio import atomic_file

from .common import command_line, console, counts_text, err_console, make_progress


def run(*, options: dict, axis: list[str], target: str, cells: Optional[int], loss_goal: Optional[float],
        config, name, out, family, workers, scheduler, connect_timeout, blas_threads, retry_failed, reuse,
        data_dir, quiet: bool, dry_run: bool, exit_failed: int, print_plan) -> None:
    """The adaptive branch of ``mfphys scan``."""
    from mfphys import scan as scan_mod

    from . import families

    if reuse:
        raise MfphysError("--reuse copies grid cells; an adaptive scan reuses the cells of its own folder only")
    if cells is None and loss_goal is None:
        raise MfphysError("--adaptive needs a budget: --cells N (cells in the folder at the end) and/or "
                          "--loss-goal L (python-adaptive's loss)")
    spec = scan_mod.adaptive_spec_from_options(options, axis, target=target, config=config, name=name,
                                               model=family)
    folder = out if out is not None else Path("runs") / (spec.name or spec.default_name())
    if dry_run:
        print_plan(scan_mod.plan_adaptive(spec, folder, cells=cells, workers=workers, calibrate=True), folder)
        if cells is None:
            console.print(f"(no --cells: the estimate is for one cell per combination; the scan runs until its "
                          f"loss is <= {loss_goal:g})")
        return
    adapter = families.adapter(spec.model)
    progress = make_progress(quiet=quiet)
    cells_task = progress.add_task(folder.name, total=cells, status="")
    cell_task = progress.add_task("", total=1, status="", visible=False)
    with contextlib.ExitStack() as stack:

        def on_event(ev):
            if ev.kind == "begin":
                stack.enter_context(progress)
            c = ev.counts
            progress.update(cells_task, completed=c["done"] + c["failed"], status=counts_text(c))
            if ev.kind == "cell_start":
                progress.reset(cell_task, total=ev.cell.config.epochs, description=f"  {ev.cell.key}",
                               status="loading data", visible=True)
            elif ev.kind == "epoch":
                progress.update(cell_task, advance=1, status=adapter.epoch_status(ev.record))
            elif ev.kind in ("cell_done", "cell_failed", "end"):
                progress.update(cell_task, visible=False)

        report = scan_mod.run_adaptive_scan(spec, folder, cells=cells, loss_goal=loss_goal, workers=workers,
                                            scheduler=scheduler, callback=on_event, data_dir=data_dir,
                                            retry_failed=retry_failed, command=command_line(),
                                            connect_timeout=connect_timeout, blas_threads=blas_threads)
    if not quiet:
        console.print(summary(scan_mod.open_scan(folder)))
        console.print(f"{report.done} cells done ({report.trained} trained now, {report.skipped} kept), "
                      f"{report.failed} failed; loss {report.loss:.3g}; {report.seconds:.1f} s; {folder}")
    if report.failed:
        for key, error in report.failed_cells:
            err_console.print(f"cell {key} failed: {error}", markup=False)
        raise typer.Exit(exit_failed)


def summary(ds) -> Table:
    """One row per cell of an adaptive scan: its coordinates, status and targets (mean over replicas)."""
    ad = json.loads(ds.attrs["adaptive"])
    dims = [*ad.get("discrete", []), *ad["axes"]]
    t = Table(title=f"adaptive scan {ds.attrs.get('name', '')} ({ds.sizes['replica']} replica(s) per cell; "
                    f"targets: {', '.join(map(str, ds.target_name.values))})")
    for d in dims:
        t.add_column(d, justify="right")
    t.add_column("status", justify="right")
    for n in ds.target_name.values:
        t.add_column(str(n), justify="right")
    for i in range(ds.sizes["cell"]):
        row = [_fmt(ds[d].values[i]) for d in dims]
        values = ["" if v != v else f"{v:.4f}" for v in ds.target.values[i]]
        t.add_row(*row, str(ds.status.values[i]), *values)
    return t


def _fmt(v) -> str:
    if isinstance(v, float) or getattr(v, "dtype", None) is not None and v.dtype.kind == "f":
        return f"{float(v):.4g}"
    return str(v)


def plot(ds, folder: Path, *, out: Optional[Path], variables: Optional[str], layer, all_inputs: bool,
         matrix, diagonal: bool, sel: list[str], level: Optional[float]) -> None:
    """``mfphys scan-plot`` of an adaptive scan: the sampled cells over the interpolated variables."""
    from mfphys import scan as scan_mod

    from . import figures

    ad = json.loads(ds.attrs["adaptive"])
    if not (ds.status == "done").any():
        raise MfphysError(f"{folder}: no cell is done yet, nothing to draw (rerun its mfphys scan to fill it)")
    for item in sel:
        key, _, value = item.partition("=")
        if key not in ad.get("discrete", []):
            raise MfphysError(f"--sel {item!r}: {key!r} is not a discrete axis of {folder}")
        want = scan_mod.coerce_option(key, value, f"--sel {item!r}", ds.attrs.get("model"))
        keep = ds[key].values == want
        if not keep.any():
            raise MfphysError(f"--sel {item!r}: {key} takes one of {', '.join(map(str, sorted(set(ds[key].values))))}")
        ds = ds.isel(cell=keep)
    names = [v for v in (s.strip() for s in (variables or ",".join(ad.get("target", ["test_error"]))).split(","))
             if v]
    if not names:
        raise MfphysError("--vars: give variable names")
    for n in names:
        base = n.partition(":")[0]
        if base not in ds and base not in scan_mod.adaptive.DERIVED_TARGETS:
            raise MfphysError(f"--vars: unknown variable {n!r}; e.g. {', '.join(ad.get('target', ['test_error']))}, "
                              "sparsity, frac_vip, entropy, gap")
    if len(ad["axes"]) > 2:
        raise MfphysError(f"{folder} samples {len(ad['axes'])} continuous axes; scan-plot draws one or two")
    out = out or Path(folder) / "phase.png"
    if out.suffix.lower() != ".png":
        raise MfphysError(f"--out {out}: give a file name ending in .png")
    fig = figures.adaptive_figure(ds, names, layer=layer, live=not all_inputs, matrix=matrix or "recurrent",
                                  diagonal=diagonal, level=level)
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    counts = {s: int((ds.status == s).sum()) for s in ("done", "failed", "running")}
    console.print(f"wrote {out} ({counts['done']} cell(s) done, {counts['running']} running, "
                  f"{counts['failed']} failed)")
