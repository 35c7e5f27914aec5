"""Evaluation of a trained recurrent ensemble (docs/model-rnn.md section 5), four named modes.

==============  ==================================================================================
mode            network
==============  ==================================================================================
``"mean"``      the mean-field dynamics without noise: ``eps = 0`` and no private noise (``u = g``)
``"noisy"``     the mean-field dynamics with fresh noise, as in training (and the private noise)
``"quenched"``  ``K`` concrete networks: each weight drawn once from its spike-and-slab law and held
                for the whole sequence (with the private noise)
``"annealed"``  ``K`` networks whose weights are drawn afresh at every step, one draw shared by the
                mini-batch (with the private noise)
==============  ==================================================================================

For a BPTT-baseline network (``pi = Xi = 0``) all four are the same deterministic network,
up to the private noise. By default sampled weights and noise are drawn on the host from each
replica's generator (``mfphys.model.sample_weights``), so the draws do not depend on the
backend (the reference). With ``device_draws`` on a GPU they are drawn on the device, from
CuPy generators seeded from those host generators: the annealed mode redraws every matrix at
every step and the noisy mode's noise for a chunk of long sequences is hundreds of MB per
replica, which the host cannot feed (docs/gpu.md).
"""

from __future__ import annotations

import math

import numpy as np

from ...backend import namespace_of
from ...layers import sample_weights, sample_weights_on_device
from . import noise as noise_mod
from .model import RnnParams, RnnSpec, forward

EVAL_MODES = ("mean", "noisy", "quenched", "annealed")


def outputs(params: RnnParams, x, spec: RnnSpec, *, mode: str = "mean", rngs=None, samples: int = 1,
            bp: bool = False, chunk: int = 1000, device_draws: bool = False):
    """Outputs of the ensemble on inputs ``x`` (P, T, N_in) or (R, P, T, N_in), in chunks of patterns.

    ``"mean"`` and ``"noisy"`` give (R, P, N_out) (last-step readout) or (R, P, T, N_out);
    the sampled modes put the ``samples`` networks after the replica axis, (R, K, P, ...).
    ``rngs``: one NumPy generator per replica for the noise and the weight draws; with
    ``device_draws`` on CuPy, the draws come from device generators seeded from them.
    """
    if mode not in EVAL_MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}: one of {', '.join(EVAL_MODES)}")
    xp = namespace_of(x, params.recurrent.m)
    on_device = device_draws and xp is not np
    if on_device and rngs is not None and mode != "mean":
        rngs = noise_mod.on_device(rngs, xp)
    host = params if on_device else None
    if mode in ("quenched", "annealed") and not on_device:
        host = RnnParams(*(type(l)(*(_host(v) for v in l)) for l in params))
    out = []
    P = x.shape[-3]
    for i in range(0, P, chunk):
        xc = x[..., i:i + chunk, :, :]
        B, T = xc.shape[-3], xc.shape[-2]
        if mode == "mean":
            y, _ = forward(params, xc, None, spec, bp=bp)
        elif mode == "noisy":
            nz = noise_mod.draw(rngs, spec, T, B, bp=bp, xp=xp, dtype=params.recurrent.m.dtype)
            y, _ = forward(params, xc, nz, spec, bp=bp)
        else:
            y = sampled_outputs(host, xc, spec, rngs=rngs, samples=samples, annealed=mode == "annealed")
        out.append(y)
    axis = -2 if spec.readout == "last" else -3
    return xp.concatenate(out, axis=axis)


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def sampled_outputs(host_params: RnnParams, x, spec: RnnSpec, *, rngs, samples: int, annealed: bool):
    """Outputs of ``samples`` concrete networks per replica, (R, K, B, N_out) or (R, K, B, T, N_out).

    ``h_t = (1 - alpha) h_{t-1} + alpha (c_r W_r r_{t-1} + c_i W_i x_t) + sigma_rec sqrt(2 alpha) xi_t``,
    ``y = c_o W_o r`` with weights ``W`` drawn once (quenched) or at every step (annealed).
    ``host_params`` are host arrays and ``rngs`` NumPy generators (the reference), or both on
    the device (device arrays and CuPy generators, :func:`outputs` with ``device_draws``).
    """
    xp = namespace_of(x)
    device = not isinstance(rngs[0], np.random.Generator)
    dt = host_params.recurrent.m.dtype
    R, K = host_params.recurrent.m.shape[0], samples
    B, T = x.shape[-3], x.shape[-2]
    c_in, c_rec, c_out = (1 / math.sqrt(n) for n in spec.n_eff)
    xs = xp.swapaxes(x, -2, -3)[..., None, :, :, :] if x.ndim == 4 else xp.swapaxes(x, -2, -3)  # (R,1,T,B,F)/(T,B,F)

    def draw(which):
        layers = [host_params[i] for i in which]
        ws = sample_weights_on_device(layers, rngs, K) if device else sample_weights(layers, rngs, K, xp=xp)
        return [w * c for w, c in zip(ws, [(c_in, c_rec, c_out)[i] for i in which])]

    W_in, W_rec, W_out = draw((0, 1, 2))
    h = xp.full((R, K, B, spec.n), spec.h0, dtype=dt)
    r = xp.maximum(h, 0)
    priv_scale = spec.sigma_rec * math.sqrt(2 * spec.alpha)
    ys = []
    for t in range(T):
        if annealed and t > 0:
            W_in, W_rec, W_out = draw((0, 1, 2))
        u = xp.matmul(r, xp.swapaxes(W_rec, -1, -2))
        u += xp.matmul(xs[..., t, :, :], xp.swapaxes(W_in, -1, -2))
        h *= 1 - spec.alpha
        u *= spec.alpha
        h += u
        if priv_scale > 0 and device:
            h += priv_scale * xp.stack([g.standard_normal((K, B, spec.n), dtype=dt) for g in rngs])
        elif priv_scale > 0:
            h += priv_scale * xp.asarray(np.stack([noise_mod.standard_normal(g, np.empty((K, B, spec.n), dt))
                                                   for g in rngs]))
        r = xp.maximum(h, 0)
        if spec.readout == "all":
            ys.append(xp.matmul(r, xp.swapaxes(W_out, -1, -2)))
    if spec.readout == "last":
        return xp.matmul(r, xp.swapaxes(W_out, -1, -2))
    return xp.stack(ys, axis=-2)


def accuracy(y_last, labels):
    """Fraction of patterns whose largest output is the label: (..., P, C) -> (...)."""
    return (y_last.argmax(axis=-1) == labels).mean(axis=-1)

