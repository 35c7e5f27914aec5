"""Fused element-wise kernels for the hot spots of a training step.

Each function here computes one formula of docs/model.md on weight- or activity-shaped arrays.
On NumPy it is plain array code (written to make few passes and few temporaries); on CuPy the
same formula runs as one fused CUDA kernel (``cupy.ElementwiseKernel``), because at the
paper's small shapes a GPU step is bound by kernel launches, not arithmetic
(``bench/README.md``). The two versions are the same formula twice, so the NumPy/CuPy
agreement tests (``tests/models/ffn/test_model.py``, ``tests/models/ffn/test_train.py``, marker ``gpu``) and the
finite-difference tests guard both.

On NumPy arrays, when Numba is installed, the same loops run compiled from
:mod:`mfphys.cpu_kernels`: one pass per formula, bit for bit the NumPy code's result (that
module says how), so seeded runs give the same numbers with or without Numba.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import cpu_kernels as _cpu
from .backend import namespace_of


def _is_cupy(a) -> bool:
    # NumPy arrays first: asked several times per step, on the CPU path it must cost nothing
    return type(a) is not np.ndarray and type(a).__module__.split(".")[0] == "cupy"


@functools.cache
def _cuda():
    import cupy as cp

    return {
        # (mu / sqrt n, var / n) from (pi, m, Xi): docs/model.md sections 1-2
        "moments": cp.ElementwiseKernel(
            "T pi, T m, T xi, T c_mu, T c_var", "T mu_hat, T var_hat",
            "T q = 1 - pi; mu_hat = q * m * c_mu; var_hat = q * (xi + pi * m * m) * c_var;",
            "mfphys_moments"),
        # h = G + s eps and w = eps / s (0 where s = 0): docs/model.md sections 2-3
        "noise": cp.ElementwiseKernel(
            "T G, T Delta, T e", "T h, T w",
            "T s = sqrt(Delta); h = G + s * e; w = s > 0 ? e / s : (T)0;",
            "mfphys_noise"),
        # chain rule through mu(m, pi) and var(m, pi, Xi): docs/model.md section 3
        "chain": cp.ElementwiseKernel(
            "T pi, T m, T xi, T g_mu, T g_var", "T d_pi, T d_m, T d_xi",
            "T q = 1 - pi;"
            "d_pi = -m * g_mu + ((1 - 2 * pi) * m * m - xi) * g_var;"
            "d_m = q * g_mu + 2 * pi * q * m * g_var;"
            "d_xi = q * g_var;",
            "mfphys_chain"),
        # Adam + decay + projection, in place: docs/model.md section 4
        "adam": cp.ElementwiseKernel(
            "T g, T lr, T c1, T c2, T b1, T b2, T eps, T wd, T lo, T hi", "T theta, T mu, T nu",
            "mu = b1 * mu + (1 - b1) * g; nu = b2 * nu + (1 - b2) * g * g;"
            "T step = (mu / c1) / (sqrt(nu / c2) + eps);"
            "T t = theta - lr * (step + wd * theta); t = t < lo ? lo : t; theta = t > hi ? hi : t;",
            "mfphys_adam"),
    }


def scaled_moments(pi, m, xi, n: int):
    """``mu / sqrt(n)`` and ``var / n`` (docs/model.md sections 1-2) in one pass."""
    c_mu, c_var = 1 / math.sqrt(n), 1 / n
    if _is_cupy(m):
        dt = m.dtype.type
        return _cuda()["moments"](pi, m, xi, dt(c_mu), dt(c_var))
    if _cpu.applies(pi, m, xi) and pi.flags.c_contiguous and m.flags.c_contiguous and xi.flags.c_contiguous:
        dt = m.dtype.type
        mu_hat, var_hat = np.empty_like(m), np.empty_like(m)
        _cpu.kernels()["moments"](_cpu.flat(pi), _cpu.flat(m), _cpu.flat(xi), dt(1), dt(c_mu), dt(c_var),
                                  _cpu.flat(mu_hat), _cpu.flat(var_hat))
        return mu_hat, var_hat
    q = 1 - pi
    mu_hat = q * m
    var_hat = pi * m
    var_hat *= m
    var_hat += xi
    var_hat *= q
    mu_hat *= c_mu
    var_hat *= c_var
    return mu_hat, var_hat


def noisy_preactivation(G, Delta, e):
    """``h = G + sqrt(Delta) eps`` and ``w = eps / sqrt(Delta)`` (0 where ``Delta = 0``).

    ``d h / d Delta = eps / (2 s)`` is infinite where ``s = 0``; there the variance path
    carries no signal, so it is masked to 0 instead of producing NaN (docs/model.md section 3).
    """
    if _is_cupy(G):
        return _cuda()["noise"](G, Delta, e)
    if _cpu.applies(G, Delta, e) and G.shape == Delta.shape == e.shape:
        h, w, _, _ = _noise_compiled(G, Delta, e, relu=False)
        return h, w
    xp = namespace_of(G)
    s = xp.sqrt(Delta)
    h = s * e
    h += G
    pos = s > 0
    s[~pos] = 1
    w = e / s
    w *= pos
    return h, w


def chain_rule(pi, m, xi, g_mu, g_var):
    """Gradients w.r.t. (pi, m, Xi) from those w.r.t. (mu, var) (docs/model.md section 3)."""
    if _is_cupy(m):
        return _cuda()["chain"](pi, m, xi, g_mu, g_var)
    if _cpu.applies(pi, m, xi, g_mu, g_var) and m.shape == g_mu.shape == g_var.shape:
        dt = m.dtype.type
        args = [_cpu.flat(np.ascontiguousarray(a)) for a in (pi, m, xi, g_mu, g_var)]
        out = [np.empty(m.shape, m.dtype) for _ in range(3)]
        _cpu.kernels()["chain"](*args, dt(1), dt(2), *(_cpu.flat(o) for o in out))
        return tuple(out)
    q = 1 - pi
    mg = m * g_var  # m g_var, shared by d_pi and d_m
    d_xi = q * g_var
    d_m = 2 * pi
    d_m *= mg
    d_m += g_mu
    d_m *= q
    d_pi = 1 - 2 * pi
    d_pi *= m
    d_pi *= mg  # (1 - 2 pi) m^2 g_var
    d_pi -= xi * g_var
    d_pi -= m * g_mu
    return d_pi, d_m, d_xi


def adam_leaf(theta, g, mu, nu, *, lr, c1, c2, b1, b2, eps, wd, lo=-math.inf, hi=math.inf):
    """One Adam step with decay and projection on one array, in place (docs/model.md section 4).

    ``theta -= lr * (mu_hat / (sqrt(nu_hat) + eps) + wd * theta)``, then clip to [lo, hi].
    ``g`` is used as scratch space.
    """
    if _is_cupy(theta):
        dt = theta.dtype.type
        _cuda()["adam"](g, *(dt(v) for v in (lr, c1, c2, b1, b2, eps, wd, lo, hi)), theta, mu, nu)
        return
    if (_cpu.applies(theta, g, mu, nu) and theta.flags.c_contiguous and g.flags.c_contiguous
            and mu.flags.c_contiguous and nu.flags.c_contiguous):
        # the constants exactly as the NumPy lines below round them (Python floats -> dtype)
        dt = theta.dtype.type
        clip = lo > -math.inf or hi < math.inf
        _cpu.kernels()["adam"](_cpu.flat(theta), _cpu.flat(g), _cpu.flat(mu), _cpu.flat(nu), dt(b1), dt(1 - b1),
                               dt(b2), dt(1 - b2), dt(1 / math.sqrt(c2)), dt(eps), dt(lr / c1), dt(1 - lr * wd),
                               bool(wd), dt(lo), dt(hi), clip)
        return
    xp = namespace_of(theta)
    mu *= b1
    mu += (1 - b1) * g
    g *= g  # the gradient is scratch: reuse it for g**2
    g *= 1 - b2
    nu *= b2
    nu += g
    denom = xp.sqrt(nu, out=g)
    denom *= 1 / math.sqrt(c2)
    denom += eps
    step = xp.divide(mu, denom, out=denom)
    step *= lr / c1
    if wd:
        theta *= 1 - lr * wd
    theta -= step
    if lo > -math.inf or hi < math.inf:
        xp.clip(theta, lo, hi, out=theta)


def _noise_compiled(G, Delta, e, *, relu: bool):
    dt = G.dtype.type
    h, w = np.empty(G.shape, G.dtype), np.empty(G.shape, G.dtype)
    a, a2 = (np.empty(G.shape, G.dtype), np.empty(G.shape, G.dtype)) if relu else (h, w)
    _cpu.kernels()["noise"](*(_cpu.flat(v) for v in (G, Delta, e)), dt(0), dt(1), relu,
                            *(_cpu.flat(v) for v in (h, w, a, a2)))
    return h, w, a, a2


def noisy_relu(G, Delta, e):
    """:func:`noisy_preactivation`, then a hidden ReLU layer's output ``a = max(h, 0)`` and ``a**2``.

    Returns ``(h, w, a, a2)``; one pass with the compiled CPU kernels, else the NumPy steps of
    ``mfphys.models.ffn.model.forward`` (docs/model.md sections 2-3).
    """
    if not _is_cupy(G) and _cpu.applies(G, Delta, e) and G.shape == Delta.shape == e.shape:
        return _noise_compiled(G, Delta, e, relu=True)
    h, w = noisy_preactivation(G, Delta, e)
    xp = namespace_of(h)
    a = xp.maximum(h, 0)
    return h, w, a, a * a


def scaled_deltas(delta, w, c_mu: float, c_var: float):
    """``(delta c_mu, delta w, delta w c_var)``: what the gBP backward pass multiplies by the
    layer's inputs (docs/model.md section 3), with ``c_mu = 1/sqrt(n)``, ``c_var = 0.5/n``."""
    if not _is_cupy(delta) and _cpu.applies(delta, w) and delta.shape == w.shape:
        dt = delta.dtype.type
        out = [np.empty(delta.shape, delta.dtype) for _ in range(3)]
        _cpu.kernels()["scale_delta"](_cpu.flat(delta), _cpu.flat(w), dt(c_mu), dt(c_var),
                                      *(_cpu.flat(o) for o in out))
        return tuple(out)
    dw = delta * w
    return delta * c_mu, dw, dw * c_var


def relu_delta(da, t, a, h):
    """``(da + t a) * relu'(h)``: dLoss/dh of a hidden ReLU layer from its output's gradient
    through the mean (``da``) and the variance path (``t a``), docs/model.md section 3.
    ``da`` may be overwritten."""
    if not _is_cupy(da) and _cpu.applies(da, t, a, h) and da.shape == t.shape == a.shape == h.shape:
        dt = da.dtype.type
        out = np.empty(da.shape, da.dtype)
        _cpu.kernels()["relu_delta"](*(_cpu.flat(v) for v in (da, t, a, h)), dt(0), dt(1), _cpu.flat(out))
        return out
    da += t * a
    return da * (h > 0).astype(h.dtype)
