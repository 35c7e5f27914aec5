"""Compiled CPU versions of the element-wise kernels of :mod:`mfphys.kernels` (Numba, optional).

At the paper's small shapes a NumPy step spends as long in element-wise passes (each a
separate loop over the array, with temporaries) as in its matrix products (bench/README.md).
Each function here fuses one formula of docs/model.md into a single loop over the elements.

**Bit for bit the NumPy result.** Every loop performs, element by element, exactly the
operations of the NumPy code in :mod:`mfphys.kernels` in the same order and the same
precision: no fast-math (no reassociation, no fused multiply-add), the Python-float
constants of the NumPy code rounded to the array's dtype the way NumPy does, the same
treatment of ``-0.0`` and NaN (``np.maximum``, ``np.clip``, multiplication by a boolean mask).
So a seeded run gives the same numbers with and without Numba; ``tests/test_kernels.py``
checks each kernel against the NumPy path bit for bit, special values included, and a whole
training run of each family.

Numba is optional (``pip install "mfphys[fast]"``): without it, or with the environment
variable ``MFPHYS_NUMBA=0`` (read once, when the kernels are first asked for), :func:`available`
is False and the NumPy code runs. The random numbers are never drawn here: Numba's own
normal generator does not reproduce NumPy's streams in every case, and the noise must stay the
seeded stream of docs/model.md section 4.
"""

from __future__ import annotations

import functools
import os

import numpy as np

#: the environment variable that turns the compiled kernels off ("0")
ENV_VAR = "MFPHYS_NUMBA"

_override: list = [None]  # set by :func:`enabled`; None = the environment decides


@functools.cache
def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


@functools.cache
def _env_on() -> bool:
    """The environment's word (:data:`ENV_VAR`), read once per process: the kernels ask on every
    call, and reading ``os.environ`` each time cost a few per cent of a small step."""
    return os.environ.get(ENV_VAR, "1").strip() not in ("0", "false", "no", "off")


def available() -> bool:
    """Whether the compiled kernels are used: Numba importable and not turned off."""
    on = _override[0]
    if on is None:
        on = _env_on()
    return bool(on) and _numba() is not None


class enabled:
    """Context manager (and switch) forcing the compiled kernels on or off: ``with enabled(False): ...``.

    Used by the tests and benchmarks to run the NumPy path and the compiled path side by side.
    """

    def __init__(self, on: bool | None):
        self.on, self.before = on, _override[0]
        _override[0] = on

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _override[0] = self.before


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def applies(*arrays) -> bool:
    """True when the compiled kernels can take these arrays: NumPy, one float dtype, Numba on."""
    dt = arrays[0].dtype if type(arrays[0]) is np.ndarray else None
    if dt not in _FLOATS:
        return False
    for a in arrays[1:]:
        if type(a) is not np.ndarray or a.dtype != dt:
            return False
    return available()


def flat(a):
    """A 1-D C-contiguous view of ``a`` (a copy when ``a`` is strided, e.g. one layer's part of a
    noise draw): the kernels loop over one index, which the compiler turns into vector code."""
    return a.ravel()


