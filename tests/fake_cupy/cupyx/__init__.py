"""The part of ``cupyx`` the tests use, for the CuPy emulation (``tests/fake_cupy/cupy``)."""

from __future__ import annotations

import contextlib

import cupy


@contextlib.contextmanager
def allow_synchronize(allow: bool):
    """As ``cupyx.allow_synchronize``: with ``False``, a host synchronisation raises ``DeviceSynchronized``."""
    old = cupy._allow_sync[0]
    cupy._allow_sync[0] = bool(allow)
    try:
        yield
    finally:
        cupy._allow_sync[0] = old


DeviceSynchronized = cupy.DeviceSynchronized
