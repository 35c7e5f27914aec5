"""``mfphys order`` (order parameters of a run) and ``mfphys perturb`` (docs/model.md section 7.3)."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich import box
from rich.table import Table

from mfphys import order as order_mod
from mfphys.errors import MfphysError
from mfphys.fileio import check_writable
from mfphys.stats import format_stat, mean_err
from mfphys.train import load_data

from .common import command_line, console, make_progress, user_errors

#: rows of the ``order`` table: the run-file variable names (docs/order-parameters.md)
QUANTITIES = ("sparsity", "frac_vip", "frac_uip", "frac_variable", "frac_vip_exact", "frac_uip_exact",
              "frac_variable_exact", "mean_pi", "mean_xi", "weight_var", "entropy", "entropy_median", "frac_point")
#: rows of the table: ``sparsity`` is the same set as ``frac_uip``, shown once (``--json``/``--csv`` keep both)
TABLE_ROWS = tuple(q for q in QUANTITIES if q != "sparsity")


# --- shared ----------------------------------------------------------------------------------


# --- mfphys order ----------------------------------------------------------------------------


def column_label(layer: int, inputs: str) -> str:
    return f"layer {layer}" + (" live" if inputs == "live" else "")


def order_table(path, ds, reports, tol, *, rows=None, label=None, kind: str = "") -> Table:
    """The order parameters of a run, one column per (layer or matrix, inputs) report, rows
    ``rows`` (default :data:`TABLE_ROWS`), columns named by ``label`` (default :func:`column_label`)."""
    rows, label = rows or TABLE_ROWS, label or column_label
    R = ds.sizes["replica"]
    t = Table(title=f"{path}: {kind}{ds.attrs.get('mode', '?')} {ds.attrs.get('dataset', '?')} "
                    f"{ds.attrs.get('architecture', '?')}, {R} replica(s); mean ± error over replicas",
              caption=f"vip: pi <= tol and Xi <= xi_tol; uip: pi >= 1 - tol (= sparsity); variable: the rest; "
                      f"tol = {tol['tol']:g}, xi_tol = {tol['xi_tol']:g}, xi_zero = {tol['xi_zero']:g}; "
                      "_exact: tol = xi_tol = 0; entropy in nats; frac_point: Xi <= xi_zero",
              box=box.SIMPLE_HEAD)
    t.add_column("order parameter", no_wrap=True)
    for layer, inputs, _ in reports:
        t.add_column(label(layer, inputs), justify="right")
    for name in rows:
        t.add_row(order_mod.display_name(name), *(format_stat(v[name]) for _, _, v in reports))
    return t


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
    if store.model_of(ds.attrs) == "rnn":  # one column per matrix (docs/model-rnn.md section 9)
        from . import rnn as rnn_cmd

        rnn_cmd.order_command(run, ds, tol_, diagonal=not no_diagonal, as_json=as_json, as_csv=as_csv,
                              names=list(QUANTITIES))
        return
    if no_diagonal:
        raise MfphysError(f"--no-diagonal is for recurrent runs; {run} is a feed-forward run (no recurrent matrix)")
    live = store.live_inputs(ds)
    reports = order_mod.layer_reports(store.params_from_dataset(ds), live_inputs=live, **tol_)
    names = list(QUANTITIES)
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["layer", "inputs", "replica", *names])
        for layer, inputs, v in reports:
            for r in range(ds.sizes["replica"]):
                w.writerow([layer, inputs, r, *(repr(float(v[k][r])) for k in names)])
        return
    if as_json:
        out = {"file": str(run), "tolerances": tol_, "replicas": int(ds.sizes["replica"]),
               "dead_inputs": None if live is None else int((~live).sum()),
               "columns": [{"layer": layer, "inputs": inputs,
                            "values": {k: {"mean": _num(mean_err(v[k])[0]), "err": _num(mean_err(v[k])[1]),
                                           "replicas": [_num(x) for x in np.asarray(v[k], dtype=float)]}
                                       for k in names}}
                           for layer, inputs, v in reports]}
        typer.echo(json.dumps(out, indent=1))
        return
    console.print(order_table(run, ds, reports, tol_))
    if live is not None:
        console.print(f"live inputs: {int(live.sum())} of {live.size} vary over the training set; "
                      f"{int((~live).sum())} dead inputs are left out of the 'layer 1 live' column")
    if "test_acc" in ds and ds.sizes.get("epoch", 0):
        sampled = (f", sampled sub-networks {format_stat(ds.test_acc_sampled.values)}"
                   if "test_acc_sampled" in ds else "")
        console.print(f"test accuracy: mean-field {format_stat(ds.test_acc.isel(epoch=-1).values)}{sampled}")
    if store.run_status(ds.attrs) != "done":
        console.print(f"a partial run ({store.run_status(ds.attrs)}): {ds.sizes.get('epoch', 0)} epochs done "
                      f"(docs/file-format.md)")


def _num(x):
    """JSON has no NaN: write null."""
    x = float(x)
    return x if math.isfinite(x) else None


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
                raise MfphysError(f"--fractions {text!r} gives {n + 1:,} fractions; at most {MAX_FRACTIONS:,}")
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
        raise MfphysError(f"--fractions has repeated values: {text!r}")
    return values


def default_perturb_out(run: Path, layer: int | str, diagonal: bool = True) -> Path:
    """``<run>.perturb-layer<l>.nc``, or for a recurrent run ``<run>.perturb-<matrix>[-nodiag].nc``."""
    where = f"layer{layer}" if isinstance(layer, int) else layer + ("" if diagonal else "-nodiag")
    return run.with_name(f"{run.stem}.perturb-{where}.nc")


def perturb_table(pds) -> Table:
    a = pds.attrs
    what = f"the {a['matrix']} matrix" if "matrix" in a else f"layer {a['layer']}"
    sampled = "quenched networks" if "matrix" in a else "sampled sub-networks"
    t = Table(title=f"targeted perturbation of {what}: test error (%), mean ± error over "
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

    fr = parse_fractions(fractions)
    ds = store.open_trained_run(run)  # every check before anything is written (bad input: nothing written over)
    if store.model_of(ds.attrs) == "rnn":
        if layer is not None or all_inputs:
            raise MfphysError(f"{'--layer' if layer is not None else '--all-inputs'} is for feed-forward runs: "
                              f"{run} is a recurrent run (model rnn), give --matrix input|recurrent|output")
        return _perturb_rnn(run, ds, fr, matrix=matrix or "recurrent", diagonal=not no_diagonal, samples=samples,
                            seed=seed, tol=tol, xi_tol=xi_tol, exact=exact, backend=backend, data_dir=data_dir,
                            out=out, quiet=quiet, allow_bp=allow_bp)
    if matrix is not None or no_diagonal:
        raise MfphysError(f"{'--matrix' if matrix is not None else '--no-diagonal'} is for recurrent runs: {run} is "
                          f"a feed-forward run, give --layer")
    layer = 1 if layer is None else layer
    perturb_mod.check_model(ds, run)
    perturb_mod.check_arguments(ds.sizes["layer"], layer, samples, fr)
    store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
    cfg = store.config_from_dataset(ds, run)
    perturb_mod.check_mode(cfg, run, allow_bp)
    out = Path(out) if out is not None else default_perturb_out(run, layer)
    if out.resolve() == run.resolve():
        raise MfphysError(f"--out {out} is the run file itself: give another name")
    check_writable(out)
    data = load_data(cfg, data_dir)  # a data problem is one error line, before any progress bar
    command = command_line()
    with make_progress(transient=True) as progress:
        task = progress.add_task(f"perturb layer {layer}", total=2 * fr.size + 1, status="", visible=not quiet)
        pds = perturb_mod.perturb_run(run, layer=layer, fractions=fr, samples=samples, seed=seed, tol=tol,
                                      xi_tol=xi_tol, exact=exact, all_inputs=all_inputs, backend=backend,
                                      dataset=data, callback=lambda: progress.advance(task), command=command,
                                      allow_bp=allow_bp)
    store.write_atomic(pds, out)
    if quiet:
        return
    console.print(perturb_table(pds))
    a = pds.attrs
    dead = f" ({a['dead_inputs_excluded']} dead inputs left out)" if a["dead_inputs_excluded"] else ""
    console.print(f"candidates: {a['candidates']}{dead}; n_vip {'/'.join(map(str, pds.n_vip.values))}, n_variable "
                  f"{'/'.join(map(str, pds.n_variable.values))} per replica; tol = {a['tol']:g}, "
                  f"xi_tol = {a['xi_tol']:g}; seed {a['seed']}")
    if a["capped"]:
        console.print("[yellow]note[/]: fewer variable than very important connections: the control was capped "
                      "at all variable connections (see n_removed_variable)")
    console.print(f"unperturbed: sampled {format_stat(pds.error_base.values)} %, mean-field "
                  f"{format_stat(pds.error_base_mf.values)} %; wrote {out}")


def _perturb_rnn(run: Path, ds, fr, *, matrix: str, diagonal: bool, samples: int, seed, tol, xi_tol, exact: bool,
                 backend: str, data_dir, out, quiet: bool, allow_bp: bool) -> None:
    """``mfphys perturb --matrix`` on a recurrent run (docs/model-rnn.md section 9): the same checks,
    progress, table and file as the feed-forward command."""
    from mfphys import perturb as perturb_mod
    from mfphys import store
    from mfphys.rnn import perturb as rnn_perturb

    rnn_perturb.check_arguments(matrix, samples, fr, diagonal=diagonal)
    store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
    cfg = store.config_from_dataset(ds, run)
    perturb_mod.check_mode(cfg, run, allow_bp)
    out = Path(out) if out is not None else default_perturb_out(run, matrix, diagonal)
    if out.resolve() == run.resolve():
        raise MfphysError(f"--out {out} is the run file itself: give another name")
    check_writable(out)
    data = None
    if cfg.task == "mnist":  # a data problem is one error line, before any progress bar
        from mfphys.data import load_dataset

        data = load_dataset("mnist", n_train=cfg.n_train, n_test=cfg.n_test, data_dir=data_dir)
    command = command_line()
    with make_progress(transient=True) as progress:
        task = progress.add_task(f"perturb {matrix}", total=2 * fr.size + 1, status="", visible=not quiet)
        pds = rnn_perturb.perturb_run(run, matrix=matrix, fractions=fr, samples=samples, seed=seed, tol=tol,
                                      xi_tol=xi_tol, exact=exact, diagonal=diagonal, backend=backend, dataset=data,
                                      callback=lambda: progress.advance(task), command=command, allow_bp=allow_bp)
    store.write_atomic(pds, out)
    if quiet:
        return
    console.print(perturb_table(pds))
    a = pds.attrs
    console.print(f"candidates: {a['candidates']} of the {matrix} matrix; n_vip "
                  f"{'/'.join(map(str, pds.n_vip.values))}, n_variable {'/'.join(map(str, pds.n_variable.values))} "
                  f"per replica; tol = {a['tol']:g}, "
                  f"xi_tol = {a['xi_tol']:g}; seed {a['seed']}")
    if a["capped"]:
        console.print("[yellow]note[/]: fewer variable than very important connections: the control was capped "
                      "at all variable connections (see n_removed_variable)")
    error = "test error" if a["task"] == "mnist" else "psychometric error (100 - accuracy, mean over modalities)"
    console.print(f"unperturbed {error}: quenched {format_stat(pds.error_base.values)} %, mean-field "
                  f"{format_stat(pds.error_base_mf.values)} %; wrote {out}")
