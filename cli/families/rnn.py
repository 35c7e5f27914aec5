"""The recurrent model (docs/model-rnn.md section 9) on the command line: ``mfphys train --family rnn``'s
presets and options, its summary, and ``mfphys order`` on its run files (one column per matrix)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from mfphys.errors import MfphysError
from mfphys.stats import format_stat

from ..common import console, option_flag, run_path

NAME = "rnn"
TITLE = "recurrent"
PANEL = "Recurrent options"
#: the ``mfphys train`` options only a recurrent run reads
OPTIONS = ("preset",)
#: the preset of a run that names none
DEFAULT_PRESET = "row_mnist"
#: options of a recurrent run that override the preset (RnnConfig field names)
OVERRIDES = ("epochs", "replicas", "seed", "n_train", "n_test", "backend", "dtype", "mode", "eval_samples",
             "blas_threads")
#: options that only the MNIST presets read
MNIST_ONLY = ("n_train", "n_test", "data_dir")
#: the options of ``mfphys scan --family rnn`` (mfphys.scan.RNN_OPTIONS), in grid order
SCAN_OPTIONS = ("steps", "n_train", "preset", "n", "n_test", "epochs", "batch_size", "lr", "mode", "replicas",
                "seed", "backend", "dtype", "eval_samples")
MEMORY_HINT = "use fewer --replicas, a smaller --eval-samples or --n-test, or a preset with fewer steps"
#: rows of ``train``'s summary table (``mfphys order`` shows every order parameter)
SUMMARY_ROWS = ("frac_vip", "frac_uip", "frac_variable", "mean_pi", "mean_xi", "entropy")


def resolve(values: dict, given: set, attrs=None) -> dict:
    """The preset: the one given, else a resumed file's, else :data:`DEFAULT_PRESET`; a resume
    from another preset than the one given is refused."""
    preset = values.get("preset")
    stored = (attrs or {}).get("preset")
    if attrs is not None and preset is not None and stored and preset != stored:
        raise MfphysError(f"--resume {values['resume']} was made from --preset {stored}, not {preset}; "
                          f"nothing was written")
    return {**values, "preset": stored or preset or DEFAULT_PRESET}


def config(values: dict, given: set, base=None):
    """The preset (or ``base``, a resumed file's configuration) with the options given explicitly
    applied (an MNIST preset with ``--n-train N`` reads ``min(batches_per_epoch, N // batch_size)``
    mini-batches per epoch)."""
    from mfphys.rnn import preset
    from mfphys.rnn.config import with_n_train

    name = values["preset"]
    base = preset(name) if base is None else base
    if base.task != "mnist":
        bad = [option_flag(o) for o in MNIST_ONLY if o in given]
        if bad:
            raise MfphysError(f"{', '.join(bad)}: the {name} task generates its trials (no data set)")
    changes = {k: values[k] for k in OVERRIDES if k in given}
    cfg = dataclasses.replace(base, **changes)
    if base.task == "mnist" and changes.get("n_train") is not None:
        try:
            cfg = with_n_train(cfg, changes["n_train"])
        except MfphysError as exc:  # the rule's message, in the option's spelling
            raise MfphysError(str(exc).replace("n_train", "--n-train", 1)) from None
    return cfg


def default_out(cfg, name: str | None = None, values: dict | None = None) -> Path:
    """``runs/<name>.nc``, or ``runs/rnn-<preset>-<mode>-seed<seed>-<time>.nc`` made unique."""
    preset = (values or {}).get("preset") or DEFAULT_PRESET
    return run_path(f"rnn-{preset}-{cfg.mode}-seed{cfg.seed}", name)


def describe(cfg, values: dict) -> str:
    from mfphys.rnn.store import architecture_label

    data = (f"{cfg.n_train or 60000} MNIST images in {cfg.steps} steps" if cfg.task == "mnist"
            else "generated multisensory trials")
    return (f"rnn {cfg.mode} {architecture_label(cfg)} ({values['preset']}): {cfg.replicas} replica(s), up to "
            f"{cfg.epochs} epochs of {cfg.batches_per_epoch or 'all'} mini-batches of {cfg.batch_size}, {data}, "
            f"{cfg.dtype}")


def label(cfg, values: dict) -> str:
    return f"rnn {values['preset']} {cfg.mode}"


def estimate(cfg):
    from mfphys import budget

    return budget.rnn_estimate(cfg)


def load_data(cfg, data_dir):
    """MNIST for the MNIST presets; the other tasks generate their trials."""
    if cfg.task != "mnist":
        return None
    from mfphys.data import load_dataset

    return load_dataset("mnist", n_train=cfg.n_train, n_test=cfg.n_test, data_dir=data_dir)


def running(values: dict):
    """Nothing: the BLAS threads are part of the configuration (the run sets them itself)."""
    return contextlib.nullcontext()


def run_attrs(values: dict) -> dict:
    return {"preset": values["preset"]}


def epoch_status(rec) -> str:
    import numpy as np

    loss = np.nanmean(np.where(rec.active, rec.train_loss, np.nan))
    acc = "" if np.all(np.isnan(rec.test_acc)) else f"  test acc {np.nanmean(rec.test_acc):.4f}"
    return f"loss {loss:.4f}{acc}"


def timings(result) -> str:
    return f"{result.timings['train_seconds']:.1f} s training, {result.timings['eval_seconds']:.1f} s evaluation"


def summary(ds, path) -> list:
    """The end of ``mfphys train``: the order parameters per matrix and the accuracies."""
    from mfphys import store

    from ..tables import order_table

    tol = store.run_tolerances(ds)
    return [order_table(path, ds, _reports(ds, tol, diagonal=True), tol, rows=SUMMARY_ROWS, label=column_label,
                        kind="rnn "), *accuracy_lines(ds)]


def _reports(ds, tol: dict, *, diagonal: bool):
    """``(column label, values)`` per matrix: the recurrent one with or without its diagonal."""
    from mfphys import store
    from mfphys.rnn.model import MATRICES
    from mfphys.rnn.order import NODIAG, matrix_reports

    reports = matrix_reports(store.params_from_dataset(ds), **tol)
    keep = "all" if diagonal else NODIAG
    return [next(r for r in reports if r[0] == m and (m != "recurrent" or r[1] == keep)) for m in MATRICES]


def column_label(matrix: str, connections: str) -> str:
    return matrix + (" (no diagonal)" if connections != "all" else "")


def accuracy_lines(ds) -> list[str]:
    """The accuracies of every evaluation mode (docs/model-rnn.md section 5), mean ± error over replicas."""
    out = []
    modes = [m for m in ("mf", "noisy", "quenched", "annealed") if f"test_acc_{m}" in ds]
    if modes:
        parts = [f"{m} {format_stat(ds[f'test_acc_{m}'].values)}" for m in modes]
        if "test_acc_quenched_vote" in ds:
            parts.append(f"quenched vote {format_stat(ds.test_acc_quenched_vote.values)}")
        out.append("test accuracy: " + ", ".join(parts))
    for m in ("mf", "noisy", "quenched", "annealed"):
        name = f"psychometric_acc_{m}"
        if name in ds:
            acc = ds[name].mean("draw") if "draw" in ds[name].dims else ds[name]
            per = ", ".join(f"{mod} {format_stat(acc.sel(modality=mod).values)}" for mod in ds.modality.values)
            out.append(f"psychometric accuracy ({m}): {per}")
    if "stop_epoch" in ds and ds.attrs.get("task") == "multisensory":
        out.append(f"stopped at epoch {'/'.join(str(int(e)) for e in ds.stop_epoch.values)} (per replica)")
    return out


def order(run, ds, tol: dict, *, diagonal: bool, as_json: bool, as_csv: bool, names) -> None:
    """``mfphys order`` on a recurrent run file: one column per matrix."""
    import csv
    import json
    import sys

    import typer

    from ..tables import TABLE_ROWS, json_values, order_table

    reports = _reports(ds, tol, diagonal=diagonal)
    R = int(ds.sizes["replica"])
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["matrix", "connections", "replica", *names])
        for matrix, c, v in reports:
            for r in range(R):
                w.writerow([matrix, c, r, *(repr(float(v[k][r])) for k in names)])
        return
    if as_json:
        out = {"file": str(run), "model": "rnn", "tolerances": tol, "replicas": R, "diagonal": diagonal,
               "columns": [{"matrix": matrix, "connections": c,
                            "values": json_values(v, names)}
                           for matrix, c, v in reports]}
        typer.echo(json.dumps(out, indent=1))
        return
    console.print(order_table(run, ds, reports, tol, rows=TABLE_ROWS, label=column_label, kind="rnn "))
    for line in accuracy_lines(ds):
        console.print(line)


# --- mfphys scan ----------------------------------------------------------------------------


def scan_summary(ds):
    """One row per cell of a recurrent scan: status, test errors (mean ± error over replicas), the
    recurrent matrix's order parameters (all its connections, diagonal included), time."""
    from ..tables import cells_table

    names = [n for n in ("frac_vip", "frac_uip", "entropy") if n in ds]

    def values(sel):
        cell = ds.isel(sel)
        mf = cell.test_acc_mf.values if "test_acc_mf" in ds else 1 - cell.test_error.values
        return (format_stat(1 - mf),
                format_stat(1 - cell.test_acc_quenched.values) if "test_acc_quenched" in ds else "",
                *(format_stat(cell[n].sel(matrix="recurrent").values) for n in names))

    return cells_table(ds, "recurrent matrix; errors: noise-free mean field and quenched sampled networks",
                        names, values)


# --- mfphys perturb -------------------------------------------------------------------------


def perturb_target(run, ds, *, layer, matrix, diagonal: bool, all_inputs: bool, samples: int, fractions) -> str:
    """The matrix ``mfphys perturb`` acts on (default recurrent), its arguments checked; the
    feed-forward options refused."""
    from mfphys.rnn import perturb as rnn_perturb

    if layer is not None or all_inputs:
        raise MfphysError(f"{'--layer' if layer is not None else '--all-inputs'} is for feed-forward runs: "
                          f"{run} is a recurrent run (model rnn), give --matrix input|recurrent|output")
    matrix = matrix or "recurrent"
    rnn_perturb.check_arguments(matrix, samples, fractions, diagonal=diagonal)
    return matrix


def perturb_label(matrix: str) -> str:
    return matrix


def perturb_run(run, matrix: str, *, all_inputs: bool, **options):
    from mfphys.rnn import perturb as rnn_perturb

    return rnn_perturb.perturb_run(run, matrix=matrix, **options)


def perturb_candidates(pds) -> str:
    return f"{pds.attrs['candidates']} of the {pds.attrs['matrix']} matrix"


def perturb_baseline(pds) -> str:
    error = ("test error" if pds.attrs["task"] == "mnist"
             else "psychometric error (100 - accuracy, mean over modalities)")
    return (f"unperturbed {error}: quenched {format_stat(pds.error_base.values)} %, mean-field "
            f"{format_stat(pds.error_base_mf.values)} %")
