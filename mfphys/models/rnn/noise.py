"""The per-step noise of the recurrent model (docs/model-rnn.md section 2), one stream per replica.

Every replica draws from its own generator (``backend.replica_rngs(seed, R, NOISE)``), in the
order ``eps``, ``eps_out``, ``private``, so replica ``r`` of an R-replica run sees the numbers
of a one-replica run seeded ``seed + r``.

On the host the normals come from the Box-Muller transform of uniforms in the compute dtype:
in float32 it is about four times faster than NumPy's ziggurat (bench/README.md), and a
row-wise MNIST epoch draws 72 million of them. Its float32 tails stop at about 5.8 standard
deviations (the smallest uniform is 2^-24), which the training noise never misses. On a GPU
they come from CuPy's generator, seeded from the replica's host stream.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .model import Noise, RnnSpec


def standard_normal(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Fill the contiguous host array ``out`` with standard normals (Box-Muller, dtype of ``out``)."""
    flat = out.reshape(-1)
    n = flat.size
    half = (n + 1) // 2
    rad = rng.random(half, dtype=out.dtype)
    ang = rng.random(half, dtype=out.dtype)
    np.subtract(1, rad, out=rad)  # in (0, 1]: the logarithm stays finite
    np.log(rad, out=rad)
    rad *= -2
    np.sqrt(rad, out=rad)
    ang *= 2 * math.pi
    np.multiply(np.cos(ang), rad, out=flat[:half])
    np.sin(ang, out=ang)
    ang *= rad
    flat[half:] = ang[: n - half]
    return out


def device_rngs(host_rngs, be):
    """The generators the noise is drawn from: the host streams on NumPy, CuPy generators seeded from them on a GPU."""
    if be.name == "numpy":
        return list(host_rngs)
    return [be.device_rng(int(g.integers(2**32))) for g in host_rngs]


def on_device(host_rngs, xp):
    """CuPy generators seeded from the host generators ``host_rngs`` (one draw of each), for
    draws made where the arrays are (:func:`device_rngs` without a Backend)."""
    return [xp.random.RandomState(int(g.integers(2**32))) for g in host_rngs]


def _fill(rngs, shape, xp, dtype):
    R = len(rngs)
    if isinstance(rngs[0], np.random.Generator):
        out = np.empty((R,) + shape, dtype)
        for r, g in enumerate(rngs):
            standard_normal(g, out[r])
        return xp.asarray(out)
    return xp.stack([g.standard_normal(shape, dtype=dtype) for g in rngs])


def draw(rngs, spec: RnnSpec, steps: int, batch: int, *, bp: bool = False, xp=np, dtype=np.float32) -> Noise:
    """The noise of one mini-batch of ``batch`` sequences of ``steps`` steps, time-major.

    The mean-field noise (``eps``, ``eps_out``) is off in BP mode; the private noise is drawn
    whenever ``spec.sigma_rec > 0`` (it belongs to the dynamics, not to the ensemble).
    """
    eps = eps_out = private = None
    if not bp:
        eps = _fill(rngs, (steps, batch, spec.n), xp, dtype)
        out_shape = (batch, spec.n_out) if spec.readout == "last" else (steps, batch, spec.n_out)
        eps_out = _fill(rngs, out_shape, xp, dtype)
    if spec.sigma_rec > 0:
        private = _fill(rngs, (steps, batch, spec.n), xp, dtype)
    return Noise(eps, eps_out, private)


def ahead_pays(rngs) -> bool:
    """Whether drawing the next mini-batch's noise on a second thread can save time: the draws
    are on the host (NumPy releases the GIL while it fills them) and the process has a second
    core, which a recurrent run's one BLAS thread leaves idle (bench/README.md)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus > 1 and isinstance(rngs[0], np.random.Generator)


_DRAWERS: dict = {}
_DRAWERS_LOCK = threading.Lock()


def _drawer() -> ThreadPoolExecutor:
    """This process's noise thread. One per process id: a process forked from one that had it
    (a Dask worker, say) inherits the executor but not its thread, and would wait forever."""
    pid = os.getpid()
    with _DRAWERS_LOCK:
        ex = _DRAWERS.get(pid)
        if ex is None:
            _DRAWERS.clear()
            ex = _DRAWERS[pid] = ThreadPoolExecutor(1, thread_name_prefix="mfphys-noise")
        return ex


def with_noise(batches, draw_for, *, ahead: bool):
    """``(batch, draw_for(batch))`` for every mini-batch of ``batches``, in order.

    With ``ahead``, the noise of batch ``i + 1`` is drawn on a second thread while the caller
    trains on batch ``i``. Every replica's stream is still read by one thread at a time and in
    the same order, and nothing is drawn past the epoch's last batch, so the numbers (and the
    streams' states after the epoch) are exactly those drawn in line.
    """
    it = iter(batches)
    if not ahead:
        for b in it:
            yield b, draw_for(b)
        return
    ex = _drawer()
    nxt = next(it, None)
    fut = None if nxt is None else ex.submit(draw_for, nxt)
    try:
        while nxt is not None:
            cur, nz = nxt, fut.result()
            fut = None
            nxt = next(it, None)
            if nxt is not None:
                fut = ex.submit(draw_for, nxt)
            yield cur, nz
    finally:  # an epoch cut short (divergence, Ctrl-C): let the pending draw end before its streams are dropped
        if fut is not None and not fut.cancel():
            fut.exception()  # waits for it
