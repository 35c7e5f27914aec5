"""The command line's adapters of the model families: what ``mfphys train`` needs to know of one.

``mfphys train`` runs one life cycle for every family (cli/train.py: plan the run file,
estimate and refuse, ``--dry-run``, progress, Ctrl-C, summary); an adapter feeds it. An adapter
is a module with:

- ``NAME``, ``TITLE`` (the word in messages: "feed-forward"), ``PANEL`` (the ``--help`` panel of
  its options) and ``OPTIONS``: the ``mfphys train`` options only this family reads (the common
  ones are cli/train.py's ``COMMON``); any other family's option given explicitly is refused;
- ``resolve(values, given, attrs=None)``: the option values with the family's own defaults filled
  in, checked against a resumed file's attributes ``attrs``;
- ``config(values, given, base=None)``: the run configuration: the options given explicitly over
  the family's defaults or presets, or, for a resume, over the file's configuration ``base``;
- ``default_out(config, name=None, values=None)``: ``runs/<name>.nc`` or a name telling runs apart;
- ``describe(config, values)``: the job in one line (``--dry-run``); ``label(config, values)``:
  the progress bar's; ``estimate(config)`` and ``MEMORY_HINT``: memory and disk before anything
  is allocated, and what to change when it does not fit;
- ``load_data(config, data_dir)``, ``running(values)`` (the context the training runs in),
  ``run_attrs(values)`` (attributes stored besides the labels), ``epoch_status(record)``;
- ``summary(ds, path)``: the end-of-run renderables of the run file ``path``; ``timings(result)``:
  the time it took, in words;
- ``order(run, ds, tol, *, diagonal, as_json, as_csv, names)``: ``mfphys order`` on its run files;
- ``SCAN_OPTIONS`` and ``scan_summary(ds)``: ``mfphys scan``'s options (in grid order) and summary table;
- ``perturb_target(run, ds, *, layer, matrix, diagonal, all_inputs, samples, fractions)`` (the
  layer or matrix ``mfphys perturb`` acts on, its arguments checked), ``perturb_label(target)``,
  ``perturb_run(run, target, **options)``, ``perturb_candidates(pds)`` and ``perturb_baseline(pds)``
  (the lines under its table).

The built-in families' adapters are ``mfphys.cli.families.<name>``; another package's family
names its adapter module in its ``frontend`` attribute (:class:`mfphys.family.ModelFamily`), or
gets :mod:`.generic` (``order`` and ``perturb``; ``train`` and ``scan`` refused in one line).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mfphys import registry
from mfphys.errors import MfphysError


def names() -> tuple[str, ...]:
    """The families the command line knows without reading entry points (for ``--help``)."""
    return registry.builtin_names()


def adapter(name: str) -> ModuleType:
    """The command-line adapter of the family ``name``, or one clear error."""
    if name in registry.builtin_names():
        return importlib.import_module(f"{__name__}.{name}")
    if not registry.is_family(name):
        raise MfphysError(f"unknown --family {name!r}: choose one of {', '.join(registry.names())}")
    frontend = registry.get(name).frontend
    return importlib.import_module(frontend or f"{__name__}.generic")


def owner(option: str) -> str | None:
    """The built-in family whose own option ``option`` is, or None."""
    for name in names():
        if option in adapter(name).OPTIONS:
            return name
    return None
