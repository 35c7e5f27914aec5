"""The toy model family of ``tests/models/toypkg``, registered as an installed package registers one.

``toypkg`` holds the package ``mfphys_toy`` and its ``mfphys_toy-0.1.dist-info`` (the metadata and
``entry_points.txt`` that ``pip install`` writes); putting the folder on ``sys.path`` is what
installing it does, and :func:`mfphys.registry.reload` reads the entry points again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from mfphys import registry

TOYPKG = Path(__file__).resolve().parent / "toypkg"


@contextlib.contextmanager
def toy_installed():
    """The toy family registered (entry point group ``mfphys.families``) inside the block only."""
    added = str(TOYPKG) not in sys.path
    if added:
        sys.path.insert(0, str(TOYPKG))
    registry.reload()
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(TOYPKG))
            for name in [m for m in sys.modules if m == "mfphys_toy" or m.startswith("mfphys_toy.")]:
                del sys.modules[name]
        registry.reload()


def toy_env() -> dict:
    """The environment of a subprocess in which the toy family is installed."""
    path = os.pathsep.join(p for p in (str(TOYPKG), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
