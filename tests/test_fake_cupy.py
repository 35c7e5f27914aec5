"""The CuPy emulation of tests/fake_cupy holds to CuPy's rules where the GPU path can go wrong
(tests/README.md): these run only against it (``MFPHYS_FAKE_CUPY=1 python -m pytest -m gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys import kernels
from tests.helpers import on_emulation

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    import cupy

    if not on_emulation():
        pytest.skip("checks the CuPy emulation itself (MFPHYS_FAKE_CUPY=1)")
    return cupy


def test_arrays_are_cupy_arrays_and_refuse_implicit_conversion(cp):
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    assert type(a).__module__.split(".")[0] == "cupy" and a.dtype == np.float32
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones((2, 3), np.float32)
    with pytest.raises(TypeError):
        cp.stack([a, np.ones((2, 3))])
    with pytest.raises(TypeError):
        cp.searchsorted(a[0], np.ones(3))
    b = np.exp(a)  # NumPy functions dispatch to the device, as CuPy's __array_ufunc__/__array_function__
    assert isinstance(b, cp.ndarray) and isinstance(np.stack([a, a]), cp.ndarray)
    assert isinstance(a.sum(), cp.ndarray)  # reductions stay on the device as 0-d arrays
    a += 1  # in place keeps the object
    assert a.shape == (2, 3)


def test_syncs_are_counted_with_their_place_and_can_be_forbidden(cp):
    import cupyx

    a = cp.ones(3)
    with cp.count() as c:
        a.get()
        cp.asnumpy(a)
        float(a.sum())
        bool(a.any())
        cp.asarray(np.ones(3))
        a[a > 0]  # sized by the data: CuPy reads the count back
        cp.flatnonzero(a)
    assert [w for w, _ in c.syncs] == ["ndarray.get", "asnumpy", "float(ndarray)", "bool(ndarray)",
                                       "boolean mask indexing", "cupy.flatnonzero"]
    assert all(place.startswith("tests/test_fake_cupy.py:") for _, place in c.syncs), c.syncs
    assert len(c.copies) == 1
    with cupyx.allow_synchronize(False), pytest.raises(cupyx.DeviceSynchronized):
        a.get()
    a.get()  # allowed again outside


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_kernels_run_their_c_body_like_the_numpy_formulas(cp, dtype):
    """The four kernels of mfphys.kernels through their C source (translated) against the NumPy path."""
    rng = np.random.default_rng(0)
    shape = (3, 4, 5)

    def pair(lo=-1.0, hi=1.0):
        h = rng.uniform(lo, hi, shape).astype(dtype)
        return h, cp.asarray(h)

    (pi, pi_d), (m, m_d), (xi, xi_d) = pair(0, 1), pair(), pair(0, 1)
    for host, dev in zip(kernels.scaled_moments(pi, m, xi, 7), kernels.scaled_moments(pi_d, m_d, xi_d, 7)):
        np.testing.assert_allclose(dev.get(), host, rtol=1e-6)
    (G, G_d), (D, D_d), (e, e_d) = pair(), pair(0, 1), pair()
    D[0], D_d[0] = 0, 0  # the masked branch of the ternary
    for host, dev in zip(kernels.noisy_preactivation(G, D.copy(), e), kernels.noisy_preactivation(G_d, D_d, e_d)):
        np.testing.assert_allclose(dev.get(), host, rtol=1e-6)
    (gm, gm_d), (gv, gv_d) = pair(), pair()
    for host, dev in zip(kernels.chain_rule(pi, m, xi, gm, gv), kernels.chain_rule(pi_d, m_d, xi_d, gm_d, gv_d)):
        np.testing.assert_allclose(dev.get(), host, rtol=1e-5, atol=1e-6)
    (th, th_d), (g, g_d), (mu, mu_d), (nu, nu_d) = pair(), pair(), pair(), pair(0, 1)
    kw = dict(lr=0.1, c1=0.1, c2=0.001, b1=0.9, b2=0.999, eps=1e-8, wd=1e-4, lo=0.0, hi=0.5)
    kernels.adam_leaf(th, g.copy(), mu, nu, **kw)
    kernels.adam_leaf(th_d, g_d, mu_d, nu_d, **kw)
    for host, dev in ((th, th_d), (mu, mu_d), (nu, nu_d)):
        np.testing.assert_allclose(dev.get(), host, rtol=1e-5, atol=1e-6)
    assert th_d.get().min() >= 0 and th_d.get().max() <= 0.5


def test_kernels_check_types_as_cupy_does(cp):
    k = cp.ElementwiseKernel("T x, T c", "T y", "y = x * c", "scale")
    x = cp.ones(3, dtype=cp.float32)
    assert k(x, np.float32(2)).dtype == np.float32
    with pytest.raises(TypeError, match="mismatched"):
        k(x, np.float64(2))
    with pytest.raises(TypeError):
        k(np.ones(3, np.float32), np.float32(2))
    with pytest.raises(TypeError, match="number of arguments"):
        k(x)


def test_random_memory_and_device_queries(cp):
    g = cp.random.RandomState(3)
    a = g.standard_normal((2, 3), dtype=np.float32)
    assert isinstance(a, cp.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a.get(), cp.random.RandomState(3).standard_normal((2, 3), dtype=np.float32).get())
    free, total = cp.cuda.Device().mem_info
    assert 0 < free <= total and cp.cuda.runtime.memGetInfo() == (free, total)
    assert cp.get_default_memory_pool().free_bytes() >= 0
