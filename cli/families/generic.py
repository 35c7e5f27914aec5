"""The command line's adapter of a model family that brings none of its own (its ``frontend`` is unset).

Such a family (registered by another package, docs/design.md "Adding a model family") gets what
the library can say of any family: ``mfphys order`` (one column per weight matrix, from its
:meth:`~mfphys.family.ModelFamily.order_reports`) and ``mfphys perturb`` (its
:meth:`~mfphys.family.ModelFamily.perturb_targets` and ``perturb_run``). Training and scans need
options only the family knows, so ``mfphys train`` and ``mfphys scan`` refuse it in one line and
point to the Python API, which trains any registered family (``mfphys.runfile.train_run``).
"""

from __future__ import annotations

from mfphys import registry
from mfphys.errors import MfphysError

from ..common import console

PANEL = None
OPTIONS: tuple[str, ...] = ()
SCAN_OPTIONS: tuple[str, ...] = ()


def _family(ds):
    return registry.of_attrs(ds.attrs)


def no_command_line(name: str, what: str = "train it") -> MfphysError:
    return MfphysError(f"the model family {name!r} has no command-line options (its package sets no frontend): "
                       f"{what} from Python (mfphys.runfile.train_run, mfphys.scan.run_scan)")


def resolve(values: dict, given: set, attrs=None) -> dict:
    """``mfphys train --family NAME``: refused, in one line (this adapter has no options to build a run from)."""
    raise no_command_line(str(values.get("family") or "?"))


def order(run, ds, tol: dict, *, diagonal: bool, as_json: bool, as_csv: bool, names) -> None:
    """``mfphys order``: one column per entry of the family's ``order_reports``."""
    import csv
    import json
    import sys

    import typer

    from ..tables import json_values, order_table

    family = _family(ds)
    reports = family.order_reports(ds, tol)
    names = [k for k in names if all(k in v for _, _, v in reports)]
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow([family.unit, "inputs", "replica", *names])
        for part, inputs, v in reports:
            for r in range(ds.sizes["replica"]):
                w.writerow([part, inputs, r, *(repr(float(v[k][r])) for k in names)])
        return
    if as_json:
        out = {"file": str(run), "model": family.name, "tolerances": tol, "replicas": int(ds.sizes["replica"]),
               "columns": [{family.unit: part, "inputs": inputs,
                            "values": json_values(v, names)}
                           for part, inputs, v in reports]}
        typer.echo(json.dumps(out, indent=1))
        return
    rows = [k for k in names if k != "sparsity"]
    console.print(order_table(run, ds, reports, tol, rows=rows, kind=f"{family.name} ",
                              label=lambda part, inputs: f"{family.unit} {part}" + (
                                  "" if inputs == "all" else f" ({inputs})")))


def perturb_target(run, ds, *, layer, matrix, diagonal: bool, all_inputs: bool, samples: int, fractions) -> str:
    family = _family(ds)
    from mfphys.store import config_from_dataset

    targets = family.perturb_targets(config_from_dataset(ds, run))
    if not targets:
        raise MfphysError(f"{run}: the {family.title} model has no targeted perturbation")
    given = matrix if matrix is not None else layer
    if given is None:
        return targets[0]
    if str(given) not in map(str, targets):
        raise MfphysError(f"{run}: no weight matrix {given!r} in a {family.title} run; choose {', '.join(targets)}")
    return str(given)


def perturb_label(target) -> str:
    return str(target)


def load_data(cfg, data_dir):
    return registry.of_config(cfg).load_data(cfg, data_dir)


def perturb_run(run, target, *, dataset=None, all_inputs: bool = False, diagonal: bool = True, **options):
    from mfphys.perturb import perturb_run as driver

    return driver(run, target=target, **options)


def perturb_candidates(pds) -> str:
    return str(pds.attrs.get("candidates", "the very important and variable connections"))


def perturb_baseline(pds) -> str:
    from mfphys.stats import format_stat

    return (f"unperturbed test error: sampled {format_stat(pds.error_base.values)} %, mean-field "
            f"{format_stat(pds.error_base_mf.values)} %")
