"""The CuPy emulation of the ``gpu`` tests (tests/README.md, "The CuPy emulation").

``tests/fake_cupy/cupy`` and ``tests/fake_cupy/cupyx`` are imported as ``cupy`` and ``cupyx``
only after :func:`activate` (``MFPHYS_FAKE_CUPY=1`` or ``pytest --fake-cupy``), which puts this
folder first on ``sys.path`` and on ``PYTHONPATH`` (so that ``mfphys`` commands the tests start
see it too). Without it an installed CuPy is used, and without CuPy the ``gpu`` tests are skipped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
ENV = "MFPHYS_FAKE_CUPY"


def requested() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def activate() -> None:
    """Make ``import cupy`` give the emulation, here and in the processes started from here."""
    loaded = sys.modules.get("cupy")
    if loaded is not None and not getattr(loaded, "_FAKE", False):
        raise RuntimeError("the real CuPy is imported already: the emulation cannot replace it")
    if str(FOLDER) not in sys.path:
        sys.path.insert(0, str(FOLDER))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(FOLDER) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(FOLDER), *paths])
    os.environ[ENV] = "1"
    from mfphys.backend import gpu_status

    gpu_status.cache_clear()


def active() -> bool:
    """Whether ``cupy`` is (or will be, on import) the emulation."""
    mod = sys.modules.get("cupy")
    if mod is not None:
        return bool(getattr(mod, "_FAKE", False))
    return str(FOLDER) in sys.path
