"""The experiments of ``mfphys reproduce``, for every model family (docs/reproduction.md).

Each family lists its experiments (:meth:`mfphys.family.ModelFamily.experiments`; the paper's
four and the dynamics for the feed-forward network, ``mfphys/models/ffn/reproduce.py``; the
recurrent ones in ``mfphys/models/rnn/reproduce.py``). What they share is here: the one way an
experiment gets a run trained (:func:`train_or_reuse`: reuse a finished file of exactly that
configuration, else train it as a live run file, so an interrupted reproduce continues from its
last checkpoint), and the list of every registered family's experiments (:func:`experiments`).

The feed-forward experiments' names (``Protocol``, ``curves_dataset``, ...) stay importable from
here, as before the families moved into their folders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import registry, runfile, storage
from ._compat import legacy_getattr
from .errors import MfphysError
from .fileio import check_writable


def reusable(path: Path, config, complete: Callable | None = None):
    """The finished run file at ``path`` if it holds exactly ``config`` (and ``complete(ds)`` says
    it has all the experiment needs), else None."""
    path = Path(path)
    if not path.exists():
        return None
    family = registry.of_config(config)
    try:
        ds = storage.open_run(path)
        if (registry.of_attrs(ds.attrs) is family and family.config_class.from_json(ds.attrs["config"]) == config
                and storage.run_status(ds.attrs) == "done" and (complete is None or complete(ds))):
            return ds
    except (MfphysError, KeyError, ValueError, TypeError):
        pass  # unreadable or foreign: trained again and replaced (atomically)
    return None


def train_or_reuse(config, path: Path, *, data_dir=None, dataset=None, callback=None, complete: Callable | None = None,
                   attrs: dict | None = None, dynamics: bool = False):
    """The run file at ``path`` if it holds exactly ``config`` (finished), else train it there as a
    live run file (:mod:`mfphys.runfile`): an interrupted ``reproduce`` continues the run from its
    last checkpoint (on NumPy with the numbers of an uninterrupted run); a file of another
    configuration, or one that lacks what ``complete`` asks for, is trained again and replaced;
    one being written right now is refused. ``attrs`` are added to the file; ``dynamics``: the
    file must also hold the order parameters recorded while training."""
    if dynamics:
        extra = complete

        def complete(ds):
            return "dyn_epoch" in ds.coords and (extra is None or extra(ds))
    path = Path(path)
    ds = reusable(path, config, complete)
    if ds is not None:
        return ds
    check_writable(path)
    plan = runfile.reuse_plan(path, config)
    if plan.action == "done":  # finished, but without what `complete` asks (e.g. older dynamics)
        plan = runfile.Plan("new", path, config)
    runfile.train_run(plan, data_dir=data_dir, dataset=dataset, callback=callback,
                      command=f"mfphys reproduce ({path.name})", attrs=attrs)
    return storage.open_run(path)


def experiments() -> dict:
    """Every registered family's experiments: family name -> {experiment name -> Experiment}."""
    return {name: family.experiments() for name, family in registry.families().items()}


__getattr__ = legacy_getattr(__name__)