@functools.cache
def kernels():
    """The compiled loops (compiled on first use, cached on disk by Numba)."""
    nb = _numba()
    jit = nb.njit(cache=True, fastmath=False, nogil=True, error_model="numpy")

    @jit
    def inv_noise(ev, s, zero, one):
        # NumPy: w = (e / (s if s > 0 else 1)) * (s > 0); e / 1 * False keeps the sign of zero NumPy gives
        return (ev / s) * one if s > zero else ev * zero

    @jit
    def relu(hv, zero):
        # NumPy: maximum(h, 0), which propagates NaN and makes maximum(-0.0, 0) +0.0
        if hv > zero or hv != hv:
            return hv
        return zero

    @jit
    def moments(pi, m, xi, one, c_mu, c_var, mu_hat, var_hat):
        # NumPy: q = 1 - pi; mu_hat = q m c_mu; var_hat = (((pi m) m) + xi) q c_var
        for i in range(m.size):
            q = one - pi[i]
            mu_hat[i] = (q * m[i]) * c_mu
            var_hat[i] = ((((pi[i] * m[i]) * m[i]) + xi[i]) * q) * c_var

    @jit
    def noise(G, D, e, zero, one, is_relu, h, w, a, a2):
        # NumPy: s = sqrt(D); h = s e + G; w = (e / (s if s > 0 else 1)) * (s > 0);
        # then, for a hidden ReLU layer, a = maximum(h, 0) and a2 = a a
        for i in range(G.size):
            s = np.sqrt(D[i])
            ev = e[i]
            hv = s * ev + G[i]
            h[i] = hv
            w[i] = inv_noise(ev, s, zero, one)
            if is_relu:
                av = relu(hv, zero)
                a[i] = av
                a2[i] = av * av

    @jit
    def scale_delta(delta, w, c_mu, c_var, d_mu, dw, dw_var):
        # NumPy: d_mu = delta c_mu; dw = delta w; dw_var = dw c_var
        for i in range(delta.size):
            dv = delta[i]
            d_mu[i] = dv * c_mu
            t = dv * w[i]
            dw[i] = t
            dw_var[i] = t * c_var

    @jit
    def relu_delta(da, t, a, h, zero, one, out):
        # NumPy: da += t a; delta = da * (h > 0).astype(dtype)
        for i in range(da.size):
            v = da[i] + t[i] * a[i]
            out[i] = v * (one if h[i] > zero else zero)

    @jit
    def chain(pi, m, xi, g_mu, g_var, one, two, d_pi, d_m, d_xi):
        # NumPy (kernels.chain_rule): q = 1 - pi; mg = m g_var; d_xi = q g_var;
        # d_m = (((2 pi) mg) + g_mu) q; d_pi = ((((1 - 2 pi) m) mg) - xi g_var) - m g_mu
        for i in range(m.size):
            p, mv, gv, gm = pi[i], m[i], g_var[i], g_mu[i]
            q = one - p
            mg = mv * gv
            d_xi[i] = q * gv
            p2 = two * p
            d_m[i] = ((p2 * mg) + gm) * q
            d_pi[i] = ((((one - p2) * mv) * mg) - xi[i] * gv) - mv * gm

    @jit
    def adam(theta, g, mu, nu, b1, one_b1, b2, one_b2, inv_sqrt_c2, eps, lr_c1, decay, use_decay, lo, hi, clip):
        # NumPy (kernels.adam_leaf): mu = mu b1 + (1 - b1) g; nu = nu b2 + (g g)(1 - b2);
        # step = (mu / (sqrt(nu) inv_sqrt_c2 + eps)) (lr / c1); theta = theta (1 - lr wd) - step; clip
        for i in range(theta.size):
            gv = g[i]
            mv = mu[i] * b1 + one_b1 * gv
            mu[i] = mv
            nv = nu[i] * b2 + (gv * gv) * one_b2
            nu[i] = nv
            step = (mv / (np.sqrt(nv) * inv_sqrt_c2 + eps)) * lr_c1
            t = theta[i]
            if use_decay:
                t = t * decay
            t = t - step
            if clip:
                if t < lo:
                    t = lo
                if t > hi:
                    t = hi
            theta[i] = t

    @jit
    def rnn_step(G, V, t, mm, mm2, E, h, leak, alpha, zero, one, W, r, r2):
        # step t of the recurrent forward pass (docs/model-rnn.md section 2), after its two products
        # mm = r_{t-1} mu_r^T and mm2 = r_{t-1}^2 var_r^T; arrays (R, [T,] B*N), C order.
        # NumPy (mfphys.models.rnn.model.forward): g = G[t] + mm; D2 = V[t] + mm2 (both kept);
        # u = s e + g, w = e / s (0 where s = 0) with s = sqrt(D2); h = h leak + u alpha;
        # r[t + 1] = maximum(h, 0); r2 = r[t + 1]^2 (the next step's left operand)
        for k in range(G.shape[0]):
            g, d2, e, w, rk = G[k, t], V[k, t], E[k, t], W[k, t], r[k, t + 1]
            hk, r2k, m1, m2 = h[k], r2[k], mm[k], mm2[k]
            for i in range(g.size):
                gv = g[i] + m1[i]
                g[i] = gv
                dv = d2[i] + m2[i]
                d2[i] = dv
                s = np.sqrt(dv)
                ev = e[i]
                u = s * ev + gv
                w[i] = inv_noise(ev, s, zero, one)
                hv = hk[i] * leak + u * alpha
                hk[i] = hv
                rv = relu(hv, zero)
                rk[i] = rv
                r2k[i] = rv * rv

    @jit
    def rnn_back_step(acc, buf, r, t, z, leak, alpha, zero, one, D, W):
        # step t < T of BPTT (docs/model-rnn.md section 4), after its two products
        # acc = d_{t+1} mu_r and buf = d~_{t+1} var_r; arrays (R, [T,] B*N), C order.
        # NumPy (mfphys.models.rnn.model.backward): acc += buf r_t; acc *= (r_t > 0);
        # z = z leak + acc; D[t - 1] = z alpha; W[t - 1] *= D[t - 1]
        for k in range(acc.shape[0]):
            a, b, rt, zk, d, w = acc[k], buf[k], r[k, t], z[k], D[k, t - 1], W[k, t - 1]
            for i in range(a.size):
                av = a[i] + b[i] * rt[i]
                av = av * (one if rt[i] > zero else zero)
                zv = zk[i] * leak + av
                zk[i] = zv
                dv = zv * alpha
                d[i] = dv
                w[i] = w[i] * dv

    return {"moments": moments, "noise": noise, "scale_delta": scale_delta, "relu_delta": relu_delta,
            "chain": chain, "adam": adam, "rnn_step": rnn_step, "rnn_back_step": rnn_back_step}
