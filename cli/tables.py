"""Tables that several commands print: a run's order parameters and a job's memory and disk estimate.

They live below the commands and the family adapters (which import them), so that no command
module imports another.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from mfphys.stats import format_stat

from .common import console

#: rows of the ``order`` table: the run-file variable names (docs/order-parameters.md)
QUANTITIES = ("sparsity", "frac_vip", "frac_uip", "frac_variable", "frac_vip_exact", "frac_uip_exact",
              "frac_variable_exact", "mean_pi", "mean_xi", "weight_var", "entropy", "entropy_median", "frac_point")
#: rows of the table: ``sparsity`` is the same set as ``frac_uip``, shown once (``--json``/``--csv`` keep both)
TABLE_ROWS = tuple(q for q in QUANTITIES if q != "sparsity")


def layer_label(layer: int, inputs: str) -> str:
    return f"layer {layer}" + (" live" if inputs == "live" else "")


def order_table(path, ds, reports, tol, *, rows=None, label=None, kind: str = "") -> Table:
    """The order parameters of a run, one column per (layer or matrix, inputs) report, rows
    ``rows`` (default :data:`TABLE_ROWS`), columns named by ``label`` (default :func:`layer_label`)."""
    from mfphys.order import display_name

    rows, label = rows or TABLE_ROWS, label or layer_label
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
        t.add_row(display_name(name), *(format_stat(v[name]) for _, _, v in reports))
    return t


def json_number(x):
    """JSON has no NaN: write null."""
    x = float(x)
    return x if math.isfinite(x) else None


def json_values(values: dict, names) -> dict:
    """``mfphys order --json``: each order parameter's mean and error over replicas, and the replicas' values."""
    from mfphys.stats import mean_err

    out = {}
    for k in names:
        mean, err = mean_err(values[k])
        out[k] = {"mean": json_number(mean), "err": json_number(err),
                  "replicas": [json_number(x) for x in np.asarray(values[k], dtype=float)]}
    return out


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


def cells_table(ds, order_text: str, names, values) -> Table:
    """The table of both summaries: the cell's coordinates, status, ``values(sel)`` (test error,
    sampled error, one column per name in ``names``) and its training time."""
    from mfphys.order import display_name

    dims = list(ds.status.dims)
    t = Table(title=f"scan {ds.attrs['name']}  ({ds.sizes['replica']} replica(s) per cell; order parameters: "
                    f"{order_text})")
    for d in dims:
        t.add_column(d, justify="right")
    for c in ("status", "test error", "sampled error", *(display_name(n) for n in names), "seconds"):
        t.add_column(c, justify="right")
    for index in np.ndindex(ds.status.shape):
        sel = dict(zip(dims, index))
        row = [str(ds[d].values[i]) for d, i in zip(dims, index)]
        status = str(ds.status.values[index])
        if status != "done":
            t.add_row(*row, status, *[""] * (3 + len(names)))
            continue
        t.add_row(*row, status, *values(sel), f"{float(ds.train_seconds.values[index]):.1f}")
    return t
