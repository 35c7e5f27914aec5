"""Memory and disk a training run will need, estimated before anything is allocated.

A run that cannot fit should be refused in one line at the start, not grow for minutes and
be killed by the kernel, nor die in its sampled evaluation after all the training. Each model
family counts the arrays its training loop really holds and the run file it writes
(:meth:`mfphys.family.ModelFamily.estimate`, ``mfphys/models/<name>/budget.py``); this module
holds what they share: the :class:`Estimate`, the memory available, and the check that refuses.
Estimates are meant to be right within a factor of about 1.5 (``tests/test_budget.py``
compares them with traced peaks); the check leaves that margin.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

from .errors import MfphysError
from .fileio import mib

#: arrays of the shape of the weights, per replica, in every family: pi, m, Xi; Adam's two
#: moments of each trainable one; their gradients; the forward/backward temporaries (mean, variance of the
#: weights, their transposes, the updated parameters before projection)
WEIGHT_ARRAYS_GBP, WEIGHT_ARRAYS_BP = 3 + 6 + 3 + 6, 3 + 2 + 1 + 3
#: the process itself: interpreter, NumPy, xarray, netCDF4 (measured: about 150 MB)
BASE = 160 << 20
#: what the check leaves free of the available memory
MARGIN = 0.9


class Estimate(NamedTuple):
    """Bytes by part (``memory``), their peak sum, and the run file's size (``disk``)."""

    memory: dict
    peak: int
    disk: int

    def describe(self) -> str:
        parts = ", ".join(f"{k} {mib(v)}" for k, v in self.memory.items() if v >= 1 << 20)
        return f"about {mib(self.peak)} ({parts})"


def available_memory() -> int | None:
    """Memory this process can still take on the host: ``MemAvailable`` (Linux), limited by a
    cgroup's limit where one is set; None where it cannot be told."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            try:
                used = int(Path(usage).read_text())
            except (OSError, ValueError):
                used = 0
            avail = min(avail, max(int(text) - used, 0))
        break
    return avail


def device_memory(backend) -> int | None:
    """Free memory of the GPU a CuPy backend computes on (None for NumPy)."""
    if getattr(backend, "name", "numpy") != "cupy":
        return None
    free, _ = backend.xp.cuda.runtime.memGetInfo()
    pool = backend.xp.get_default_memory_pool()
    return int(free + pool.free_bytes())


def check_memory(estimate: Estimate, *, available: int | None = None, what: str = "this run",
                 hint: str = "use fewer --replicas, narrower --layers, a smaller --batch-size or --n-train") -> None:
    """Refuse, in one line, a job whose estimate does not fit in the memory available now
    (``hint``: what to change, in the words of the command that asked)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    if estimate.peak > MARGIN * available:
        raise MfphysError(f"not enough memory: {what} needs {estimate.describe()}, but {mib(available)} is available; "
                          f"{hint} (mfphys train --dry-run shows the estimate)")


#: the parts of an :class:`Estimate` that a run computing on a GPU holds in GPU memory (by the
#: start of their names; the rest - the loaded data set, the history, the run file's copies, the
#: process - stays on the host)
DEVICE_PARTS = ("weights and optimizer state", "data", "largest temporary")


def device_estimate(estimate: Estimate) -> int:
    """Bytes of ``estimate`` held on the GPU when the run computes there (:data:`DEVICE_PARTS`)."""
    return int(sum(v for k, v in estimate.memory.items() if k.startswith(DEVICE_PARTS)))


def check_device_memory(estimate: Estimate, backend, *, free: int | None = None, what: str = "this run",
                        hint: str = "use fewer --replicas, a smaller --batch-size or --n-train, or --backend numpy"
                        ) -> None:
    """Refuse, in one line, a run whose GPU part (:func:`device_estimate`) does not fit in the
    free memory of the GPU it computes on (``free``: default :func:`device_memory`; nothing to
    check on NumPy), instead of a CuPy OutOfMemoryError in the middle of the run."""
    free = device_memory(backend) if free is None else free
    if free is None:
        return
    need = device_estimate(estimate)
    if need > MARGIN * free:
        raise MfphysError(f"not enough GPU memory: {what} needs about {mib(need)} on the GPU, but {mib(free)} is "
                          f"free; {hint} (mfphys train --dry-run shows the estimate)")


def check_count(name: str, n: float, limit: int) -> None:
    """Refuse a count (epochs, fractions, draws, ...) far beyond anything that could run."""
    if not math.isfinite(n) or n > limit:
        raise MfphysError(f"{name} {n:g} is more than mfphys can hold ({limit:,} at most)")


def estimate(config, **options) -> Estimate:
    """The memory and disk of a run of any family (its :meth:`~mfphys.family.ModelFamily.estimate`)."""
    from . import registry

    return registry.of_config(config).estimate(config, **options)


from ._compat import legacy_getattr  # noqa: E402

__getattr__ = legacy_getattr(__name__)
