"""Lazy re-exports for package ``__init__`` modules (PEP 562), so importing a package stays light."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, table: dict, namespace: dict):
    """``__getattr__`` and ``__dir__`` for ``package``: name -> its submodule in ``table``, imported
    on first access and then kept in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(f".{table[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
