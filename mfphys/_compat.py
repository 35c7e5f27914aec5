"""Legacy import paths: the modules and names scripts used before the model families moved into
``mfphys/models/<name>/`` (docs/design.md "The library"), kept working as thin re-exports.

Two tables, and nothing else in the library refers to the old places:

- :data:`MODULES`: an old module path -> the module that is there now. ``import mfphys.train``
  or ``from mfphys.rnn.train import prepare`` gives the very module object of its new home
  (a meta-path finder, installed by ``mfphys/__init__``), so patching it patches the code that
  runs, and pickles name the new home.
- :data:`NAMES`: names a shared module used to define for one family; the shared module's
  ``__getattr__`` (:func:`legacy_getattr`) forwards them on first access (``"*"``: any name the
  shared module lacks, from that module).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module path (or package prefix) -> the module or package there now
MODULES = {
    "mfphys.rnn": "mfphys.models.rnn",
    "mfphys.train": "mfphys.models.ffn.train",
    "mfphys.model": "mfphys.models.ffn.model",
    "mfphys.optim": "mfphys.models.ffn.optim",
}

#: shared module -> {old name: "module:name" of its new home}
NAMES = {
    "mfphys.store": {
        "MODELS": "mfphys.registry:BUILTIN_NAMES",
        "_long": "mfphys.storage:long_name",
        "_dynamics_variables": "mfphys.storage:dynamics_variables",
        "_check_run_parameters": "mfphys.models.ffn.store:_check_run_parameters",
        "architecture": "mfphys.layers:architecture",
        "Layer": "mfphys.layers:Layer",
    },
    "mfphys.budget": {
        "train_estimate": "mfphys.models.ffn.budget:train_estimate",
        "step_seconds": "mfphys.models.ffn.budget:step_seconds",
        "train_seconds": "mfphys.models.ffn.budget:train_seconds",
        "UNIT_ARRAYS": "mfphys.models.ffn.budget:UNIT_ARRAYS",
        "rnn_estimate": "mfphys.models.rnn.budget:rnn_estimate",
        "rnn_step_seconds": "mfphys.models.rnn.budget:rnn_step_seconds",
        "rnn_train_seconds": "mfphys.models.rnn.budget:rnn_train_seconds",
        "RnnTimes": "mfphys.models.rnn.budget:RnnTimes",
        "RNN_TRACE_ARRAYS": "mfphys.models.rnn.budget:RNN_TRACE_ARRAYS",
        "RNN_EVAL_ARRAYS": "mfphys.models.rnn.budget:RNN_EVAL_ARRAYS",
        "RNN_EVAL_CHUNK": "mfphys.models.rnn.budget:RNN_EVAL_CHUNK",
        "RNN_WEIGHT_ARRAYS_GBP": "mfphys.budget:WEIGHT_ARRAYS_GBP",
        "RNN_WEIGHT_ARRAYS_BP": "mfphys.budget:WEIGHT_ARRAYS_BP",
        "_rnn_calibrate": "mfphys.models.rnn.budget:_rnn_calibrate",
    },
    "mfphys.reproduce": {"*": "mfphys.models.ffn.reproduce"},
    "mfphys.perturb": {"*": "mfphys.models.ffn.perturb"},
    "mfphys.scan.spec": {
        **{k: f"mfphys.models.ffn.scan:{k}" for k in ("ARCH_OPTIONS", "ARCH_DEFAULTS", "N_CLASSES", "NOT_OPTIONS",
                                                       "NOT_SCANNABLE", "ALWAYS_SCANNED", "OPTIONS", "DEFAULTS",
                                                       "layers_of")},
        "RNN_OPTIONS": "mfphys.models.rnn.scan:RNN_OPTIONS",
        "RNN_PRESET": "mfphys.models.rnn.scan:RNN_PRESET",
        "MODELS": "mfphys.registry:BUILTIN_NAMES",
        "Family": "mfphys.family:ScanAxes",
    },
    "mfphys.describe": {"SYMBOLS": "mfphys.models.ffn.scan:SYMBOLS"},
    "mfphys.runfile": {
        "FFN": "mfphys.models.ffn.family:FAMILY",
    },
}


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def legacy_getattr(module: str):
    """A module ``__getattr__`` that forwards the module's legacy names (:data:`NAMES`)."""
    table = NAMES.get(module, {})

    def __getattr__(name: str):
        if name in table:
            return _resolve(table[name])
        if "*" in table and not name.startswith("__"):  # every other name of one family's module
            home = importlib.import_module(table["*"])
            if hasattr(home, name):
                return getattr(home, name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def _new_home(fullname: str) -> str | None:
    for old, new in MODULES.items():
        if fullname == old or fullname.startswith(old + "."):
            return new + fullname[len(old):]
    return None


class _Alias(importlib.abc.Loader):
    """Loads an old module path as the module of its new home (the same object)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.spec = module.__spec__  # the import system sets the alias's spec on it: restored below
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # the new home ran already; it keeps its own spec


class _LegacyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = _new_home(fullname) if fullname.startswith("mfphys.") else None
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the legacy finder in front of ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _LegacyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LegacyFinder())
