"""mfphys.rnn.evaluate (docs/model-rnn.md section 5): the four evaluation modes.

- a deterministic network (pi = Xi = 0) is the same network in every mode;
- quenched networks hold one weight draw for the whole sequence, annealed ones draw afresh at
  every step: both against explicit ordinary networks built here from the same draws;
- outputs do not depend on how the patterns are chunked; NumPy and CuPy agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys.backend import get_backend
from mfphys.model import Layer, sample_weights
from mfphys.rnn import evaluate
from mfphys.rnn.model import RnnParams
from tests.helpers import BACKENDS, rnn_params, rnn_spec

T, P = 12, 9


def data(rng, spec):
    return rng.uniform(0, 1, (P, T, spec.n_in))


@pytest.mark.parametrize("readout", ["last", "all"])
def test_a_deterministic_network_is_the_same_in_every_mode(readout):
    rng = np.random.default_rng(0)
    spec = rnn_spec(readout=readout)
    params, _ = rnn_params(rng, spec, R=2, bp=True)
    x = data(rng, spec)
    ref = evaluate.outputs(params, x, spec, mode="mean")
    assert ref.shape == ((2, P, 3) if readout == "last" else (2, P, T, 3))
    for mode in ("noisy", "quenched", "annealed"):
        for bp in (False, True):
            got = evaluate.outputs(params, x, spec, mode=mode, rngs=[np.random.default_rng(s) for s in (1, 2)],
                                   samples=3, bp=bp)
            if mode in ("quenched", "annealed"):
                assert got.shape == (2, 3) + ref.shape[1:]
                got = np.moveaxis(got, 1, 0)
            np.testing.assert_allclose(got, np.broadcast_to(ref, got.shape), rtol=1e-12, atol=1e-14)


def explicit(params, x, spec, weights_at):
    """An ordinary leaky ReLU network per replica and draw, weights_at(t) -> (W_in, W_rec, W_out)."""
    c = [1 / math.sqrt(n) for n in spec.n_eff]
    W = weights_at(0)
    R, K = W[1].shape[:2]
    h = np.full((R, K, x.shape[0], spec.n), spec.h0)
    for t in range(x.shape[1]):
        W = weights_at(t)
        u = c[1] * np.einsum("rkij,rkbj->rkbi", W[1], np.maximum(h, 0)) + c[0] * np.einsum("rkij,bj->rkbi", W[0],
                                                                                           x[:, t])
        h = (1 - spec.alpha) * h + spec.alpha * u
    return c[2] * np.einsum("rkij,rkbj->rkbi", W[2], np.maximum(h, 0))


@pytest.mark.parametrize("mode", ["quenched", "annealed"])
def test_sampled_networks_hold_or_redraw_their_weights(mode):
    rng = np.random.default_rng(3)
    spec = rnn_spec()
    params, _ = rnn_params(rng, spec, R=2)
    x = data(rng, spec)
    got = evaluate.outputs(params, x, spec, mode=mode, rngs=[np.random.default_rng(s) for s in (5, 6)], samples=4)
    rngs = [np.random.default_rng(s) for s in (5, 6)]
    draws = [sample_weights(params, rngs, 4)]
    if mode == "annealed":
        draws += [sample_weights(params, rngs, 4) for _ in range(T - 1)]
    want = explicit(params, x, spec, lambda t: draws[t if mode == "annealed" else 0])
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    # and the draws matter: the sampled networks differ from one another
    assert np.std(got, axis=1).mean() > 1e-3


def test_noise_free_mode_ignores_the_private_noise_and_noisy_mode_does_not():
    rng = np.random.default_rng(4)
    spec = rnn_spec(sigma_rec=0.5, readout="all")
    params, _ = rnn_params(rng, spec, bp=True)
    x = data(rng, spec)
    a = evaluate.outputs(params, x, spec, mode="mean")
    np.testing.assert_array_equal(a, evaluate.outputs(params, x, spec, mode="mean"))
    b = evaluate.outputs(params, x, spec, mode="noisy", rngs=[np.random.default_rng(0)], bp=True)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("mode", evaluate.EVAL_MODES)
def test_chunks_do_not_change_deterministic_outputs(mode):
    rng = np.random.default_rng(5)
    spec = rnn_spec(readout="all")
    params, _ = rnn_params(rng, spec, R=2)
    x = data(rng, spec)
    if mode in ("mean",):
        np.testing.assert_allclose(evaluate.outputs(params, x, spec, chunk=4), evaluate.outputs(params, x, spec),
                                   rtol=1e-13)
    else:  # random modes: fixed by the generators
        kw = dict(mode=mode, samples=2, chunk=4)
        a = evaluate.outputs(params, x, spec, rngs=[np.random.default_rng(s) for s in (0, 1)], **kw)
        b = evaluate.outputs(params, x, spec, rngs=[np.random.default_rng(s) for s in (0, 1)], **kw)
        np.testing.assert_array_equal(a, b)


def test_accuracy():
    y = np.array([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]])
    np.testing.assert_allclose(evaluate.accuracy(y, np.array([1, 0, 0])), [2 / 3])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", evaluate.EVAL_MODES)
def test_modes_agree_across_backends(backend, mode):
    be = get_backend(backend, "float64")
    rng = np.random.default_rng(6)
    spec = rnn_spec(sigma_rec=0.2)
    params, _ = rnn_params(rng, spec, R=2)
    x = data(rng, spec)
    kw = dict(mode=mode, samples=2)
    ref = evaluate.outputs(params, x, spec, rngs=[np.random.default_rng(s) for s in (0, 1)], **kw)
    dev = RnnParams(*(Layer(*(be.asarray(a) for a in l)) for l in params))
    got = evaluate.outputs(dev, be.asarray(x), spec, rngs=[np.random.default_rng(s) for s in (0, 1)], **kw)
    np.testing.assert_allclose(be.to_numpy(got), ref, rtol=1e-10, atol=1e-12)
