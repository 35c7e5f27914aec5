"""The registry of model families: the one library module that knows the families' names.

The shared engine asks it for a family (:mod:`mfphys.family`) by name (:func:`get`), by
configuration (:func:`of_config`), by a run file's attributes (:func:`of_attrs`) or by result
(:func:`of_result`), and never tests a name itself. Families come from two places:

- the built-in ones, :data:`BUILTIN` (the paper's feed-forward network, ``ffn``, and the
  recurrent follow-up, ``rnn``), each defined in its folder ``mfphys/models/<name>/``;
- any installed package that declares an entry point in the group ``mfphys.families``
  (``[project.entry-points."mfphys.families"] toy = "toypkg.family:FAMILY"``, the object being a
  :class:`~mfphys.family.ModelFamily` instance, or a class or function that returns one).

Entry points are read only when a name is not built in, or when every family is listed
(:func:`families`), so ``import mfphys`` and ``mfphys --help`` stay fast.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from .errors import MfphysError
from .family import ModelFamily
from .fileio import quote

#: the entry-point group where other packages register families
GROUP = "mfphys.families"

#: built-in family name -> "module:object"
BUILTIN = {
    "ffn": "mfphys.models.ffn.family:FAMILY",
    "rnn": "mfphys.models.rnn.family:FAMILY",
}

BUILTIN_NAMES = tuple(BUILTIN)

#: the family of a run file without a ``model`` attribute and of a scan without a ``model`` key
#: (files written before there were families), and of a command that names none
DEFAULT = "ffn"

_loaded: dict[str, ModelFamily] = {}
_external: dict[str, metadata.EntryPoint] | None = None


def _entry_points() -> dict[str, metadata.EntryPoint]:
    global _external
    if _external is None:
        found = {}
        for ep in metadata.entry_points(group=GROUP):
            if ep.name not in BUILTIN:  # a built-in name cannot be taken over
                found.setdefault(ep.name, ep)
        _external = found
    return _external


def _load(name: str, target) -> ModelFamily:
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        obj = getattr(importlib.import_module(module), attr)
    else:
        obj = target.load()
    if isinstance(obj, type) or (callable(obj) and not isinstance(obj, ModelFamily)):
        obj = obj()
    if not isinstance(obj, ModelFamily):
        raise MfphysError(f"model family {quote(name)} ({target if isinstance(target, str) else target.value}) "
                          f"is not a mfphys.family.ModelFamily")
    if obj.name != name:
        raise MfphysError(f"model family registered as {quote(name)} calls itself {quote(obj.name)}")
    return obj


def names() -> tuple[str, ...]:
    """Every registered family's name: the built-in ones first, then those of installed packages."""
    return tuple(BUILTIN) + tuple(sorted(_entry_points()))


def builtin_names() -> tuple[str, ...]:
    """The built-in families' names (no entry points read: cheap enough for ``--help``)."""
    return tuple(BUILTIN)


def get(name: str | None = None) -> ModelFamily:
    """The family called ``name`` (None: :data:`DEFAULT`), or one clear error naming the known ones."""
    name = DEFAULT if name is None else str(name)
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        family = _load(name, BUILTIN[name])
    else:
        ep = _entry_points().get(name)
        if ep is None:
            raise MfphysError(f"unknown model family {quote(name)}: registered ones are {', '.join(names())}")
        family = _load(name, ep)
    _loaded[name] = family
    return family


def families() -> dict[str, ModelFamily]:
    """Every registered family, name -> family (``mfphys.families()``)."""
    return {name: get(name) for name in names()}


def is_family(name) -> bool:
    """Whether ``name`` is a registered family's name."""
    return isinstance(name, str) and (name in BUILTIN or name in _entry_points())


def of_attrs(attrs) -> ModelFamily:
    """The family of a run file, from its ``model`` attribute (none: :data:`DEFAULT`)."""
    model = attrs.get("model", DEFAULT)
    if not is_family(model):
        raise MfphysError(f"unknown model {quote(model)} in the run file: registered families are {', '.join(names())}")
    return get(model)


def of_config(config) -> ModelFamily:
    """The family whose configuration class ``config`` is an instance of."""
    for name in (*BUILTIN, *_loaded, *_entry_points()):
        family = get(name)
        if isinstance(config, family.config_class):
            return family
    raise TypeError(f"not a run configuration of any model family: {type(config).__name__}")


def of_result(result) -> ModelFamily:
    """The family of a training result (by its configuration)."""
    return of_config(result.config)


def of_scan(meta) -> ModelFamily:
    """The family of a scan, from its ``scan.json`` (``model``; none: :data:`DEFAULT`)."""
    model = meta.get("model") or DEFAULT
    if not is_family(model):
        raise MfphysError(f"unknown model {quote(model)} in scan.json: registered families are {', '.join(names())}")
    return get(model)


def reload() -> None:
    """Forget the loaded families and read the entry points again (after installing a package,
    or in tests that register a family)."""
    global _external
    _loaded.clear()
    _external = None
    metadata_cache = getattr(importlib, "invalidate_caches", None)
    if metadata_cache is not None:
        metadata_cache()
