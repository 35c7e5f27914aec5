"""Oracles for mfphys.order (docs/model.md section 6).

- the closed-form entropy against an independent Monte-Carlo estimate of the reference
  code's estimator (sample w from the spike-and-slab law, average -ln of its score), within
  a stated number of standard errors, over random (pi, m, Xi) and the limits pi = 0,
  pi = 1, Xi = 0 and Xi below xi_zero;
- the order parameters on hand-built parameter arrays whose answers are counted by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys import order
from mfphys.backend import get_backend
from mfphys.errors import MfphysError
from mfphys.model import Layer
from tests.helpers import BACKENDS

#: Monte-Carlo draws per (pi, m, Xi) and the allowed deviation in standard errors. With
#: ~60 cases, a 5-sigma miss of a correct formula has probability ~ 60 * 6e-7 (and the
#: seed is fixed, so the test is deterministic).
N_MC = 40_000
Z_MAX = 5.0


def mc_entropy(pi, m, xi, rng, *, n=N_MC, xi_zero=order.XI_ZERO):
    """The reference code's estimator, written independently: -mean ln(score(w)), w ~ P(w).

    A spike draw (w = 0) scores the spike mass plus the slab density at 0,
    ``pi + (1 - pi) N(0; m, Xi)``; a slab draw scores ``(1 - pi) N(w; m, Xi)``. For
    ``Xi <= xi_zero`` the slab is a point mass at ``m`` (the reference's threshold): the
    score is then a probability, ``pi`` or ``1 - pi``, or 1 when spike and slab coincide.
    Returns (estimate, standard error).
    """
    spike = rng.random(n) < pi
    if xi > xi_zero:
        w = np.where(spike, 0.0, m + math.sqrt(xi) * rng.standard_normal(n))

        def density(v):
            return np.exp(-((v - m) ** 2) / (2 * xi)) / math.sqrt(2 * math.pi * xi)

        score = np.where(spike, pi + (1 - pi) * density(0.0), (1 - pi) * density(w))
    elif m == 0:
        score = np.ones(n)
    else:
        score = np.where(spike, pi, 1 - pi)
    ln = np.log(score)
    return -ln.mean(), ln.std(ddof=1) / math.sqrt(n)


def entropy_cases():
    rng = np.random.default_rng(2020)
    random = [(rng.uniform(0, 1), rng.normal(0, 1), 10 ** rng.uniform(-6, 0)) for _ in range(30)]
    limits = [
        (0.0, 0.3, 0.5), (0.0, 0.0, 1e-6), (0.0, -2.0, 2.0),  # pi = 0: a Gaussian
        (1.0, 0.3, 0.5), (1.0, 0.0, 0.0), (1.0, 5.0, 1e-12),  # pi = 1: the spike alone, S = 0
        (0.0, 0.7, 0.0), (0.4, 0.0, 0.0), (0.4, 0.7, 0.0), (0.9, -1.5, 0.0),  # Xi = 0
        (0.3, 0.7, 1e-9), (0.3, 0.0, 5e-9), (0.6, 2.0, order.XI_ZERO),  # Xi <= xi_zero: point mass
        (0.3, 0.0, 2e-8), (0.5, 1e-4, 1e-6), (0.01, 0.05, 1e-4),  # just above xi_zero; slab piled at 0
        (0.99, 0.3, 0.2), (0.5, 4.0, 1e-3),  # spike dominant; slab far from 0
    ]
    return random + limits


@pytest.mark.parametrize("pi,m,xi", entropy_cases())
def test_entropy_matches_monte_carlo(pi, m, xi):
    S = float(order.entropy(np.array(pi), np.array(m), np.array(xi)))
    seed = abs(hash((round(pi, 12), round(m, 12), xi))) % 2**32
    est, se = mc_entropy(pi, m, xi, np.random.default_rng(seed))
    assert math.isfinite(S)
    assert abs(S - est) <= Z_MAX * se + 1e-12, (S, est, se)


def test_entropy_monte_carlo_z_scores_are_standard_normal():
    """Over the random cases the deviations in units of the standard error look like N(0, 1):
    a bias of the closed form much smaller than one standard error per case would show here."""
    rng = np.random.default_rng(7)
    z = []
    for pi, m, xi in entropy_cases()[:30]:
        est, se = mc_entropy(pi, m, xi, rng)
        z.append((float(order.entropy(np.array(pi), np.array(m), np.array(xi))) - est) / se)
    z = np.array(z)
    assert abs(z.mean()) < 4 / math.sqrt(z.size) and 0.5 < z.std() < 1.6, z


@pytest.mark.parametrize("m,xi", [(0.3, 0.5), (0.0, 0.0), (2.0, 1e-9), (-1.0, 4.0)])
def test_entropy_is_zero_when_the_connection_is_absent(m, xi):
    assert order.entropy(np.array(1.0), np.array(m), np.array(xi)) == 0


@pytest.mark.parametrize("xi", [0.01, 0.5, 3.0])
def test_entropy_of_a_pure_slab_is_the_gaussian_entropy(xi):
    S = order.entropy(np.array(0.0), np.array(0.7), np.array(xi))
    assert pytest.approx(0.5 * math.log(2 * math.pi * math.e * xi), rel=1e-12) == S


@pytest.mark.parametrize("pi", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("xi", [0.0, 1e-10, order.XI_ZERO])
def test_entropy_of_a_point_slab_is_binary(pi, xi):
    """Xi <= xi_zero: two points (0 and m) with masses pi, 1 - pi; one point when m = 0."""
    S = order.entropy(np.array([pi, pi, 0.0]), np.array([0.4, 0.0, 0.4]), np.array([xi, xi, xi]))
    assert S[0] == pytest.approx(-pi * math.log(pi) - (1 - pi) * math.log(1 - pi), rel=1e-12)
    assert S[1] == 0 and S[2] == 0


def test_entropy_differs_from_the_textbook_entropy_by_the_spike_term():
    """Textbook mixed discrete/continuous entropy: -pi ln pi - q ln q + q h_slab. The reference's
    estimator scores a spike draw with pi + q N(0; m, Xi), i.e. -pi ln(1 + q N0 / pi) less;
    the gap vanishes when the slab has no density at 0 (|m| >> sqrt(Xi))."""
    rng = np.random.default_rng(3)
    pi, m, xi = rng.uniform(0.05, 0.95, 200), rng.normal(0, 1, 200), rng.uniform(0.01, 1, 200)
    q = 1 - pi
    textbook = -pi * np.log(pi) - q * np.log(q) + q * 0.5 * np.log(2 * np.pi * np.e * xi)
    n0 = np.exp(-m * m / (2 * xi)) / np.sqrt(2 * np.pi * xi)
    S = order.entropy(pi, m, xi)
    np.testing.assert_allclose(S - textbook, -pi * np.log1p(q * n0 / pi), rtol=1e-9, atol=1e-12)
    assert np.all(textbook >= S)
    far = order.entropy(np.array(0.4), np.array(10.0), np.array(0.01))
    assert far == pytest.approx(-0.4 * math.log(0.4) - 0.6 * math.log(0.6) + 0.3 * math.log(2 * math.pi * math.e
                                                                                              * 0.01), abs=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_entropy_is_finite_across_the_regimes(dtype):
    pi = np.array([0, 0.3, 1, 0, 0.3, 1, 0.3, 0.3], dtype=dtype)
    m = np.array([0, 0, 0, 0.5, 0.5, 0.5, 0, 1], dtype=dtype)
    xi = np.array([0, 1e-12, 1e-8, 1.5e-8, 1e-7, 0, 1e-4, 30], dtype=dtype)
    assert np.all(np.isfinite(order.entropy(pi, m, xi)))


# --- hand-built layers ----------------------------------------------------------------------

#: one layer, 2 replicas x 2 x 5 connections. Replica 0 mixes every category (comments:
#: default tolerances / exact); replica 1 is a BP network (pi = Xi = 0).
PI0 = [[0.0, 0.0, 1.0, 0.5, 0.995],  # vip/vip, vip/var, uip/uip, var/var, uip/var
       [0.005, 0.0, 1.0, 0.2, 0.0]]  # vip/var, var/var, uip/uip, var/var, vip/var
XI0 = [[0.0, 1e-5, 0.3, 0.1, 0.2],
       [0.0, 0.5, 0.0, 0.0, 1e-9]]
M0 = [[0.5, -1.0, 2.0, 0.3, 0.0],
      [0.1, 0.0, -0.4, 1.5, 0.7]]


def hand_layer():
    pi = np.array([PI0, np.zeros((2, 5))])
    xi = np.array([XI0, np.zeros((2, 5))])
    m = np.array([M0, M0])
    return pi, m, xi


def scalar_entropy(pi, m, xi, xi_zero=order.XI_ZERO):
    """docs/model.md section 6, one connection at a time with the math module."""
    if pi == 1:
        return 0.0
    if xi <= xi_zero:
        return 0.0 if (m == 0 or pi == 0) else -pi * math.log(pi) - (1 - pi) * math.log(1 - pi)
    n0 = math.exp(-m * m / (2 * xi)) / math.sqrt(2 * math.pi * xi)
    spike = pi * math.log(pi + (1 - pi) * n0) if pi > 0 else 0.0
    return -spike - (1 - pi) * math.log(1 - pi) + (1 - pi) * 0.5 * math.log(2 * math.pi * math.e * xi)


def hand_expectations(live=(True,) * 5):
    """Replica 0's order parameters counted by hand over the connections from live inputs."""
    sel = [(i, j) for i in range(2) for j in range(5) if live[j]]
    n = len(sel)
    vip = {(0, 0), (0, 1), (1, 0), (1, 4)}
    uip = {(0, 2), (0, 4), (1, 2)}
    vip_exact, uip_exact = {(0, 0)}, {(0, 2), (1, 2)}
    present = [c for c in sel if c not in uip]
    S = [scalar_entropy(PI0[i][j], M0[i][j], XI0[i][j]) for i, j in sel]
    var = [(1 - PI0[i][j]) * (M0[i][j] ** 2 + XI0[i][j]) - ((1 - PI0[i][j]) * M0[i][j]) ** 2 for i, j in sel]
    return {
        "sparsity": len(uip & set(sel)) / n,
        "frac_vip": len(vip & set(sel)) / n,
        "frac_uip": len(uip & set(sel)) / n,
        "frac_variable": (n - len((vip | uip) & set(sel))) / n,
        "frac_vip_exact": len(vip_exact & set(sel)) / n,
        "frac_uip_exact": len(uip_exact & set(sel)) / n,
        "frac_variable_exact": (n - len((vip_exact | uip_exact) & set(sel))) / n,
        "mean_pi": sum(PI0[i][j] for i, j in sel) / n,
        "mean_xi": sum(XI0[i][j] for i, j in present) / len(present),
        "weight_var": sum(var) / n,
        "entropy": sum(S) / n,
        "entropy_median": float(np.median(S)),
        "frac_point": sum(XI0[i][j] <= order.XI_ZERO for i, j in sel) / n,
    }


#: a BP network: every connection present and deterministic
BP_EXPECT = {"sparsity": 0, "frac_vip": 1, "frac_uip": 0, "frac_variable": 0, "frac_vip_exact": 1,
             "frac_uip_exact": 0, "frac_variable_exact": 0, "mean_pi": 0, "mean_xi": 0, "weight_var": 0,
             "entropy": 0, "entropy_median": 0, "frac_point": 1}


def test_categories_of_the_hand_built_layer():
    pi, _, xi = hand_layer()
    vip, uip, variable = order.categories(pi[0], xi[0])
    assert vip.tolist() == [[True, True, False, False, False], [True, False, False, False, True]]
    assert uip.tolist() == [[False, False, True, False, True], [False, False, True, False, False]]
    assert np.all(vip ^ uip ^ variable) and not np.any(vip & uip)
    vip, uip, _ = order.categories(pi[0], xi[0], tol=0.0, xi_tol=0.0)
    assert vip.sum() == 1 and vip[0, 0] and uip.sum() == 2


@pytest.mark.parametrize("live", [(True,) * 5, (True, True, False, True, True), (False, True, True, False, True)])
def test_layer_order_of_the_hand_built_layer(live):
    pi, m, xi = hand_layer()
    (_, inputs, got) = order.layer_reports(((pi, m, xi),), live_inputs=np.array(live))[1]
    assert inputs == "live"
    want = hand_expectations(live)
    for name, value in want.items():
        assert got[name][0] == pytest.approx(value, rel=1e-12, abs=1e-15), name
        assert got[name][1] == pytest.approx(BP_EXPECT[name], abs=0), name
    assert got["frac_vip"] + got["frac_uip"] + got["frac_variable"] == pytest.approx([1, 1])


def test_mean_xi_is_nan_when_every_connection_is_absent():
    pi = np.ones((1, 3, 4))
    res = order.layer_order(pi, np.zeros_like(pi), np.full_like(pi, 0.2))
    assert np.isnan(res["mean_xi"][0]) and res["sparsity"][0] == 1 and res["entropy"][0] == 0


def test_run_order_live_inputs_change_layer_1_only():
    pi, m, xi = hand_layer()
    rng = np.random.default_rng(0)
    layer2 = Layer(rng.uniform(0, 1, (2, 3, 2)), rng.normal(0, 1, (2, 3, 2)), rng.uniform(0, 0.1, (2, 3, 2)))
    live = np.array([True, True, False, True, True])
    out = order.run_order((Layer(pi, m, xi), layer2), live_inputs=live)
    assert all(v.shape == (2, 2) for v in out.values())
    want_all, want_live = hand_expectations(), hand_expectations(tuple(live))
    for name in order.SCALARS:
        assert out[name][0, 0] == pytest.approx(want_all[name]), name
        assert out[f"{name}_live"][0, 0] == pytest.approx(want_live[name]), name
        np.testing.assert_array_equal(out[f"{name}_live"][:, 1], out[name][:, 1])
    for k in ("frac_vip", "frac_uip", "frac_variable"):
        assert out[f"{k}_exact"][0, 0] == pytest.approx(want_all[f"{k}_exact"])


def test_layer_reports_columns():
    pi, m, xi = hand_layer()
    layer2 = tuple(a[:, :, :2] for a in (pi, m, xi))
    live = np.array([True, True, False, True, True])
    reports = order.layer_reports(((pi, m, xi), layer2), live_inputs=live)
    assert [(l, inputs) for l, inputs, _ in reports] == [(1, "all"), (1, "live"), (2, "all")]
    for (_, _, got), want in zip(reports, (hand_expectations(), hand_expectations(tuple(live)))):
        for name, value in want.items():
            assert got[name][0] == pytest.approx(value), name


def test_histogram_counts_every_connection():
    edges = np.linspace(0, 1, 5)  # bins [0, .25), [.25, .5), [.5, .75), [.75, 1]
    values = np.array([[0.0, 0.1, 0.25, 0.6, 1.0, 1.7, -0.3], [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]])
    counts = order.histogram(values, edges)
    assert counts.tolist() == [[3, 1, 1, 2], [0, 7, 0, 0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_order_parameters_agree_across_backends(backend):
    be = get_backend(backend, "float64")
    pi, m, xi = hand_layer()
    got = order.layer_order(*(be.asarray(a) for a in (pi, m, xi)))
    want = order.layer_order(pi, m, xi)
    for name in want:
        np.testing.assert_allclose(be.to_numpy(got[name]), want[name], rtol=1e-12, err_msg=name)


def test_resolve_tolerances():
    assert order.resolve_tolerances() == {"tol": order.TOL, "xi_tol": order.XI_TOL, "xi_zero": order.XI_ZERO}
    stored = {"tol": 0.05, "xi_tol": 1e-3, "xi_zero": 1e-9}
    assert order.resolve_tolerances(stored) == stored
    assert order.resolve_tolerances(stored, tol=0.1)["tol"] == 0.1
    assert order.resolve_tolerances(stored, exact=True) == {"tol": 0.0, "xi_tol": 0.0, "xi_zero": 1e-9}
    for kw, msg in (({"exact": True, "tol": 0.1}, "either --exact"), ({"tol": 0.5}, "--tol must be in"),
                    ({"xi_zero": -1.0}, "--xi-zero must be"), ({"xi_tol": float("nan")}, "--xi-tol must be")):
        with pytest.raises(MfphysError, match=msg):
            order.resolve_tolerances(**kw)


def test_training_order_is_run_order_without_the_extras(rng):
    params = tuple(Layer(rng.uniform(0, 1, (2, n, m)).round(1), rng.normal(0, 1, (2, n, m)),
                         rng.uniform(0, 0.01, (2, n, m)) * (rng.uniform(size=(2, n, m)) > 0.3))
                   for n, m in ((6, 5), (3, 6)))
    live = np.array([True, False, True, True, False])
    full = order.run_order(params, live_inputs=live)
    dyn = order.training_order(params, live_inputs=live)
    assert set(dyn) == set(order.SCALARS) | {f"{k}_live" for k in order.SCALARS}
    for k, v in dyn.items():
        np.testing.assert_array_equal(v, full[k], err_msg=k)
    assert set(order.training_order(params)) == set(order.SCALARS)


def test_snapshot_epochs_are_log_spaced_and_end_at_the_last():
    assert order.snapshot_epochs(1) == (0, 1)
    assert order.snapshot_epochs(100) == (0, 1, 2, 5, 10, 20, 50, 100)
    assert order.snapshot_epochs(200) == (0, 1, 2, 5, 10, 20, 50, 100, 200)
    assert order.snapshot_epochs(30) == (0, 1, 2, 5, 10, 20, 30)
