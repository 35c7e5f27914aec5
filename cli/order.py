"""``mfphys order`` (order parameters of a run) and ``mfphys perturb`` (docs/model.md section 7.3)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.fileio import check_writable, quote
from mfphys.stats import format_stat

from . import families
from .common import command_line, console, make_progress, user_errors
from .tables import QUANTITIES, TABLE_ROWS

__all__ = ["QUANTITIES", "TABLE_ROWS", "order", "parse_fractions", "perturb"]


# --- mfphys order ----------------------------------------------------------------------------


@user_errors
def order(
    run: Path = typer.Argument(..., help="run file (.nc) written by mfphys train"),
    tol: Optional[float] = typer.Option(None, help="pi tolerance of the categories (default: the file's, 0.01)"),
    xi_tol: Optional[float] = typer.Option(None, help="Xi <= xi_tol counts as deterministic (default: the "
                                                      "file's, 1e-4)"),
    xi_zero: Optional[float] = typer.Option(None, help="Xi <= xi_zero is a point mass in the entropy (default: "
                                                       "the file's, 1e-8)"),
    exact: bool = typer.Option(False, "--exact", help="the reference code's exact equality: tol = xi_tol = 0"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (per replica, mean and error) instead"),
    as_csv: bool = typer.Option(False, "--csv", help="print CSV, one row per layer, inputs and replica"),
    no_diagonal: bool = typer.Option(False, "--no-diagonal", help="a recurrent run: the recurrent matrix without "
                                                                  "its diagonal (self-connections)"),
):
    """Print a run's order parameters per layer (docs/model.md section 6), recomputed from its pi, m, Xi.

    Layer 1 is shown over all connections and over those from inputs that vary in the
    training set (live inputs); see docs/order-parameters.md.
    """
    from mfphys import store  # xarray: loaded when the command runs, so `mfphys --help` starts fast

    if as_json and as_csv:
        raise MfphysError("give at most one of --json and --csv")
    ds = store.open_trained_run(run)
    tol_ = store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero, exact=exact)
    adapter = families.adapter(store.model_of(ds.attrs))  # one column per layer, or per matrix, ...
    adapter.order(run, ds, tol_, diagonal=not no_diagonal, as_json=as_json, as_csv=as_csv, names=list(QUANTITIES))


# --- mfphys perturb --------------------------------------------------------------------------


#: more fractions than anyone could evaluate (each costs ``--samples`` sampled evaluations)
MAX_FRACTIONS = 10_000


def parse_fractions(text: str) -> np.ndarray:
    """``0:1:0.1`` (start:stop:step, stop included when the steps reach it) or ``0,0.5,1``."""
    bad = MfphysError(f"--fractions takes start:stop:step (like 0:1:0.1) or a comma list (like 0,0.5,1) of "
                      f"numbers in [0, 1], got {text!r}")
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise bad
            start, stop, step = parts
            if not (step > 0 and stop >= start and math.isfinite(stop)):
                raise bad
            n = math.floor((stop - start) / step + 1e-9)
            if n + 1 > MAX_FRACTIONS:  # refused before numpy allocates it
                raise MfphysError(f"--fractions {quote(text)} gives {n + 1:,} fractions; at most {MAX_FRACTIONS:,}")
            values = np.round(start + step * np.arange(n + 1), 12)
        else:
            values = np.array([float(p) for p in text.split(",")])
            if values.size > MAX_FRACTIONS:
                raise MfphysError(f"--fractions gives {values.size:,} fractions; at most {MAX_FRACTIONS:,}")
    except ValueError:
        raise bad from None
    if values.size == 0 or not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise bad
    if np.unique(values).size != values.size:
        raise MfphysError(f"--fractions has repeated values: {quote(text)}")
    return values


def check_perturb_size(ds, n_fractions: int, samples: int, out: Path) -> None:
    """Refuse, before any work, a perturbation whose results cannot fit: 2 F + 1 conditions of
    ``samples`` errors per replica (float64), held while computed, in the dataset and written."""
    from mfphys import budget
    from mfphys.fileio import check_free_space

    results = (2 * n_fractions + 1) * ds.sizes.get("replica", 1) * samples * 8
    estimate = budget.Estimate({"sampled errors": 3 * results, "process": budget.BASE}, 3 * results + budget.BASE,
                               results + (1 << 20))
    budget.check_memory(estimate, what="this perturbation", hint="use a smaller --samples or fewer --fractions")
    check_free_space(out, estimate.disk)


def default_perturb_out(run: Path, layer: int | str, diagonal: bool = True) -> Path:
    """``<run>.perturb-layer<l>.nc``, or for a recurrent run ``<run>.perturb-<matrix>[-nodiag].nc``."""
    where = f"layer{layer}" if isinstance(layer, int) else layer + ("" if diagonal else "-nodiag")
    return run.with_name(f"{run.stem}.perturb-{where}.nc")


def perturb_table(pds) -> Table:
    a = pds.attrs
    what = f"the {a['matrix']} matrix" if "matrix" in a else f"layer {a['layer']}"
    sampled = "quenched networks" if "matrix" in a else "sampled sub-networks"
    t = Table(title=f"targeted perturbation of {what}: test error (%), mean ± standard error over "
                    f"{pds.sizes['replica']} replica(s), {pds.sizes['sample']} {sampled} each",
              caption="vip: very important connections removed; variable: the same number of variable "
                      "connections removed (control); mf: noise-free mean-field network")
    for c in ("fraction", "removed", "vip (sampled)", "vip (mf)", "removed (variable)", "variable (sampled)",
              "variable (mf)"):
        t.add_column(c, justify="right")
    for i, f in enumerate(pds.fraction.values):
        row = pds.isel(fraction=i)
        t.add_row(f"{f:g}", format_stat(row.n_removed.values, 0), format_stat(row.error_vip.values),
                  format_stat(row.error_vip_mf.values), format_stat(row.n_removed_variable.values, 0),
                  format_stat(row.error_variable.values), format_stat(row.error_variable_mf.values))
    return t


@user_errors
def perturb(
    run: Path = typer.Argument(..., help="run file (.nc) written by mfphys train"),
    layer: Optional[int] = typer.Option(None, help="layer whose connections are removed (1 = from the inputs; "
                                                    "the default); feed-forward runs"),
    matrix: Optional[str] = typer.Option(None, help="matrix whose connections are removed: input, recurrent (the "
                                                    "default) or output; recurrent runs"),
    no_diagonal: bool = typer.Option(False, "--no-diagonal", help="leave the recurrent self-connections out of "
                                                                  "both pools (--matrix recurrent)"),
    fractions: str = typer.Option("0:1:0.1", help="fractions of the very important connections to remove: "
                                                  "start:stop:step (stop included) or a comma list"),
    samples: int = typer.Option(10, help="sampled sub-networks (recurrent: quenched networks) per replica "
                                             "and condition"),
    seed: Optional[int] = typer.Option(None, help="seed of the choices and draws (default: the run's seed)"),
    tol: Optional[float] = typer.Option(None, help="pi tolerance of the categories (default: the file's, 0.01)"),
    xi_tol: Optional[float] = typer.Option(None, help="Xi tolerance of the categories (default: the file's, "
                                                      "1e-4)"),
    exact: bool = typer.Option(False, "--exact", help="the reference code's exact equality: tol = xi_tol = 0"),
    all_inputs: bool = typer.Option(False, "--all-inputs", help="in layer 1, also remove connections from "
                                                                "dead (constant) inputs"),
    backend: str = typer.Option("auto", help="auto, numpy or cupy"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the run's dataset files (else "
                                                       "$MFPHYS_DATA_DIR, cache)"),
    out: Optional[Path] = typer.Option(None, help="dataset to write (default: <run>.perturb-layer<l>.nc, or "
                                                  "<run>.perturb-<matrix>.nc, next to the run)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or table"),
    allow_bp: bool = typer.Option(False, "--allow-bp", help="run it on a BP run too (no variable connections: "
                                                            "the control removes nothing)"),
):
    """Remove important vs variable connections of one layer (or matrix) and measure the test error (docs/model.md
    section 7.3; recurrent runs: docs/model-rnn.md section 9)."""
    from mfphys import perturb as perturb_mod
    from mfphys import store
    from mfphys.checks import check_int

    if seed is not None:
        check_int("--seed", seed, low=0)
    fr = parse_fractions(fractions)
    ds = store.open_trained_run(run)  # every check before anything is written (bad input: nothing written over)
    adapter = families.adapter(store.model_of(ds.attrs))
    diagonal = not no_diagonal
    target = adapter.perturb_target(run, ds, layer=layer, matrix=matrix, diagonal=diagonal, all_inputs=all_inputs,
                                    samples=samples, fractions=fr)
    store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
    cfg = store.config_from_dataset(ds, run)
    perturb_mod.check_mode(cfg, run, allow_bp)
    out = Path(out) if out is not None else default_perturb_out(run, target, diagonal)
    if out.resolve() == run.resolve():
        raise MfphysError(f"--out {out} is the run file itself: give another name")
    check_writable(out)
    check_perturb_size(ds, fr.size, samples, out)
    data = adapter.load_data(cfg, data_dir)  # a data problem is one error line, before any progress bar
    command = command_line()
    with make_progress(transient=True) as progress:
        task = progress.add_task(f"perturb {adapter.perturb_label(target)}", total=2 * fr.size + 1, status="",
                                 visible=not quiet)
        pds = adapter.perturb_run(run, target, fractions=fr, samples=samples, seed=seed, tol=tol, xi_tol=xi_tol,
                                  exact=exact, diagonal=diagonal, all_inputs=all_inputs, backend=backend,
                                  dataset=data, callback=lambda: progress.advance(task), command=command,
                                  allow_bp=allow_bp)
    store.write_atomic(pds, out)
    if quiet:
        return
    console.print(perturb_table(pds))
    a = pds.attrs
    console.print(f"candidates: {adapter.perturb_candidates(pds)}; n_vip {'/'.join(map(str, pds.n_vip.values))}, "
                  f"n_variable {'/'.join(map(str, pds.n_variable.values))} per replica; tol = {a['tol']:g}, "
                  f"xi_tol = {a['xi_tol']:g}; seed {a['seed']}")
    if a["capped"]:
        console.print("[yellow]note[/]: fewer variable than very important connections: the control was capped "
                      "at all variable connections (see n_removed_variable)")
    console.print(f"{adapter.perturb_baseline(pds)}; wrote {out}")
