"""Oracles for the numerics of mfphys.rnn.model (docs/model-rnn.md sections 1-4).

- BPTT gradients of every tensor (input, recurrent, output; pi, m, Xi) against central finite
  differences of the same loss with the same fixed noise, float64, on a tiny net (N = 20,
  T = 28, B = 16), for both losses, both scalings, with and without private noise and masked
  inputs, and from a silent start where D = 0 exactly;
- the BPTT baseline against an independent plain BPTT written here;
- the mean-field moments of one step against explicit sampling of the weights;
- replicas are independent computations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys.errors import MfphysError
from mfphys.model import Layer, sample_weights
from mfphys.rnn import model
from mfphys.rnn.model import Noise, RnnParams
from tests.helpers import rnn_params, rnn_spec

T, B = 28, 16
#: finite-difference step: small enough that no perturbation moves a unit across the ReLU kink
#: for these seeds, large enough that float64 rounding stays far below the tolerance
H = 1e-6
TOL = 1e-5

VARIANTS = {
    "plain": dict(h0=0.1),
    # h0 = 0 and blank first steps: r = x = 0, so D = 0 exactly and the variance path is masked
    "silent_start": dict(h0=0.0),
    "private": dict(h0=0.1, sigma_rec=0.3),
    # the multisensory set-up: deterministic input matrix with masked connections, private noise
    "masked_input": dict(h0=0.0, sigma_rec=0.3, input_stochastic=False, masked=True),
    "masked_stochastic": dict(h0=0.1, masked=True),
}


def setup(readout, scaling, variant, seed, *, bp=False):
    rng = np.random.default_rng(seed)
    kw = dict(VARIANTS[variant])
    masked = kw.pop("masked", False)
    spec = rnn_spec(readout=readout, scaling=scaling, **kw)
    params, _ = rnn_params(rng, spec, masked=masked, bp=bp)
    x = rng.uniform(0, 1, (B, T, spec.n_in))
    x[:, :3] = 0  # blank first steps, as the top rows of an MNIST image
    out_shape = (1, B, spec.n_out) if readout == "last" else (1, T, B, spec.n_out)
    noise = Noise(None if bp else rng.standard_normal((1, T, B, spec.n)),
                  None if bp else rng.standard_normal(out_shape),
                  rng.standard_normal((1, T, B, spec.n)) if spec.sigma_rec > 0 else None)
    if readout == "last":
        target, mask = rng.integers(0, spec.n_out, B), None
    else:
        target = rng.uniform(0, 1, (B, T, spec.n_out))
        mask = (rng.random((B, T, spec.n_out)) > 0.4).astype(float)
    return spec, params, x, noise, target, mask


def losses(params, x, target, mask, noise, spec, bp=False):
    y, _ = model.forward(params, x, noise, spec, bp=bp)
    if spec.readout == "last":
        return model.last_step_loss(y, target)[0]
    return model.masked_squared_error(y, target, mask)[0]


def numeric_grads(params, x, target, mask, noise, spec, which, *, bp=False, chunk=128):
    """Central differences of every entry of the tensors ``which`` [(matrix, kind)], evaluated
    many at a time: each perturbed copy of the one-replica network is a replica of its own."""
    out = {}
    for j, kind in which:
        shape = getattr(params[j], kind).shape[1:]
        idx = list(np.ndindex(shape))
        num = np.zeros(shape)
        for c0 in range(0, len(idx), chunk):
            part = idx[c0:c0 + chunk]
            R = 2 * len(part)
            rep = [Layer(*(np.repeat(a, R, axis=0) for a in layer)) for layer in params]
            arr = getattr(rep[j], kind)
            for i, ix in enumerate(part):
                arr[(2 * i,) + ix] += H
                arr[(2 * i + 1,) + ix] -= H
            nz = Noise(*(None if a is None else np.broadcast_to(a, (R,) + a.shape[1:]) for a in noise))
            loss = losses(RnnParams(*rep), x, target, mask, nz, spec, bp=bp)
            for i, ix in enumerate(part):
                num[ix] = (loss[2 * i] - loss[2 * i + 1]) / (2 * H)
        out[j, kind] = num
    return out


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("scaling", ["fan_in", "reference"])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_bptt_gradients_match_finite_differences(readout, scaling, variant):
    spec, params, x, noise, target, mask = setup(readout, scaling, variant, seed=list(VARIANTS).index(variant))
    _, grads, _ = model.loss_and_grad(params, x, target, noise, spec, mask=mask)
    which = [(j, k) for j, kinds in enumerate(spec.trainable()) for k in kinds]
    assert len(which) == (7 if variant == "masked_input" else 9)
    num = numeric_grads(params, x, target, mask, noise, spec, which)
    for j, k in which:
        ana = getattr(grads[j], k)[0]
        assert np.max(np.abs(num[j, k])) > 1e-6, (model.MATRICES[j], k)  # a real signal to compare
        assert rel_err(ana, num[j, k]) < TOL, (model.MATRICES[j], k, rel_err(ana, num[j, k]))
    if not spec.input_stochastic:
        assert grads.input.pi is None and grads.input.xi is None


@pytest.mark.parametrize("readout", ["last", "all"])
def test_bp_gradients_match_finite_differences(readout):
    spec, params, x, noise, target, mask = setup(readout, "fan_in", "plain", seed=11, bp=True)
    _, grads, _ = model.loss_and_grad(params, x, target, noise, spec, mask=mask, bp=True)
    num = numeric_grads(params, x, target, mask, noise, spec, [(j, "m") for j in range(3)], bp=True)
    for j in range(3):
        assert grads[j].pi is None and grads[j].xi is None
        assert rel_err(grads[j].m[0], num[j, "m"]) < TOL, model.MATRICES[j]


def plain_bptt(m_in, m_rec, m_out, c, x, target, mask, spec, priv=None):
    """An ordinary leaky ReLU network W = c m, one replica, written out step by step."""
    W_in, W_rec, W_out = (ci * mi for ci, mi in zip(c, (m_in, m_rec, m_out)))
    a = spec.alpha
    Bn, Tn = x.shape[0], x.shape[1]
    hs = [np.full((Bn, spec.n), spec.h0)]
    rs = [np.maximum(hs[0], 0)]
    for t in range(Tn):
        h = (1 - a) * hs[-1] + a * (rs[-1] @ W_rec.T + x[:, t] @ W_in.T)
        if priv is not None:
            h = h + spec.sigma_rec * math.sqrt(2 * a) * priv[t]
        hs.append(h)
        rs.append(np.maximum(h, 0))
    dy = {}
    if spec.readout == "last":
        y = rs[-1] @ W_out.T
        p = np.exp(y - y.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(Bn), target]))
        dy[Tn] = (p - np.eye(spec.n_out)[target]) / Bn
    else:
        loss = 0.0
        for t in range(1, Tn + 1):
            diff = (rs[t] @ W_out.T - target[:, t - 1]) * mask[:, t - 1]
            loss += 0.5 * np.sum(diff**2) / (Bn * Tn)
            dy[t] = diff * mask[:, t - 1] / (Bn * Tn)
    gW_in, gW_rec, gW_out = np.zeros_like(W_in), np.zeros_like(W_rec), np.zeros_like(W_out)
    dh = np.zeros((Bn, spec.n))
    for t in range(Tn, 0, -1):
        dr = dy[t] @ W_out if t in dy else 0
        if t in dy:
            gW_out += dy[t].T @ rs[t]
        dh = dh + dr * (hs[t] > 0)
        du = a * dh
        gW_rec += du.T @ rs[t - 1]
        gW_in += du.T @ x[:, t - 1]
        dh = (1 - a) * dh + (du @ W_rec) * (hs[t - 1] > 0) * (t > 1)
    return loss, (gW_in * c[0], gW_rec * c[1], gW_out * c[2])


@pytest.mark.parametrize("readout", ["last", "all"])
@pytest.mark.parametrize("scaling", ["fan_in", "reference"])
@pytest.mark.parametrize("private", [False, True])
def test_bptt_baseline_equals_plain_bptt(readout, scaling, private):
    spec, params, x, noise, target, mask = setup(readout, scaling, "private" if private else "plain", seed=5,
                                                 bp=True)
    loss, grads, _ = model.loss_and_grad(params, x, target, noise, spec, mask=mask, bp=True)
    c = [1 / math.sqrt(n) for n in spec.n_eff]
    ref_loss, ref = plain_bptt(*(p.m[0] for p in params), c, x, target, mask, spec,
                               None if noise.private is None else noise.private[0])
    np.testing.assert_allclose(loss[0], ref_loss, rtol=1e-12)
    for j in range(3):
        np.testing.assert_allclose(grads[j].m[0], ref[j], rtol=1e-10, atol=1e-14)
    # the gBP code path at pi = Xi = 0 with noise: D = 0 everywhere, the same network, finite
    rng = np.random.default_rng(0)
    out_shape = (1, B, spec.n_out) if readout == "last" else (1, T, B, spec.n_out)
    noise_g = Noise(rng.standard_normal((1, T, B, spec.n)), rng.standard_normal(out_shape), noise.private)
    loss_g, grads_g, _ = model.loss_and_grad(params, x, target, noise_g, spec, mask=mask)
    np.testing.assert_allclose(loss_g, loss, rtol=1e-12)
    for j in range(3):
        assert all(np.all(np.isfinite(v)) for v in grads_g[j])
        np.testing.assert_allclose(grads_g[j].m, grads[j].m, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("scaling", ["fan_in", "reference"])
def test_one_step_moments_match_sampled_weights(scaling):
    """For one step with alpha = 1, u_1 = c_r W_r r_0 + c_i W_i x_1 is a sum of independent
    weights: its mean and variance over weight draws are exactly g and D^2 of the mean field."""
    rng = np.random.default_rng(2)
    spec = rnn_spec(alpha=1.0, h0=0.3, scaling=scaling)
    params, _ = rnn_params(rng, spec)
    x = rng.uniform(0, 1, (B, 1, spec.n_in))
    x[:3] = 0  # patterns whose only drive is the recurrent one
    zero = Noise(np.zeros((1, 1, B, spec.n)), np.zeros((1, B, spec.n_out)))
    one = Noise(np.ones((1, 1, B, spec.n)), np.zeros((1, B, spec.n_out)))
    g = model.forward(params, x, zero, spec)[1].h[0]
    D = model.forward(params, x, one, spec)[1].h[0] - g
    K = 40_000
    W_in, W_rec = (w[0] for w in sample_weights(params[:2], [np.random.default_rng(9)], K))
    c_in, c_rec = (1 / math.sqrt(n) for n in spec.n_eff[:2])
    r0 = np.full(spec.n, spec.h0)
    u = c_rec * (W_rec @ r0)[:, None, :] + c_in * np.einsum("kij,bj->kbi", W_in, x[:, 0])  # (K, B, N)
    mean, var = u.mean(0), u.var(0)
    assert np.all(np.abs(mean - g) < 5 * np.sqrt(var / K))
    m4 = ((u - mean) ** 4).mean(0)
    assert np.all(np.abs(var - D**2) < 5 * np.sqrt((m4 - var**2) / K))
    assert np.all(D > 0)


def test_replicas_are_independent_and_inputs_may_be_shared():
    rng = np.random.default_rng(4)
    spec = rnn_spec(readout="all", sigma_rec=0.2)
    params, _ = rnn_params(rng, spec, R=3)
    x = rng.uniform(0, 1, (B, T, spec.n_in))
    noise = Noise(rng.standard_normal((3, T, B, spec.n)), rng.standard_normal((3, T, B, spec.n_out)),
                  rng.standard_normal((3, T, B, spec.n)))
    target, mask = rng.uniform(0, 1, (B, T, spec.n_out)), np.ones((B, T, spec.n_out))
    loss, grads, y = model.loss_and_grad(params, x, target, noise, spec, mask=mask)
    loss_b, grads_b, y_b = model.loss_and_grad(params, np.broadcast_to(x, (3,) + x.shape), target, noise, spec,
                                               mask=mask)
    np.testing.assert_allclose(y_b, y, rtol=1e-13)
    for r in range(3):
        one = RnnParams(*(Layer(*(a[r:r + 1] for a in layer)) for layer in params))
        nz = Noise(*(a[r:r + 1] for a in noise))
        l1, g1, y1 = model.loss_and_grad(one, x, target, nz, spec, mask=mask)
        np.testing.assert_allclose(y1[0], y[r], rtol=1e-12)
        np.testing.assert_allclose(l1[0], loss[r], rtol=1e-12)
        for j in range(3):
            for k in ("pi", "m", "xi"):
                np.testing.assert_allclose(getattr(g1[j], k)[0], getattr(grads[j], k)[r], rtol=1e-10, atol=1e-15)
                np.testing.assert_allclose(getattr(grads_b[j], k), getattr(grads[j], k), rtol=1e-10, atol=1e-15)


def test_noise_free_pass_is_the_zero_noise_pass():
    rng = np.random.default_rng(6)
    spec = rnn_spec()
    params, _ = rnn_params(rng, spec, R=2)
    x = rng.uniform(0, 1, (B, T, spec.n_in))
    zero = Noise(np.zeros((2, T, B, spec.n)), np.zeros((2, B, spec.n_out)))
    y0, _ = model.forward(params, x, None, spec)
    y1, _ = model.forward(params, x, zero, spec)
    np.testing.assert_allclose(y0, y1, rtol=1e-13)


def test_masked_connections_get_no_gradient():
    rng = np.random.default_rng(8)
    spec = rnn_spec(sigma_rec=0.1)
    params, mask = rnn_params(rng, spec, masked=True)
    x = rng.uniform(0, 1, (B, T, spec.n_in))
    noise = Noise(rng.standard_normal((1, T, B, spec.n)), rng.standard_normal((1, B, spec.n_out)),
                  rng.standard_normal((1, T, B, spec.n)))
    _, grads, _ = model.loss_and_grad(params, x, rng.integers(0, 3, B), noise, spec)
    for k in ("pi", "m", "xi"):
        g = getattr(grads.input, k)[0]
        assert np.all(g[~mask] == 0) and np.any(g[mask] != 0), k


def test_scalings_start_the_same_network():
    inits = (model.MatrixInit("normal", 0.5, 0.1), model.MatrixInit("identity", 0.0, 0.1),
             model.MatrixInit("normal", 0.3, 0.01))
    mom = {}
    for scaling in ("fan_in", "reference"):
        spec = rnn_spec(scaling=scaling)
        p = model.init_params(spec, inits, [np.random.default_rng(0)])
        mom[scaling] = model.moments(p, spec)
        assert np.all(p.recurrent.pi == 0)
    for a, b in zip(mom["fan_in"], mom["reference"]):
        np.testing.assert_allclose(a.mu_hat, b.mu_hat, rtol=1e-13)
        np.testing.assert_allclose(a.var_hat, b.var_hat, rtol=1e-13)
    np.testing.assert_allclose(mom["reference"][1].mu_hat[0], np.eye(20))


def test_init_replica_r_is_a_one_replica_run_and_the_mask_holds():
    spec = rnn_spec(input_stochastic=False)
    inits = (model.MatrixInit("normal", 0.5, 0.1), model.MatrixInit("normal", 0.2, 0.1), model.MatrixInit())
    mask = np.random.default_rng(1).random(spec.shapes[0]) > 0.5
    many = model.init_params(spec, inits, [np.random.default_rng(s) for s in (3, 4, 5)], input_mask=mask)
    one = model.init_params(spec, inits, [np.random.default_rng(4)], input_mask=mask)
    for a, b in zip(many, one):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u[1], v[0])
    assert np.all(many.input.xi == 0) and np.all(many.input.pi[:, ~mask] == 1) and np.all(many.input.pi[:, mask] == 0)
    assert np.all(many.input.m[:, ~mask] == 0) and np.all(many.recurrent.xi > 0)


@pytest.mark.parametrize("kw, expect", [(dict(alpha=0.0), "alpha"), (dict(n=0), "n must be"),
                                        (dict(scaling="sqrt"), "scaling"), (dict(readout="mean"), "readout"),
                                        (dict(sigma_rec=-1.0), "sigma_rec")])
def test_spec_refuses_bad_values(kw, expect):
    with pytest.raises(MfphysError, match=expect):
        rnn_spec(**kw)


def test_every_step_readout_needs_a_mask():
    rng = np.random.default_rng(0)
    spec = rnn_spec(readout="all")
    params, _ = rnn_params(rng, spec)
    with pytest.raises(MfphysError, match="mask"):
        model.loss_and_grad(params, rng.uniform(0, 1, (B, T, 5)), np.zeros((B, T, 3)), None, spec)
