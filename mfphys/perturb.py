"""The targeted perturbation of any run file (docs/model.md section 7.3; docs/model-rnn.md section 9).

:func:`perturb_run` asks the run file's family (:mod:`mfphys.registry`) to run the experiment on
one of its weight matrices: a layer of a feed-forward run (``layer=``), a matrix of a recurrent
one (``matrix=``), or ``target=`` in the family's own words. The experiment on one matrix and
its dataset are in :mod:`mfphys.perturbation` (re-exported here); the feed-forward functions
that used to live here (``perturbation``, ``evaluate_errors``, ...) stay importable.
"""

from __future__ import annotations

from pathlib import Path

from . import registry, storage
from ._compat import legacy_getattr
from .errors import MfphysError
from .perturbation import *  # noqa: F403 (the shared experiment's names are this module's too)
from .perturbation import FRACTIONS, KIND, PerturbResult, perturbation_dataset, targeted_removal  # noqa: F401


def perturb_run(run_path, *, target: str | int | None = None, **options):
    """The targeted perturbation of the run file at ``run_path``: an ``xarray.Dataset`` (not
    written; see ``mfphys.store.write_atomic``). ``target``: the weight matrix, in the run's family's
    words (:meth:`mfphys.family.ModelFamily.perturb_targets`); the family's own keyword (``layer``,
    ``matrix``) works too; ``options``: as the family's experiment takes them (fractions,
    samples, seed, tolerances, backend, data_dir, callback, command, allow_bp, ...)."""
    run_path = Path(run_path)
    attrs = storage.read_attrs(run_path)
    storage.file_kind(attrs, expect="run", where=str(run_path))
    family = registry.of_attrs(attrs)
    others = {f.target_option for f in registry.families().values()} - {family.target_option}
    wrong = sorted(k for k in others if k in options)
    if wrong:
        raise MfphysError(f"{run_path} is {_a(family.title)} run (model {family.name}): it has no {wrong[0]}s; "
                          f"give --{family.target_option} (one of {', '.join(_targets(family, run_path))})")
    return family.perturb_run(run_path, target=target, **options)


def check_model(ds, run_path) -> None:
    """Refuse a run whose weight matrices are not numbered layers (``mfphys perturb --layer``), with
    the option its family takes instead."""
    family = registry.of_attrs(ds.attrs)
    if family.target_option != "layer":
        raise MfphysError(f"{run_path} is {_a(family.title)} run (model {family.name}): its weight matrices are not "
                          f"layers; mfphys perturb --{family.target_option} takes it")


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _targets(family, run_path) -> list:
    from .store import config_from_attrs

    return list(family.perturb_targets(config_from_attrs(storage.read_attrs(run_path), run_path)))


__getattr__ = legacy_getattr(__name__)
