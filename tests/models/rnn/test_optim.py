"""mfphys.rnn.optim (docs/model-rnn.md section 6): the steps against their formulas, clipping,
projection and masks, and the two scalings following one trajectory."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mfphys import optim as ff_optim
from mfphys.errors import MfphysError
from mfphys.model import Layer
from mfphys.rnn import model
from mfphys.rnn.model import Noise, RnnParams
from mfphys.rnn.optim import (
    OptConfig,
    clip_spectral,
    opt_init,
    opt_update,
    rmsprop_leaf,
    spectral_norm,
    spectral_norm_estimate,
    tensor_settings,
)
from tests.helpers import rnn_params, rnn_spec

ADAM = OptConfig("adam", lr_m=(1e-2, 2e-2, 3e-2), lr_xi=(1e-3, 2e-3, 3e-3), lr_pi=(1e-2, 5e-2, 1e-1),
                 weight_decay=1e-2, clip=0.05, halve_every=2)
RMSPROP = OptConfig("rmsprop", lr_m=(1e-2, 2e-2, 3e-2), lr_xi=(0.0, 2e-3, 3e-3), lr_pi=(0.0, 1.0, 0.1), b2=0.9,
                    weight_decay=1e-2, decay="l2", clip=None, halve_every=2, halve_on=("pi",))


def test_spectral_norm_and_clip_against_numpy():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(4, 7, 5))
    np.testing.assert_allclose(spectral_norm(g), [np.linalg.norm(a, 2) for a in g], rtol=1e-12)
    bound = float(np.median(spectral_norm(g)))
    clipped = clip_spectral(g.copy(), bound)
    for a, c in zip(g, clipped):
        s = np.linalg.norm(a, 2)
        np.testing.assert_allclose(c, a * bound / s if s >= bound else a, rtol=1e-12)
    assert np.all(spectral_norm(clipped) <= bound * (1 + 1e-12))
    small = g * 1e-3  # Frobenius norm below the bound: untouched
    np.testing.assert_array_equal(clip_spectral(small.copy(), bound), small)


@pytest.mark.parametrize("shape", [(16, 100, 100), (16, 100, 28), (16, 10, 100), (4, 100, 1)])
def test_sync_free_spectral_norm_is_the_exact_norm(shape):
    """The device path's estimate (docs/model-rnn.md section 6) against the SVD in float64, at the
    shapes of the MNIST presets, and a rank-one, an all-equal and a zero spectrum."""
    rng = np.random.default_rng(3)
    g = rng.normal(size=shape)
    np.testing.assert_allclose(spectral_norm_estimate(g), spectral_norm(g), rtol=1e-10)
    tiny = (g * 1e-25).astype(np.float32)  # float32 gradients are estimated in float64: no underflow
    np.testing.assert_allclose(spectral_norm_estimate(tiny), spectral_norm(tiny.astype(np.float64)), rtol=1e-10)
    rank1 = rng.normal(size=(3, 20, 1)) * rng.normal(size=(3, 1, 30))
    np.testing.assert_allclose(spectral_norm_estimate(rank1), spectral_norm(rank1), rtol=1e-12)
    q, _ = np.linalg.qr(rng.normal(size=(3, 40, 40)))
    np.testing.assert_allclose(spectral_norm_estimate(2.5 * q), 2.5, rtol=1e-12)
    np.testing.assert_array_equal(spectral_norm_estimate(np.zeros((2, 5, 3))), 0)
    # the top pair 1e-3 apart: the estimate is a lower bound, within a small fraction of the gap
    u, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    v, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    s = np.linspace(1, 0.1, 50)
    s[1] = 1 - 1e-3
    est = spectral_norm_estimate(((u * s) @ v.T)[None])[0]
    assert 1 - 1e-4 < est <= 1 + 1e-12


def test_rmsprop_leaf_is_the_reference_step():
    rng = np.random.default_rng(1)
    theta, g, nu = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4)), rng.uniform(0, 1, (2, 3, 4))
    nu_ref = 0.9 * nu + 0.1 * g * g
    ref = np.clip(theta - 0.01 * g / np.sqrt(nu_ref + 1e-8), 0, 1)
    rmsprop_leaf(theta, g.copy(), nu, lr=0.01, b2=0.9, eps=1e-8, lo=0.0, hi=1.0)
    np.testing.assert_allclose(nu, nu_ref, rtol=1e-14)
    np.testing.assert_allclose(theta, ref, rtol=1e-14)


def test_adam_step_is_the_feed_forward_step_with_its_own_learning_rate():
    """One tensor per kind, no clipping: the same as mfphys.optim.adam_update at that rate."""
    rng = np.random.default_rng(2)
    spec = rnn_spec(scaling="reference")
    params, _ = rnn_params(rng, spec)
    grads = RnnParams(*(Layer(*(rng.normal(size=a.shape) for a in l)) for l in params))
    cfg = dataclasses.replace(ADAM, clip=None)
    ours = RnnParams(*(Layer(*(a.copy() for a in l)) for l in params))
    settings = tensor_settings(cfg, spec)
    opt_update(RnnParams(*(Layer(*(a.copy() for a in l)) for l in grads)), opt_init(ours, cfg, spec.trainable()),
               ours, cfg=cfg, settings=settings)
    for j in range(3):
        for k in ("pi", "m", "xi"):
            theirs = (Layer(*(a.copy() for a in params[j])),)
            g = Layer(*(a.copy() if kk == k else None for kk, a in zip(("pi", "m", "xi"), grads[j])))
            ff = ff_optim.AdamConfig(cfg.b1, cfg.b2, cfg.eps, cfg.weight_decay, cfg.decay_on)
            ff_optim.adam_update((g,), ff_optim.adam_init(theirs), theirs, lr=settings[j][k].lr, cfg=ff)
            np.testing.assert_allclose(getattr(ours[j], k), getattr(theirs[0], k), rtol=1e-14)


def test_projection_and_masked_connections_after_a_step():
    rng = np.random.default_rng(3)
    spec = rnn_spec(input_stochastic=True)
    params, mask = rnn_params(rng, spec, masked=True)
    grads = RnnParams(*(Layer(*(rng.normal(size=a.shape) * 50 for a in l)) for l in params))
    cfg = dataclasses.replace(ADAM, lr_pi=(1.0, 1.0, 1.0), lr_xi=(1.0, 1.0, 1.0), clip=None)
    opt_update(grads, opt_init(params, cfg, spec.trainable()), params, cfg=cfg, settings=tensor_settings(cfg, spec),
               input_mask=mask)
    for layer in params:
        assert layer.pi.min() >= 0 and layer.pi.max() <= 1 and layer.xi.min() >= 0
        assert np.any(layer.pi == 0) and np.any(layer.pi == 1) and np.any(layer.xi == 0)
    assert np.all(params.input.pi[:, ~mask] == 1)
    assert np.all(params.input.m[:, ~mask] == 0) and np.all(params.input.xi[:, ~mask] == 0)


def test_settings_scale_with_the_fan_in():
    spec = rnn_spec(scaling="fan_in")
    for cfg in (ADAM, RMSPROP):
        ref = tensor_settings(cfg, dataclasses.replace(spec, scaling="reference"))
        fan = tensor_settings(cfg, spec)
        for j, n in enumerate(spec.fan_ins):
            for kind, k in (("pi", 1.0), ("m", math.sqrt(n)), ("xi", float(n))):
                a, b = ref[j][kind], fan[j][kind]
                assert b.lr == pytest.approx(k * a.lr) and b.decay == pytest.approx(
                    a.decay / (k if cfg.decay == "decoupled" else k * k))
                if cfg.clip is not None:
                    assert b.clip == pytest.approx(a.clip / k)  # a k times smaller gradient


@pytest.mark.parametrize("cfg", [ADAM, RMSPROP], ids=["adam", "rmsprop"])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_both_scalings_follow_one_trajectory(cfg, readout):
    """m' = sqrt(n) m and Xi' = n Xi all along: the same network at every step (float64)."""
    rng = np.random.default_rng(4)
    T, B = 10, 8
    det = cfg.name == "rmsprop"
    kw = dict(readout=readout, sigma_rec=0.1, input_stochastic=not det)
    inits = (model.MatrixInit("normal", 0.5, 0 if det else 0.1), model.MatrixInit("identity", 0.0, 0.05),
             model.MatrixInit("normal", 0.3, 0.05))
    mask = rng.random((20, 5)) > 0.3
    x = rng.uniform(0, 1, (B, T, 5))
    target = rng.integers(0, 3, B) if readout == "last" else rng.uniform(0, 1, (B, T, 3))
    lmask = None if readout == "last" else (rng.random((B, T, 3)) > 0.5) * 1.0
    noises = [Noise(rng.standard_normal((2, T, B, 20)), rng.standard_normal((2, B, 3) if readout == "last"
                    else (2, T, B, 3)), rng.standard_normal((2, T, B, 20))) for _ in range(6)]
    runs = {}
    for scaling in ("fan_in", "reference"):
        spec = rnn_spec(scaling=scaling, **kw)
        params = model.init_params(spec, inits, [np.random.default_rng(s) for s in (0, 1)], input_mask=mask)
        state = opt_init(params, cfg, spec.trainable())
        settings = tensor_settings(cfg, spec)
        clipped = 0
        for step, nz in enumerate(noises):
            _, grads, _ = model.loss_and_grad(params, x, target, nz, spec, mask=lmask)
            if cfg.clip is not None:
                clipped += sum(int(np.any(spectral_norm(g) >= s[k].clip)) for l, s in zip(grads, settings)
                               for k, g in zip(("pi", "m", "xi"), l) if g is not None)
            scale = {k: cfg.lr_factor(1 + step // 2, k) for k in ("pi", "m", "xi")}
            params, state = opt_update(grads, state, params, cfg=cfg, settings=settings, lr_scale=scale,
                                       input_mask=mask)
        runs[scaling] = (model.moments(params, spec), params, clipped)
    (mf, pf, clipped), (mr, pr, _) = runs["fan_in"], runs["reference"]
    if cfg.clip is not None:
        assert clipped > 0  # the clip bound was active
    for a, b in zip(mf, mr):
        np.testing.assert_allclose(a.mu_hat, b.mu_hat, rtol=1e-9, atol=1e-12)
        if b.var_hat is not None:
            np.testing.assert_allclose(a.var_hat, b.var_hat, rtol=1e-9, atol=1e-12)
    for a, b in zip(pf, pr):
        np.testing.assert_allclose(a.pi, b.pi, rtol=1e-9, atol=1e-12)
        assert not np.allclose(b.pi, 0)  # pi moved


def test_learning_rate_schedule_halves_the_named_kinds():
    assert [ADAM.lr_factor(e, "m") for e in (1, 2, 3, 4)] == [1.0, 0.5, 0.5, 0.25]
    assert [RMSPROP.lr_factor(e, "m") for e in (1, 4)] == [1.0, 1.0]
    assert RMSPROP.lr_factor(4, "pi") == 0.25
    ref = OptConfig(halve_every=40)  # the reference: epochs 1..39 full, halved from epoch 40
    assert (ref.lr_factor(39, "m"), ref.lr_factor(40, "m"), ref.lr_factor(80, "m")) == (1.0, 0.5, 0.25)


@pytest.mark.parametrize("kw, expect", [(dict(name="sgd"), "optimizer"), (dict(lr_m=(1.0, 2.0)), "lr_m"),
                                        (dict(decay="l1"), "decay"), (dict(clip=0.0), "clip"),
                                        (dict(halve_on=("w",)), "halve_on")])
def test_config_refuses_bad_values(kw, expect):
    with pytest.raises(MfphysError, match=expect):
        OptConfig(**kw)
