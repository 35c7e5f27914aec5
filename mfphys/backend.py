"""Array backend: NumPy on the CPU, CuPy on a GPU, chosen once at the edge.

Numerical code receives ``xp`` (the array namespace) through a :class:`Backend` and never
imports NumPy or CuPy itself for computing, so the same functions run on both.

Random numbers: every replica ``r`` of a run seeded ``seed`` owns the streams of
``numpy.random.SeedSequence(seed + r)`` (so replica ``r`` of an R-replica run is the same
computation as a 1-replica run seeded ``seed + r``). Initial parameters and the mini-batch
order are always drawn on the host with NumPy (identical on both backends); the per-step
noise ``eps`` is drawn on the device by default (fast), or on the host with
``host_noise=True`` (slower on a GPU, but bit-identical noise on both backends, which the
NumPy/CuPy agreement tests use).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import MfphysError, quote

BACKENDS = ("auto", "numpy", "cupy")

#: the independent random streams of a replica (the ``stream`` of :func:`replica_rngs`): initial
#: parameters, mini-batch order, host noise, sampled evaluation (training), and the random choice
#: of very important / variable connections (perturbation experiment)
INIT, ORDER, NOISE, EVAL, SELECT_VIP, SELECT_VARIABLE = range(6)


def generator_from_state(state: dict) -> np.random.Generator:
    """A NumPy generator continuing from a stored bit-generator state (a run file's ``rng_state``)."""
    bit = getattr(np.random, state["bit_generator"])(0)
    bit.state = state
    return np.random.Generator(bit)


def replica_rngs(seed: int, replicas: int, stream: int) -> list[np.random.Generator]:
    """One NumPy generator per replica ``r`` for one purpose: child ``stream`` of
    ``SeedSequence(seed + r)`` (the same as ``SeedSequence(seed + r).spawn(n)[stream]`` for any
    ``n > stream``), so replica ``r`` of an R-replica run repeats a 1-replica run seeded ``seed + r``."""
    if seed < 0:
        raise MfphysError(f"seed must be >= 0, got {seed}")
    return [np.random.default_rng(np.random.SeedSequence(seed + r, spawn_key=(stream,))) for r in range(replicas)]
DTYPES = ("float32", "float64")


@functools.lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """Whether CuPy can really compute on a GPU here, and why not.

    Importing CuPy is not enough (on a machine without a driver it imports and fails at
    the first allocation), so this allocates, computes and synchronises a tiny array.
    """
    try:
        import cupy

        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            return False, "no CUDA device found"
        a = cupy.arange(4, dtype=cupy.float32)
        float((a @ a).get())
        cupy.cuda.Stream.null.synchronize()
        return True, f"{n} CUDA device(s)"
    except ImportError:
        return False, "CuPy is not installed (pip install -e '.[gpu]')"
    except Exception as exc:  # any CUDA failure means: no usable GPU
        return False, f"CuPy cannot use a GPU ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"


@dataclass(frozen=True)
class Backend:
    """The array namespace ``xp`` and floating dtype a computation runs with."""

    name: str  # "numpy" or "cupy"
    xp: Any
    dtype: Any  # numpy dtype object

    def asarray(self, a, dtype=None):
        """Move a host array to this backend (in ``dtype``, default the float dtype)."""
        return self.xp.asarray(a, dtype=self.dtype if dtype is None else dtype)

    def to_numpy(self, a) -> np.ndarray:
        """Bring an array back to the host as NumPy."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def device_rng(self, seed: int):
        """A generator on the device for per-step noise: ``.standard_normal(size, dtype=...)``.

        CuPy's ``RandomState`` (cuRAND) is used because its ``standard_normal`` takes a
        ``dtype``, so float32 noise is drawn as float32 on the GPU.
        """
        if self.name == "cupy":
            return self.xp.random.RandomState(seed)
        return np.random.default_rng(seed)

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings)."""
        if self.name == "cupy":
            self.xp.cuda.Stream.null.synchronize()

    def describe(self) -> str:
        if self.name == "cupy":
            dev = self.xp.cuda.Device()
            props = self.xp.cuda.runtime.getDeviceProperties(dev.id)
            gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            return f"cupy {self.xp.__version__} on {gpu} ({np.dtype(self.dtype).name})"
        return f"numpy {np.__version__} on CPU ({np.dtype(self.dtype).name})"


def get_backend(name: str = "auto", dtype: str = "float32") -> Backend:
    """Resolve a backend by name: ``auto`` takes CuPy only when a GPU really works."""
    if dtype not in DTYPES:
        raise MfphysError(f"unknown dtype {quote(dtype)}: choose one of {', '.join(DTYPES)}")
    if name not in BACKENDS:
        raise MfphysError(f"unknown backend {quote(name)}: choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        name = "cupy" if gpu_status()[0] else "numpy"
    if name == "cupy":
        ok, why = gpu_status()
        if not ok:
            raise MfphysError(f"--backend cupy needs a working GPU: {why}; use --backend numpy or auto")
        import cupy

        return Backend("cupy", cupy, np.dtype(dtype))
    return Backend("numpy", np, np.dtype(dtype))


def to_host(a) -> np.ndarray:
    """Any array as a NumPy array: a CuPy array through ``.get()`` (CuPy refuses ``np.asarray``)."""
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    return np.asarray(a)


def namespace_of(*arrays) -> Any:
    """The array namespace shared by ``arrays``; a clear error when NumPy and CuPy are mixed."""
    if all(type(a) is np.ndarray for a in arrays):  # the common CPU case, asked on every step
        return np
    kinds = {type(a).__module__.split(".")[0] for a in arrays if hasattr(a, "shape")}
    if len(kinds) > 1:
        raise TypeError(f"arrays from different backends were mixed: {sorted(kinds)}")
    if kinds == {"cupy"}:
        import cupy

        return cupy
    return np
