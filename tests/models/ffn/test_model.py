"""Oracles for the numerics of mfphys.model (docs/model.md sections 1-3, 5).

- gBP gradients against central finite differences of the same loss with the same fixed
  noise, float64, every parameter kind of every layer;
- the BP limit (pi = Xi = 0): finite, and equal to an independent plain backprop;
- the mean-field pre-activation statistics (G, Delta) against explicit weight sampling.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys import model
from mfphys.model import Layer
from tests.helpers import BACKENDS, backend64

ARCHS = {1: (9, 7, 4), 2: (9, 7, 6, 4), 3: (9, 7, 6, 5, 4)}


def random_params(rng, layers, R=2, *, bp=False):
    params = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        shape = (R, n_out, n_in)
        pi = np.zeros(shape) if bp else rng.uniform(0.05, 0.9, shape)
        xi = np.zeros(shape) if bp else rng.uniform(0.05, 0.8, shape)
        params.append(Layer(pi, rng.normal(0, 1.0, shape), xi))
    return tuple(params)


def random_batch(rng, layers, R=2, B=5):
    x = rng.uniform(0.0, 1.0, (R, B, layers[0]))
    y = rng.integers(0, layers[-1], (R, B))
    eps = [rng.standard_normal((R, B, n)) for n in layers[1:]]
    return x, y, eps


def total_loss(params, x, y, eps, act, bp=False):
    logits, _ = model.forward(params, x, eps, activation=act, bp=bp)
    return float(model.cross_entropy(logits, y)[0].sum())  # replicas are independent: sum


def numeric_grad(params, kind, l, x, y, eps, act, h=1e-6):
    arr = getattr(params[l], kind)
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + h
        up = total_loss(params, x, y, eps, act)
        arr[idx] = old - h
        down = total_loss(params, x, y, eps, act)
        arr[idx] = old
        g[idx] = (up - down) / (2 * h)
    return g


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_gbp_gradients_match_finite_differences(depth, activation):
    rng = np.random.default_rng(depth * 10 + len(activation))
    layers = ARCHS[depth]
    params = random_params(rng, layers)
    x, y, eps = random_batch(rng, layers)
    _, grads, _ = model.loss_and_grad(params, x, y, eps, activation=activation)
    for l in range(len(params)):
        for kind in ("pi", "m", "xi"):
            num = numeric_grad(params, kind, l, x, y, eps, activation)
            ana = getattr(grads[l], kind)
            assert rel_err(ana, num) < 1e-5, (l + 1, kind)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_bp_limit_is_finite_and_equals_plain_backprop(depth, activation):
    rng = np.random.default_rng(7 + depth)
    layers = ARCHS[depth]
    params = random_params(rng, layers, bp=True)
    x, y, eps = random_batch(rng, layers)
    # gBP code path at pi = Xi = 0 (Delta = 0 everywhere): must stay finite
    loss_g, grads_g, _ = model.loss_and_grad(params, x, y, eps, activation=activation)
    for g in grads_g:
        for v in g:
            assert np.all(np.isfinite(v))
    # BP mode: no noise path at all
    loss_b, grads_b, _ = model.loss_and_grad(params, x, y, None, activation=activation, bp=True)
    np.testing.assert_allclose(loss_g, loss_b, rtol=1e-14)
    # an independent ordinary network: W = m / sqrt(n), h = a W^T, softmax cross-entropy
    f = {"relu": lambda h: np.maximum(h, 0), "tanh": np.tanh}[activation]
    df = {"relu": lambda h: (h > 0) * 1.0, "tanh": lambda h: 1 - np.tanh(h) ** 2}[activation]
    Ws = [p.m / math.sqrt(p.m.shape[-1]) for p in params]
    acts, hs = [x], []
    for i, W in enumerate(Ws):
        hs.append(acts[-1] @ W.transpose(0, 2, 1))
        acts.append(f(hs[-1]) if i < len(Ws) - 1 else hs[-1])
    p = np.exp(hs[-1] - hs[-1].max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    d = (p - np.eye(layers[-1])[y]) / x.shape[1]
    for i in range(len(Ws) - 1, -1, -1):
        dW = d.transpose(0, 2, 1) @ acts[i]
        dm = dW / math.sqrt(Ws[i].shape[-1])
        np.testing.assert_allclose(grads_b[i].m, dm, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(grads_g[i].m, dm, rtol=1e-10, atol=1e-14)
        assert grads_b[i].pi is None and grads_b[i].xi is None
        if i:
            d = (d @ Ws[i]) * df(hs[i - 1])


def test_bp_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    layers = ARCHS[2]
    params = random_params(rng, layers, bp=True)
    x, y, _ = random_batch(rng, layers)
    _, grads, _ = model.loss_and_grad(params, x, y, None, bp=True)
    for l in range(len(params)):
        num = numeric_grad(params, "m", l, x, y, None, "relu")
        assert rel_err(grads[l].m, num) < 1e-5


def test_mean_field_statistics_match_explicit_weight_sampling():
    """G and Delta of docs/model.md section 2 against S explicit weight draws of a wide layer.

    With S draws the sample mean of h has standard error sqrt(Delta/S) and the sample
    variance a relative standard error sqrt(2/S) (h is Gaussian by the CLT); we allow 5
    standard errors, so a correct implementation fails with probability < 1e-5 per unit.
    """
    rng = np.random.default_rng(2020)
    n, n_out, S = 1000, 6, 8000
    pi = rng.uniform(0, 1, (1, n_out, n))
    m = rng.normal(0, 1, (1, n_out, n))
    xi = rng.uniform(0, 0.5, (1, n_out, n))
    a = rng.uniform(0, 1, (1, 1, n))
    layer = Layer(pi, m, xi)
    mu_hat, var_hat = model.scaled_moments(layer)
    G = (a @ mu_hat.transpose(0, 2, 1))[0, 0]
    Delta = ((a * a) @ var_hat.transpose(0, 2, 1))[0, 0]
    for i in range(n_out):
        present = rng.random((S, n)) >= pi[0, i]
        w = present * (m[0, i] + np.sqrt(xi[0, i]) * rng.standard_normal((S, n)))
        h = w @ a[0, 0] / math.sqrt(n)
        assert abs(h.mean() - G[i]) < 5 * math.sqrt(Delta[i] / S)
        assert abs(h.var() / Delta[i] - 1) < 5 * math.sqrt(2 / S)
    # and the layer's forward pass uses exactly these statistics: h = G + sqrt(Delta) eps
    eps = [rng.standard_normal((1, 1, n_out))]
    h, _ = model.forward((layer,), a, eps, activation="relu")
    np.testing.assert_allclose(h[0, 0], G + np.sqrt(Delta) * eps[0][0, 0], rtol=1e-12)


def test_sampled_weights_follow_spike_and_slab():
    rng = np.random.default_rng(0)
    shape = (2, 50, 40)
    pi = rng.uniform(0, 1, shape)
    m = rng.normal(0, 1, shape)
    xi = rng.uniform(0, 0.3, shape)
    K = 400
    (w,) = model.sample_weights((Layer(pi, m, xi),), [np.random.default_rng(i) for i in range(2)], K)
    assert w.shape == (2, K, 50, 40)
    mu, var = model.moments(pi, m, xi)
    # per-connection moments over K draws, pooled as z-scores
    z = (w.mean(axis=1) - mu) / np.sqrt(var / K)
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
    zero_frac = (w == 0).mean(axis=1)
    assert abs((zero_frac - pi).mean()) < 0.01


def test_predict_equals_noise_free_forward():
    rng = np.random.default_rng(5)
    layers = ARCHS[2]
    params = random_params(rng, layers, R=3)
    x = rng.uniform(0, 1, (11, layers[0]))
    logits = model.predict(params, x, chunk=4)
    ref, _ = model.forward(params, np.broadcast_to(x, (3,) + x.shape), None)
    np.testing.assert_allclose(logits, ref, rtol=1e-12)


def test_vote_is_the_majority_label():
    logits = np.zeros((1, 3, 2, 4))
    logits[0, 0, 0, 1] = logits[0, 1, 0, 1] = logits[0, 2, 0, 3] = 1  # pattern 0: 1,1,3 -> 1
    logits[0, 0, 1, 2] = logits[0, 1, 1, 0] = logits[0, 2, 1, 2] = 1  # pattern 1: 2,0,2 -> 2
    np.testing.assert_array_equal(model.vote(logits), [[1, 2]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree_on_loss_and_gradients(backend):
    """NumPy and CuPy give the same loss and gradients (float64) for the same inputs and noise."""
    be = backend64(backend)
    rng = np.random.default_rng(11)
    layers = (30, 20, 20, 10)
    params = random_params(rng, layers, R=2)
    x, y, eps = random_batch(rng, layers, B=16)
    ref_loss, ref_grads, _ = model.loss_and_grad(params, x, y, eps)
    dev = lambda a: be.asarray(a)  # noqa: E731
    loss, grads, _ = model.loss_and_grad(tuple(Layer(*map(dev, p)) for p in params), dev(x), be.xp.asarray(y),
                                         [dev(e) for e in eps])
    np.testing.assert_allclose(be.to_numpy(loss), ref_loss, rtol=1e-12)
    for g, r in zip(grads, ref_grads):
        for a, b in zip(g, r):
            np.testing.assert_allclose(be.to_numpy(a), b, rtol=1e-10, atol=1e-14)
