"""The feed-forward network (docs/model.md) on the command line: ``mfphys train --family ffn``'s
options and configuration, its summary, and ``mfphys order`` on its run files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.table import Table

from mfphys.errors import MfphysError
from mfphys.stats import format_stat

from ..common import blas_limit, console, parse_ints, run_path

NAME = "ffn"
TITLE = "feed-forward"
PANEL = "Feed-forward options"
#: the ``mfphys train`` options only a feed-forward run reads
OPTIONS = ("dataset", "layers", "batch_size", "lr", "lr_halve_every", "activation", "weight_decay", "decay_on",
           "init_m_std", "init_xi", "teacher_seed", "adam_reset", "protocol")
#: the options that are fields of the configuration (mfphys.train.TrainConfig)
FIELDS = ("dataset", "layers", "n_train", "n_test", "epochs", "batch_size", "lr", "lr_halve_every", "activation",
          "replicas", "seed", "mode", "backend", "dtype", "weight_decay", "decay_on", "init_m_std", "init_xi",
          "eval_samples", "teacher_seed", "adam_reset")
#: the options of ``mfphys scan --family ffn`` (mfphys.scan.OPTIONS), in the order that makes the grid's
#: dimensions (and keys)
SCAN_OPTIONS = ("depth", "n_train", "width", "input_dim", "dataset", "n_test", "epochs", "batch_size", "lr",
                "lr_halve_every", "activation", "mode", "replicas", "seed", "backend", "dtype", "weight_decay",
                "decay_on", "init_m_std", "init_xi", "eval_samples", "teacher_seed")
#: budget.check_memory's default hint speaks of the feed-forward options
MEMORY_HINT = None


def resolve(values: dict, given: set, attrs=None) -> dict:
    """Nothing to fill in: every feed-forward option has its default on the command line."""
    return values


def _fields(values: dict) -> dict:
    """The configuration fields of the option values, parsed from their command-line text."""
    fields = {k: values[k] for k in FIELDS}
    if isinstance(fields["layers"], str):
        fields["layers"] = parse_ints(fields["layers"], "--layers")
    if isinstance(fields["decay_on"], str):
        fields["decay_on"] = tuple(s for s in fields["decay_on"].split(",") if s)
    return fields


def config(values: dict, given: set, base=None):
    """The TrainConfig of the options: those given on the command line win over a ``--protocol``
    preset, which wins over the defaults, or, with ``--resume``, over the file's configuration
    ``base`` (so ``--resume RUN.nc`` alone continues the run as it was made)."""
    from mfphys.train import PROTOCOLS, TrainConfig

    protocol = values.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise MfphysError(f"unknown --protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    fields = _fields(values)
    start = fields if base is None else dataclasses.asdict(base)
    preset = {k: v for k, v in PROTOCOLS.get(protocol, {}).items() if k not in given}
    return TrainConfig(**{**start, **preset, **{k: fields[k] for k in given if k in fields}})


def default_out(cfg, name: str | None = None, values: dict | None = None) -> Path:
    """``runs/<name>.nc``, or a name that tells runs apart (data, architecture, mode, seed, time to the
    second) made unique with ``-2``, ``-3``, ...: a default name never replaces an existing file."""
    from mfphys.model import architecture

    return run_path(f"{cfg.dataset}-{architecture(cfg.layers)}-{cfg.mode}-seed{cfg.seed}", name)


def describe(cfg, values: dict) -> str:
    from mfphys.model import architecture

    return (f"{cfg.mode} {architecture(cfg.layers)} on {cfg.dataset}: {cfg.replicas} replica(s), "
            f"{cfg.epochs} epochs of {cfg.n_train} patterns in batches of {cfg.batch_size}, {cfg.dtype}")


def label(cfg, values: dict) -> str:
    from mfphys.model import architecture

    return f"{cfg.mode} {architecture(cfg.layers)}"


def estimate(cfg):
    from mfphys import budget

    return budget.train_estimate(cfg)


def load_data(cfg, data_dir):
    from mfphys.train import load_data as load

    return load(cfg, data_dir)


def running(values: dict):
    """BLAS threads for the whole run (a TrainConfig has no such field)."""
    return blas_limit(values.get("blas_threads"))


def run_attrs(values: dict) -> dict:
    return {}


def epoch_status(rec) -> str:
    import numpy as np

    return f"loss {np.mean(rec.train_loss):.4f}  test acc {np.mean(rec.test_acc):.4f}"


def timings(result) -> str:
    return f"{result.timings['train_seconds']:.1f} s"


def summary_table(ds) -> Table:
    """Per-layer order parameters, mean over replicas (``mfphys order`` shows their errors).

    Layer 1 counts the connections from live inputs only, as docs/order-parameters.md asks;
    ``frac_uip`` is the same set as ``sparsity`` (one column).
    """
    from mfphys.order import display_name

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


def summary(ds, path) -> list:
    """The end of ``mfphys train``: the order parameters per layer and the accuracies."""
    last = min(10, ds.sizes["epoch"])
    return [summary_table(ds),
            f"test accuracy (mean-field, last epoch): {format_stat(ds.test_acc.isel(epoch=-1).values)}   "
            f"mean of the last {last} epochs: "
            f"{format_stat(ds.test_acc.isel(epoch=slice(-last, None)).mean('epoch').values)}   "
            f"sampled sub-networks: {format_stat(ds.test_acc_sampled.values)}   "
            f"vote: {format_stat(ds.test_acc_vote.values)}"]


def order(run, ds, tol: dict, *, diagonal: bool, as_json: bool, as_csv: bool, names) -> None:
    """``mfphys order`` on a feed-forward run file: one column per layer (layer 1 also over live inputs)."""
    import csv
    import json
    import sys

    import typer

    from mfphys import order as order_mod
    from mfphys import store

    from ..tables import json_values, order_table

    if not diagonal:
        raise MfphysError(f"--no-diagonal is for recurrent runs; {run} is a feed-forward run (no recurrent matrix)")
    live = store.live_inputs(ds)
    reports = order_mod.layer_reports(store.params_from_dataset(ds), live_inputs=live, **tol)
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["layer", "inputs", "replica", *names])
        for layer, inputs, v in reports:
            for r in range(ds.sizes["replica"]):
                w.writerow([layer, inputs, r, *(repr(float(v[k][r])) for k in names)])
        return
    if as_json:
        out = {"file": str(run), "tolerances": tol, "replicas": int(ds.sizes["replica"]),
               "dead_inputs": None if live is None else int((~live).sum()),
               "columns": [{"layer": layer, "inputs": inputs,
                            "values": json_values(v, names)}
                           for layer, inputs, v in reports]}
        typer.echo(json.dumps(out, indent=1))
        return
    console.print(order_table(run, ds, reports, tol))
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


# --- mfphys scan ----------------------------------------------------------------------------


def scan_summary(ds) -> Table:
    """One row per cell: status, errors (mean ± error over replicas), network order parameters, time.

    The order parameters are averaged over the whole network with layer 1 over live inputs
    (docs/order-parameters.md); ``frac_uip`` is the same set as ``sparsity`` (one column).
    """
    from mfphys import scan as scan_mod

    from ..tables import cells_table

    names = [n for n in ("frac_vip", "frac_uip") if n in ds]
    means = {n: scan_mod.network_mean(ds, n, live=True) for n in names}

    def values(sel):
        return (format_stat(ds.test_error.isel(sel).values),
                format_stat(1 - ds.test_acc_sampled.isel(sel).values) if "test_acc_sampled" in ds else "",
                *(format_stat(means[n].isel(sel).values) for n in names))

    return cells_table(ds, "whole network, layer 1 over live inputs", names, values)


# --- mfphys perturb -------------------------------------------------------------------------


def perturb_target(run, ds, *, layer, matrix, diagonal: bool, all_inputs: bool, samples: int, fractions) -> int:
    """The layer ``mfphys perturb`` acts on (default 1), its arguments checked; the recurrent options refused."""
    from mfphys import perturb as perturb_mod

    if matrix is not None or not diagonal:
        raise MfphysError(f"{'--matrix' if matrix is not None else '--no-diagonal'} is for recurrent runs: {run} is "
                          f"a feed-forward run, give --layer")
    layer = 1 if layer is None else layer
    perturb_mod.check_model(ds, run)
    perturb_mod.check_arguments(ds.sizes["layer"], layer, samples, fractions)
    return layer


def perturb_label(layer: int) -> str:
    return f"layer {layer}"


def perturb_run(run, layer: int, *, diagonal: bool, **options):
    from mfphys import perturb as perturb_mod

    return perturb_mod.perturb_run(run, layer=layer, **options)


def perturb_candidates(pds) -> str:
    a = pds.attrs
    return a["candidates"] + (f" ({a['dead_inputs_excluded']} dead inputs left out)" if a["dead_inputs_excluded"]
                              else "")


def perturb_baseline(pds) -> str:
    return (f"unperturbed: sampled {format_stat(pds.error_base.values)} %, mean-field "
            f"{format_stat(pds.error_base_mf.values)} %")
