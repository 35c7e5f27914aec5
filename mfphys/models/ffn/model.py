"""The feed-forward spike-and-slab network: mean-field forward pass, gBP backward pass, sampling.

The symbols (``pi``, ``m``, ``xi``, ``mu``, ``var``, ``G``, ``Delta``, ``eps``, ``delta``) are those of
:mod:`mfphys.layers`, which states their meaning once (docs/model.md).

Shapes: every parameter array of layer ``l`` is ``(R, N_l, N_{l-1})`` with a leading
replica axis ``R``; activities are ``(R, B, N)``. The BP baseline is the limit
``pi = Xi = 0`` (docs/model.md section 2), run through the same functions with ``bp=True``,
which skips the variance path (it is identically zero there).

All functions are pure and take/return plain ``xp`` arrays (NumPy or CuPy); the namespace
is taken from the arguments.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ... import kernels
from ...backend import namespace_of
from ...layers import (  # noqa: F401 (re-exported: the feed-forward model's public names)
    Layer,
    Params,
    architecture,
    cross_entropy,
    log_softmax,
    moments,
    onehot,
    sample_weights,
    vote,
    vote_counts,
)

# --- activations: (f(h), f'(h) given h and f(h)) ------------------------------------------


def _relu(xp, h):
    return xp.maximum(h, 0)


def _relu_d(xp, h, a):
    return (h > 0).astype(h.dtype)


def _tanh(xp, h):
    return xp.tanh(h)


def _tanh_d(xp, h, a):
    return 1 - a * a


def _sigmoid(xp, h):
    return 1 / (1 + xp.exp(-h))


def _sigmoid_d(xp, h, a):
    return a * (1 - a)


def _softplus(xp, h):
    return xp.logaddexp(0, h)


def _softplus_d(xp, h, a):
    return 1 / (1 + xp.exp(-h))


def _linear(xp, h):
    return h


def _linear_d(xp, h, a):
    return xp.ones_like(h)


ACTIVATIONS = {
    "relu": (_relu, _relu_d),
    "tanh": (_tanh, _tanh_d),
    "sigmoid": (_sigmoid, _sigmoid_d),
    "softplus": (_softplus, _softplus_d),
    "linear": (_linear, _linear_d),
}


# --- moments (the one place mu and var are computed; the project's error convention) -----------------


def scaled_moments(layer: Layer, *, bp: bool = False):
    """``mu / sqrt(n)`` and ``var / n`` of a layer: the matrices the forward pass multiplies.

    Folding the ``1/sqrt(n)`` and ``1/n`` of docs/model.md section 2 into the weight-shaped
    arrays costs one pass over them and none over the (larger) activities. With ``bp``,
    ``pi = Xi = 0`` and ``var`` is not computed (returned as ``None``).
    """
    n = layer.m.shape[-1]
    if bp:
        return layer.m * (1 / math.sqrt(n)), None
    return kernels.scaled_moments(layer.pi, layer.m, layer.xi, n)


def _t(a):
    """Swap the last two axes (a view)."""
    return a.swapaxes(-1, -2)


# --- forward and backward ------------------------------------------------------------------


class Forward(NamedTuple):
    """What the backward pass needs from the forward pass of one layer."""

    a: object  # input activity (R, B, n)
    a2: object  # a**2, or None in BP mode
    mu_hat: object  # mu / sqrt(n)
    var_hat: object  # var / n, or None in BP mode
    w: object  # eps / s where s > 0, else 0 (R, B, N_out); None in BP mode
    h: object  # pre-activation (R, B, N_out)


def forward(params: Params, x, eps, *, activation: str = "relu", bp: bool = False, x2=None):
    """Mean-field forward pass (docs/model.md section 2) with fixed noise.

    ``x``: (R, B, N_0) inputs; ``eps``: one (R, B, N_l) array per layer, or ``None`` for
    the noise-free pass (``h = G``). ``x2`` may pass a precomputed ``x**2``.
    Returns the output pre-activations ``h_L`` (logits) and the per-layer caches.
    """
    xp = namespace_of(x)
    f, _ = ACTIVATIONS[activation]
    L = len(params)
    a = x
    a2 = None if bp else (x2 if x2 is not None else x * x)
    caches = []
    for l, layer in enumerate(params):
        mu_hat, var_hat = scaled_moments(layer, bp=bp)
        G = a @ _t(mu_hat)
        nxt = None
        if bp or eps is None:
            h, w = G, None
            if not bp:  # noise-free gBP evaluation still needs nothing from var
                var_hat = None
        elif l < L - 1 and activation == "relu":
            # as below, with the layer's output and its square in the same pass
            h, w, *nxt = kernels.noisy_relu(G, a2 @ _t(var_hat), eps[l])
        else:
            # h = G + s eps, and w = eps / s masked to 0 where s = 0 (docs/model.md sections 2-3)
            h, w = kernels.noisy_preactivation(G, a2 @ _t(var_hat), eps[l])
        caches.append(Forward(a, a2, mu_hat, var_hat, w, h))
        if nxt is not None:
            a, a2 = nxt
        elif l < L - 1:
            a = f(xp, h)
            a2 = None if (bp or eps is None) else a * a
    return h, caches


def backward(params: Params, caches, delta, *, activation: str = "relu", bp: bool = False):
    """Generalized backprop (docs/model.md section 3): gradients of the loss w.r.t. (pi, m, xi).

    ``delta`` is dLoss/dh of the output layer. Returns one :class:`Layer` of gradients per
    layer; in BP mode the ``pi`` and ``xi`` entries are ``None`` (those parameters are frozen).
    """
    xp = namespace_of(delta)
    _, fprime = ACTIVATIONS[activation]
    grads = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        layer, c = params[l], caches[l]
        n = layer.m.shape[-1]
        # g_mu = (1/sqrt n) delta^T a ; g_var = (1/n) (delta eps / 2s)^T a^2   (section 3)
        if bp:
            dw = None
            g_mu = _t(delta * (1 / math.sqrt(n))) @ c.a
            grads[l] = Layer(None, g_mu, None)
        else:
            d_mu, dw, dw_var = kernels.scaled_deltas(delta, c.w, 1 / math.sqrt(n), 0.5 / n)  # dw = delta eps / s
            g_mu = _t(d_mu) @ c.a
            g_var = _t(dw_var) @ c.a2
            # chain rule through mu(m, pi) and var(m, pi, Xi)   (section 3)
            grads[l] = Layer(*kernels.chain_rule(*layer, g_mu, g_var))
        if l > 0:
            # dLoss/da = (1/sqrt n) delta mu + (1/n) (delta eps / s) var * a   (section 3)
            da = delta @ c.mu_hat
            prev = caches[l - 1]
            if not bp and activation == "relu":
                delta = kernels.relu_delta(da, dw @ c.var_hat, c.a, prev.h)
                continue
            if not bp:
                da += (dw @ c.var_hat) * c.a
            delta = da * fprime(xp, prev.h, c.a)
    return tuple(grads)


def loss_and_grad(params: Params, x, y, eps, *, activation: str = "relu", bp: bool = False, x2=None):
    """Mini-batch loss per replica (R,), gradients per layer, and the logits.

    The loss is the mean cross-entropy of the noisy mean-field output; ``eps`` is held fixed
    in the backward pass (the reparameterization of docs/model.md section 3).
    """
    logits, caches = forward(params, x, eps, activation=activation, bp=bp, x2=x2)
    loss, p, oh = cross_entropy(logits, y)
    delta = (p - oh) * (1 / logits.shape[-2])  # dLoss/dh_L for the batch-mean loss
    return loss, backward(params, caches, delta, activation=activation, bp=bp), logits


# --- evaluation ------------------------------------------------------------------------------


def predict(params: Params, x, *, activation: str = "relu", chunk: int = 4096):
    """Noise-free mean-field output (eps = 0, docs/model.md section 5): logits (R, P, C).

    ``x`` is (P, N_0), shared by all replicas; processed in chunks of ``chunk`` patterns.
    """
    xp = namespace_of(x)
    f, _ = ACTIVATIONS[activation]
    # only the mean weights enter the noise-free pass
    mats = [_t(moments(l.pi, l.m, l.xi)[0] * (1 / math.sqrt(l.m.shape[-1]))) for l in params]
    out = []
    for i in range(0, x.shape[0], chunk):
        a = x[i : i + chunk]
        for l, w in enumerate(mats):
            a = a @ w  # (P,n)@(R,n,N) broadcasts to (R,P,N)
            if l < len(mats) - 1:
                a = f(xp, a)
        out.append(a)
    return xp.concatenate(out, axis=-2)


def predict_sampled(weights, x, *, activation: str = "relu", chunk: int = 2048):
    """Outputs of sampled sub-networks ``h = w @ a / sqrt(n)``: logits (R, K, P, C)."""
    xp = namespace_of(x)
    f, _ = ACTIVATIONS[activation]
    mats = [_t(w) * (1 / math.sqrt(w.shape[-1])) for w in weights]
    out = []
    for i in range(0, x.shape[0], chunk):
        a = x[i : i + chunk]
        for l, w in enumerate(mats):
            a = a @ w
            if l < len(mats) - 1:
                a = f(xp, a)
        out.append(a)
    return xp.concatenate(out, axis=-2)


# --- initialisation ---------------------------------------------------------------------------


def init_params(layers, rngs, *, m_std: float, xi_scale: float = 0.01, bp: bool = False, dtype=np.float64):
    """Initial parameters on the host (docs/model.md section 4): pi = 0, Xi ~ xi_scale U(0,1), m ~ m_std N(0,1).

    One NumPy Generator per replica; draws in layer order (m then Xi per layer), so replica
    ``r`` gets the same numbers whatever the number of replicas. In BP mode Xi = 0.
    """
    params = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        ms, xis = [], []
        for rng in rngs:
            ms.append(m_std * rng.standard_normal((n_out, n_in)))
            xis.append(xi_scale * rng.random((n_out, n_in)))
        m = np.stack(ms).astype(dtype)
        xi = np.zeros_like(m) if bp else np.stack(xis).astype(dtype)
        params.append(Layer(np.zeros_like(m), m, xi))
    return tuple(params)
