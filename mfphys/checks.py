"""Bounds of every count and number a user gives, checked up front, in one place.

One validation path for the command line, scan TOML files and the Python API: the
configuration classes (``TrainConfig``, ``RnnConfig``), the checkpoint policy, ``perturb``, the
scan's connection options and the CLI's own options call these, so a value is refused with the
same one line wherever it comes from, before any work, and never reaches NumPy, ctypes or
netCDF as an integer they cannot hold (docs/guarantees.md "Bad input").
"""

from __future__ import annotations

import math

import numpy as np

from .errors import MfphysError
from .fileio import quote

#: the largest integer any count or seed may be: it fits a signed 64-bit integer (NumPy, netCDF
#: attributes, ctypes) with room for ``seed + r`` over the replicas
MAX_INT = 2**62
#: BLAS threads: more than any machine has cores (OpenBLAS takes a C int)
MAX_THREADS = 4096
#: sampled sub-networks of a run's final evaluation, and of each condition of ``perturb``: far
#: beyond what the paper uses (10), still a size whose accuracies (R x K float64) fit the estimate
MAX_SAMPLES = 1_000_000


def is_int(value) -> bool:
    """An integer, and not a bool (``True`` is not 1 replica)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A real number (an integer counts), not a bool and not a string."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value, *, low: int = 0, high: int = MAX_INT, hint: str = "", positive: bool = True) -> int:
    """``value`` as an int within ``[low, high]``, or one line naming the option (``--epochs``);
    ``positive``: say "positive" rather than ">= 1" for a lower bound of 1."""
    if not is_int(value):
        raise MfphysError(f"{name} must be an integer, got {quote(value)}")
    if value < low:
        what = "positive" if low == 1 and positive else f">= {low}"
        raise MfphysError(f"{name} must be {what}, got {value}{hint}")
    if value > high:
        raise MfphysError(f"{name} must be at most {high:,}, got {quote(value)}")
    return int(value)


def check_real(name: str, value, *, low: float = 0.0, high: float = math.inf, closed_low: bool = True) -> float:
    """``value`` as a finite float in ``[low, high)`` (``(low, high)`` unless ``closed_low``), or one line."""
    if not is_real(value):
        raise MfphysError(f"{name} must be a number, got {quote(value)}")
    ok = math.isfinite(value) and (value >= low if closed_low else value > low) and value < high
    if not ok:
        if not math.isinf(high):
            what = f"a number in [{low:g}, {high:g})"
        elif closed_low:
            what = f"a finite number >= {low:g}"
        else:
            what = "a positive number" if low == 0 else f"a finite number > {low:g}"
        raise MfphysError(f"{name} must be {what}, got {value}")
    return float(value)


def check_choice(name: str, value, choices) -> str:
    """One of ``choices`` (an empty string is not "the default"), or one line listing them."""
    if value not in choices:
        raise MfphysError(f"unknown {name} {quote(value)}: choose one of {', '.join(map(str, choices))}")
    return value


def check_dynamics_every(value) -> int:
    """``--dynamics-every``: an integer >= 0 (0 = the log-spaced epochs only), at most :data:`MAX_INT`."""
    return check_int("--dynamics-every", value, low=0, hint=" (0 = log-spaced epochs only)")


def check_blas_threads(value) -> int | None:
    """``--blas-threads``: None (the BLAS library's choice) or 1 ... :data:`MAX_THREADS`."""
    return None if value is None else check_int("--blas-threads", value, low=1, high=MAX_THREADS, positive=False)


def check_scan_options(*, workers=None, blas_threads=None, connect_timeout: float = 5.0) -> None:
    """The options of how a scan runs (``--workers``, ``--blas-threads``, ``--connect-timeout``)."""
    if workers is not None:
        check_int("--workers", workers, low=1, high=MAX_THREADS, positive=False)
    check_blas_threads(blas_threads)
    check_real("--connect-timeout", connect_timeout, low=0.0, closed_low=False)
