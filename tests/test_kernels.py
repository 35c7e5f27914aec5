"""mfphys.kernels / mfphys.cpu_kernels: the compiled CPU kernels give the NumPy path's numbers bit for bit.

- every kernel, float32 and float64, on arrays with the special values a run can meet
  (-0.0, 0, NaN, inf, a negative variance, the projection's bounds): same bits, signs of zero included;
- whole seeded training runs of both families (gBP; a strided noise view; the NumPy-only
  activations) are bit-identical with and without the compiled kernels;
- ``MFPHYS_NUMBA=0`` and :class:`mfphys.cpu_kernels.enabled` turn them off.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys import cpu_kernels, kernels
from mfphys.data import TeacherConfig, load_dataset

try:
    import numba  # noqa: F401
except ImportError:  # the NumPy path alone: only the fallback test below runs
    HAVE_NUMBA = False
else:
    HAVE_NUMBA = True
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="Numba is not installed")

DTYPES = (np.float32, np.float64)


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def assert_same_bits(x, y, what=""):
    assert x.shape == y.shape and x.dtype == y.dtype, what
    np.testing.assert_array_equal(bits(x), bits(y), err_msg=what)


def both(fn, *args, copy_args=False):
    """``fn(*args)`` on the NumPy path and compiled (each on its own copies when it writes in place)."""
    out = []
    for on in (False, True):
        a = [v.copy() if copy_args and hasattr(v, "copy") else v for v in args]
        with cpu_kernels.enabled(on), np.errstate(all="ignore"):
            assert cpu_kernels.available() is on
            r = fn(*a)
        out.append((r, a))
    return out


def special(rng, shape, dt, *, scale=1.0):
    """Random values with -0.0, 0, NaN, +-inf and tiny numbers sprinkled in."""
    a = (scale * rng.standard_normal(shape)).astype(dt)
    flat = a.reshape(-1)
    k = max(1, flat.size // 20)
    for v in (-0.0, 0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30):
        flat[rng.choice(flat.size, k, replace=False)] = v
    return a


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
def test_moments_and_chain_rule_are_bit_identical(dt):
    rng = np.random.default_rng(0)
    shape = (2, 7, 13)
    pi = np.clip(special(rng, shape, dt, scale=0.5), 0, 1).astype(dt)
    m, xi = special(rng, shape, dt), np.abs(special(rng, shape, dt, scale=0.01))
    (a, _), (b, _) = both(kernels.scaled_moments, pi, m, xi, 13)
    for u, v in zip(a, b):
        assert_same_bits(u, v, "moments")
    g_mu, g_var = special(rng, shape, dt), special(rng, shape, dt)
    (a, _), (b, _) = both(kernels.chain_rule, pi, m, xi, g_mu, g_var)
    for u, v in zip(a, b):
        assert_same_bits(u, v, "chain rule")


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
def test_noise_relu_and_deltas_are_bit_identical(dt):
    rng = np.random.default_rng(1)
    R, B, N = 2, 9, 11
    G = special(rng, (R, B, N), dt)
    D = np.abs(special(rng, (R, B, N), dt))
    D[0, 0, :3] = (-1.0, 0.0, -0.0)  # a negative variance (rounding) gives NaN on both paths
    full = special(rng, (R, B, N + 5), dt)
    e = full[..., 2:N + 2]  # a strided view, as the split of one noise draw per step
    (a, _), (b, _) = both(kernels.noisy_preactivation, G, D, e)
    for u, v in zip(a, b):
        assert_same_bits(u, v, "noisy preactivation")
    (a, _), (b, _) = both(kernels.noisy_relu, G, D, e)
    for u, v, what in zip(a, b, ("h", "w", "a", "a2")):
        assert_same_bits(u, v, what)
    delta, w = special(rng, (R, B, N), dt), special(rng, (R, B, N), dt)
    (a, _), (b, _) = both(kernels.scaled_deltas, delta, w, 1 / math.sqrt(N), 0.5 / N)
    for u, v in zip(a, b):
        assert_same_bits(u, v, "scaled deltas")
    t, act, h = special(rng, (R, B, N), dt), special(rng, (R, B, N), dt), special(rng, (R, B, N), dt)
    (a, _), (b, _) = both(kernels.relu_delta, delta, t, act, h, copy_args=True)
    assert_same_bits(a, b, "relu delta")


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("bounds", [{}, {"lo": 0.0, "hi": 1.0}, {"lo": 0.0}])
@pytest.mark.parametrize("wd", [0.0, 1e-4])
def test_adam_step_is_bit_identical(dt, bounds, wd):
    rng = np.random.default_rng(2)
    shape = (2, 5, 17)
    theta = special(rng, shape, dt)
    theta.reshape(-1)[:4] = (-0.0, 0.0, 1.0, -1e-30)
    g, mu = special(rng, shape, dt, scale=1e-3), special(rng, shape, dt, scale=1e-3)
    nu = np.abs(special(rng, shape, dt, scale=1e-6))
    for count in (1, 7):
        kw = dict(lr=0.1, c1=1 - 0.9**count, c2=1 - 0.999**count, b1=0.9, b2=0.999, eps=1e-8, wd=wd, **bounds)
        (_, a), (_, b) = both(lambda *v, kw=kw: kernels.adam_leaf(*v, **kw), theta, g, mu, nu, copy_args=True)
        for u, v, what in zip(a, b, ("theta", "g", "mu", "nu")):
            if what != "g":  # the gradient is scratch space on the NumPy path only
                assert_same_bits(u, v, what)


def _ffn_runs(**kw):
    from mfphys.train import TrainConfig, train

    data = load_dataset("teacher", n_train=200, n_test=100, teacher=TeacherConfig(n_in=20))
    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 12, 10), n_train=200, n_test=100, epochs=3,
                      batch_size=50, replicas=2, eval_samples=3, **kw)
    out = []
    for on in (False, True):
        with cpu_kernels.enabled(on):
            out.append(train(cfg, dataset=data))
    return out


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_feed_forward_runs_are_bit_identical_with_and_without_numba(dtype, activation):
    a, b = _ffn_runs(dtype=dtype, activation=activation, weight_decay=1e-3, decay_on=("pi", "m", "xi"))
    for la, lb in zip(a.params, b.params):
        for u, v in zip(la, lb):
            assert_same_bits(u, v, "parameters")
    for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_array_equal(a.history[k], b.history[k], err_msg=k)
    np.testing.assert_array_equal(a.sampled_acc, b.sampled_acc)


@needs_numba
def test_bp_runs_are_bit_identical_with_and_without_numba():
    a, b = _ffn_runs(dtype="float32", mode="bp")
    for la, lb in zip(a.params, b.params):
        assert_same_bits(la.m, lb.m, "m")


@needs_numba
def test_recurrent_runs_are_bit_identical_with_and_without_numba(mnist_dir):
    from mfphys.rnn import preset, train_rnn
    from mfphys.rnn.config import RnnConfig

    data = load_dataset("mnist", n_train=256, n_test=100, data_dir=mnist_dir)
    out = []
    for dtype in ("float32", "float64"):
        cfg = RnnConfig(task="mnist", steps=28, n=16, batch_size=32, batches_per_epoch=3, epochs=2, eval_samples=2,
                        dtype=dtype, backend="numpy", init=preset("row_mnist").init, replicas=2)
        for on in (False, True):
            with cpu_kernels.enabled(on):
                out.append(train_rnn(cfg, dataset=data))
        a, b = out[-2:]
        for la, lb in zip(a.params, b.params):
            for u, v in zip(la, lb):
                if u is not None:
                    assert_same_bits(np.asarray(u), np.asarray(v), f"{dtype} parameters")
        for k, v in a.history.items():
            if k != "epoch_seconds" and not k.endswith("seconds"):
                np.testing.assert_array_equal(v, b.history[k], err_msg=k)


@needs_numba
def test_the_environment_variable_and_the_switch_turn_the_kernels_off(monkeypatch, request):
    request.addfinalizer(cpu_kernels._env_on.cache_clear)  # the variable is read once per process
    monkeypatch.setenv(cpu_kernels.ENV_VAR, "0")
    cpu_kernels._env_on.cache_clear()
    assert not cpu_kernels.available()
    with cpu_kernels.enabled(True):
        assert cpu_kernels.available()
    monkeypatch.setenv(cpu_kernels.ENV_VAR, "1")
    cpu_kernels._env_on.cache_clear()
    assert cpu_kernels.available()
    with cpu_kernels.enabled(False):
        assert not cpu_kernels.available()
        assert not cpu_kernels.applies(np.zeros(3))
    assert cpu_kernels.applies(np.zeros(3, np.float32))
    assert not cpu_kernels.applies(np.zeros(3, np.float32), np.zeros(3))  # mixed dtypes
    assert not cpu_kernels.applies(np.zeros(3, np.int64))


def test_without_numba_the_numpy_path_runs(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_numba", lambda: None)  # as if Numba were not installed
    assert not cpu_kernels.available()
    assert not cpu_kernels.applies(np.zeros(3, np.float32))
    with cpu_kernels.enabled(True):  # the switch cannot conjure Numba up
        assert not cpu_kernels.available()
        h, w, a, a2 = kernels.noisy_relu(np.full((1, 2, 3), -1.0), np.zeros((1, 2, 3)), np.ones((1, 2, 3)))
    np.testing.assert_array_equal(w, 0)
    np.testing.assert_array_equal(h, -1)
    np.testing.assert_array_equal(a, 0)


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
def test_recurrent_steps_are_bit_identical_special_values_included(dt):
    """The compiled recurrent step and BPTT step (cpu_kernels rnn_step, rnn_back_step) against the
    NumPy loops of mfphys.models.rnn.model, with zero variances, dead units and NaN/inf noise."""
    from mfphys.backend import INIT, replica_rngs
    from mfphys.rnn import preset
    from mfphys.rnn.model import Noise, backward, forward, init_params

    spec = preset("row_mnist").spec()
    R, B, T = 2, 8, spec.n_in
    rng = np.random.default_rng(5)
    params = init_params(spec, preset("row_mnist").init, replica_rngs(1, R, INIT), dtype=dt)
    x = rng.random((R, B, T, spec.n_in)).astype(dt)
    x[..., :3] = 0  # inputs that are 0: no input variance there
    eps = rng.standard_normal((R, T, B, spec.n)).astype(dt)
    eps[:, T - 3:] = special(rng, (R, 3, B, spec.n), dt)  # late: NaN and inf spread through what follows
    noise = Noise(eps, rng.standard_normal((R, B, spec.n_out)).astype(dt), None)
    e = special(rng, (R, B, spec.n_out), dt, scale=0.1)

    def run():
        y, trace = forward(params, x, noise, spec)
        grads = backward(params, trace, e.copy(), spec)
        return y, trace, grads

    (a, _), (b, _) = both(run)
    pairs = [(a[0], b[0], "outputs")] + [(getattr(a[1], k), getattr(b[1], k), k) for k in ("r", "w", "scratch", "h")]
    pairs += [(u, v, "gradients") for la, lb in zip(a[2], b[2]) for u, v in zip(la, lb) if u is not None]
    for u, v, what in pairs:
        # NaN where NaN (the sign bit of a NaN made by 0 * inf in a matrix product is the BLAS's
        # business), every other number bit for bit
        nan = np.isnan(u)
        np.testing.assert_array_equal(nan, np.isnan(v), err_msg=what)
        assert_same_bits(np.where(nan, 0, u).astype(dt), np.where(nan, 0, v).astype(dt), what)
        assert what != "r" or (~nan).any(), what


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
def test_recurrent_steps_are_bit_identical_on_finite_noise(dt):
    """The same without NaN or inf in the noise: every bit, signed zeros included."""
    from mfphys.backend import INIT, replica_rngs
    from mfphys.rnn import preset
    from mfphys.rnn.model import Noise, backward, forward, init_params

    spec = preset("row_mnist").spec()
    R, B, T = 3, 8, spec.n_in
    rng = np.random.default_rng(6)
    params = init_params(spec, preset("row_mnist").init, replica_rngs(2, R, INIT), dtype=dt)
    x = rng.random((R, B, T, spec.n_in)).astype(dt)
    x[..., :5] = 0
    eps = rng.standard_normal((R, T, B, spec.n)).astype(dt)
    eps.reshape(-1)[::7] = -0.0
    noise = Noise(eps, rng.standard_normal((R, B, spec.n_out)).astype(dt), None)
    e = rng.standard_normal((R, B, spec.n_out)).astype(dt)

    def run():
        y, trace = forward(params, x, noise, spec)
        return y, trace, backward(params, trace, e.copy(), spec)

    (a, _), (b, _) = both(run)
    assert_same_bits(a[0], b[0], "outputs")
    for k in ("r", "w", "scratch", "h"):
        assert_same_bits(getattr(a[1], k), getattr(b[1], k), k)
    for la, lb in zip(a[2], b[2]):
        for u, v in zip(la, lb):
            if u is not None:
                assert_same_bits(u, v, "gradients")
