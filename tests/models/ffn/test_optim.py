"""Adam + decay + projection (docs/model.md section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys import optim
from mfphys.model import Layer


def make(rng, shape=(2, 3, 4)):
    return (Layer(rng.uniform(0, 1, shape), rng.normal(0, 1, shape), rng.uniform(0, 1, shape)),)


def reference_adam(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    """Textbook Adam (Kingma & Ba, Algorithm 1) plus the reference code's decay, one array."""
    mu = np.zeros_like(theta)
    nu = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g * g
        step = (mu / (1 - b1**t)) / (np.sqrt(nu / (1 - b2**t)) + eps)
        theta = theta - lr * (step + wd * theta)
    return theta


@pytest.mark.parametrize("decay_on", [("m", "xi"), ("pi", "m", "xi"), ()])
def test_adam_matches_textbook_with_decay(rng, decay_on):
    params = make(rng)
    # keep pi and xi away from the projection boundaries so the comparison is pure Adam
    params = (Layer(0.3 + 0.4 * params[0].pi, params[0].m, 0.5 + params[0].xi),)
    start = [a.copy() for a in params[0]]
    grads_seq = [make(rng)[0] for _ in range(5)]
    grads_seq = [Layer(*(0.01 * g for g in gs)) for gs in grads_seq]
    cfg = optim.AdamConfig(weight_decay=1e-2, decay_on=decay_on)
    state = optim.adam_init(params)
    for gs in grads_seq:
        params, state = optim.adam_update((Layer(*(g.copy() for g in gs)),), state, params, lr=0.01, cfg=cfg)
    for i, k in enumerate(optim.PARAM_NAMES):
        ref = reference_adam(start[i], [gs[i] for gs in grads_seq], 0.01, wd=1e-2 if k in decay_on else 0.0)
        np.testing.assert_allclose(getattr(params[0], k), ref, rtol=1e-12, atol=1e-15)
    assert state.count == 5


def test_projection_clips_pi_and_xi(rng):
    params = make(rng)
    grads = (Layer(np.full((2, 3, 4), -1e3), np.zeros((2, 3, 4)), np.full((2, 3, 4), 1e3)),)
    state = optim.adam_init(params)
    for _ in range(30):  # pi pushed up past 1, xi pushed below 0
        params, state = optim.adam_update((Layer(*(g.copy() for g in grads[0])),), state, params, lr=0.2)
    assert np.all(params[0].pi == 1.0) and np.all(params[0].xi == 0.0)


def test_frozen_parameters_are_untouched(rng):
    params = make(rng)
    pi0, xi0 = params[0].pi.copy(), params[0].xi.copy()
    state = optim.adam_init(params, trainable=("m",))
    g = make(rng)[0]
    params, state = optim.adam_update((Layer(None, g.m, None),), state, params, lr=0.1)
    np.testing.assert_array_equal(params[0].pi, pi0)
    np.testing.assert_array_equal(params[0].xi, xi0)
    assert state.mu[0].pi is None


def test_adam_reset_restarts_moments_and_counter(rng):
    """Reset between two runs of steps = textbook Adam started afresh from where the first ended
    (the 2020 code rebuilt its optimizer every epoch, docs/model.md section 4)."""
    params = make(rng)
    params = (Layer(0.3 + 0.4 * params[0].pi, params[0].m, 0.5 + params[0].xi),)
    start = [a.copy() for a in params[0]]
    epochs = [[Layer(*(0.01 * g for g in make(rng)[0])) for _ in range(4)] for _ in range(2)]
    cfg = optim.AdamConfig(weight_decay=1e-2, decay_on=("m", "xi"))
    state = optim.adam_init(params)
    for grads in epochs:
        state = optim.adam_reset(state)
        assert state.count == 0 and all(np.all(a == 0) for l in (*state.mu, *state.nu) for a in l)
        for gs in grads:
            params, state = optim.adam_update((Layer(*(g.copy() for g in gs)),), state, params, lr=0.01, cfg=cfg)
        assert state.count == 4
    for i, k in enumerate(optim.PARAM_NAMES):
        wd = 1e-2 if k in cfg.decay_on else 0.0
        mid = reference_adam(start[i], [gs[i] for gs in epochs[0]], 0.01, wd=wd)
        ref = reference_adam(mid, [gs[i] for gs in epochs[1]], 0.01, wd=wd)
        np.testing.assert_allclose(getattr(params[0], k), ref, rtol=1e-12, atol=1e-15)
