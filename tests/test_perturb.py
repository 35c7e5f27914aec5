"""The targeted-perturbation experiment (docs/model.md section 7.3): mechanics and the effect.

Fast tests use hand-built parameters whose categories are known and record exactly which
connections every evaluation saw removed; a slow test trains on real MNIST and checks the
paper's effect (removing very important connections hurts far more than removing the same
number of variable ones).
"""

from __future__ import annotations

import numpy as np
import pytest

from mfphys import order, store
from mfphys.backend import SELECT_VIP, replica_rngs
from mfphys.errors import MfphysError
from mfphys.model import Layer
from mfphys.models.ffn import perturb  # the feed-forward experiment (the driver mfphys.perturb dispatches to it)
from mfphys.train import TrainConfig, load_data, train

LAYERS = (12, 8, 3)
R = 2


def hand_params(seed=0, n_vip=20, n_uip=25):
    """Layer 1 with exactly n_vip very important (pi = Xi = 0) and n_uip absent connections per
    replica, the rest variable; input 0 is dead (its column is very important and variable)."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(LAYERS[:-1], LAYERS[1:]):
        shape = (R, n_out, n_in)
        pi = rng.uniform(0.1, 0.8, shape)
        xi = rng.uniform(0.01, 0.3, shape)
        params.append(Layer(pi, rng.normal(0, 1.5, shape), xi))
    pi, _, xi = params[0]
    for r in range(R):
        idx = rng.permutation(LAYERS[0] * LAYERS[1])
        pi[r].flat[idx[:n_vip]] = 0.0
        xi[r].flat[idx[:n_vip]] = 0.0
        pi[r].flat[idx[n_vip:n_vip + n_uip]] = 1.0
    return tuple(params)


def eval_data(P=300, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (P, LAYERS[0])), rng.integers(0, LAYERS[-1], P)




@pytest.fixture
def recorder(monkeypatch):
    """Record the first layer's pi of every evaluation the experiment makes, in order."""
    seen = []
    real = perturb.evaluate_errors

    def spy(params, x, y, **kw):
        seen.append(tuple(np.array(layer.pi) for layer in params))
        return real(params, x, y, **kw)

    monkeypatch.setattr(perturb, "evaluate_errors", spy)
    return seen


FRACTIONS = np.array([0.0, 0.25, 0.5, 1.0])


def run(params, **kw):
    x, y = eval_data()
    opts = dict(samples=3, seed=5, activation="relu")
    opts.update(kw)
    return perturb.perturbation(params, opts.pop("layer", 1), opts.pop("fractions", FRACTIONS), x, y, **opts)


def test_exact_counts_and_only_the_chosen_category_is_touched(recorder):
    params = hand_params()
    res = run(params)
    vip, variable = perturb.candidates(params[0])
    assert res.n_vip.tolist() == [20, 20] and res.n_variable.tolist() == [96 - 45] * 2
    assert res.n_removed.tolist() == [[0, 0], [5, 5], [10, 10], [20, 20]]  # round half up: 0.25 * 20 = 5
    np.testing.assert_array_equal(res.n_removed_variable, res.n_removed)
    base, *evals = recorder
    assert len(evals) == 2 * len(FRACTIONS)
    np.testing.assert_array_equal(base[0], params[0].pi)
    previous = {"vip": np.zeros_like(vip), "variable": np.zeros_like(vip)}
    for i, f in enumerate(FRACTIONS):
        for arm, pis, pool in (("vip", evals[2 * i], vip), ("variable", evals[2 * i + 1], variable)):
            removed = pis[0] != params[0].pi
            assert np.all(pis[0][removed] == 1), "removal sets pi = 1"
            assert not np.any(removed & ~pool), f"{arm}: only its own category is touched"
            assert removed.sum(axis=(1, 2)).tolist() == res.n_removed[i].tolist(), (arm, f)
            assert np.all(previous[arm] <= removed), "the removed set grows with the fraction"
            previous[arm] = removed
            for other, orig in zip(pis[1:], params[1:]):
                np.testing.assert_array_equal(other, orig.pi)  # other layers untouched
    assert previous["vip"].sum() == 2 * 20  # f = 1 removes every very important connection


def test_f0_is_the_unperturbed_network():
    res = run(hand_params())
    np.testing.assert_array_equal(res.error_vip[0], res.error_base)
    np.testing.assert_array_equal(res.error_variable[0], res.error_base)
    np.testing.assert_array_equal(res.error_vip_mf[0], res.error_base_mf)
    np.testing.assert_array_equal(res.error_variable_mf[0], res.error_base_mf)


def test_deterministic_by_seed(recorder):
    params = hand_params()
    a = run(params, seed=11)
    first = list(recorder)
    recorder.clear()
    b = run(params, seed=11)
    for name, u, v in zip(a._fields, a, b):
        np.testing.assert_array_equal(u, v, err_msg=name)
    recorder.clear()
    run(params, seed=12)
    assert not np.array_equal(first[3][0], recorder[3][0]), "another seed removes other connections"


def test_removing_all_of_layer_1_leaves_a_constant_output():
    """Every connection very important, all removed: the mean-field and every sampled network
    output 0 for all classes, argmax picks class 0, so the error is exactly that of 'always 0'."""
    params = hand_params()
    pi, m, _ = params[0]
    params = (Layer(np.zeros_like(pi), m, np.zeros_like(pi)),) + params[1:]
    res = run(params, fractions=[1.0])
    _, y = eval_data()
    want = 100 * np.mean(y != 0)
    assert res.n_removed.tolist() == [[96, 96]] and res.n_removed_variable.tolist() == [[0, 0]]
    np.testing.assert_allclose(res.error_vip, want)
    np.testing.assert_allclose(res.error_vip_mf, want)


def test_control_is_capped_when_few_variable_connections(recorder):
    params = hand_params(n_vip=60, n_uip=30)  # 6 variable connections per replica
    res = run(params, fractions=[0.5, 1.0])
    assert res.n_variable.tolist() == [6, 6]
    assert res.n_removed.tolist() == [[30, 30], [60, 60]] and res.n_removed_variable.tolist() == [[6, 6], [6, 6]]
    ds = perturb.perturbation_dataset(res, attrs={"layer": 1})
    assert ds.attrs["capped"] == 1


def test_live_inputs_restrict_both_pools(recorder):
    params = hand_params()
    live = np.ones(LAYERS[0], dtype=bool)
    live[0] = False
    res = run(params, live=live, fractions=[1.0])
    vip, variable = perturb.candidates(params[0])
    assert res.n_vip.tolist() == (vip[:, :, 1:].sum(axis=(1, 2))).tolist()
    assert res.n_variable.tolist() == (variable[:, :, 1:].sum(axis=(1, 2))).tolist()
    for pis in recorder[1:]:
        np.testing.assert_array_equal(pis[0][:, :, 0], params[0].pi[:, :, 0])


def test_deeper_layer_and_tolerances():
    params = hand_params()
    res = run(params, layer=2, fractions=[1.0], tol=0.2, xi_tol=0.5)
    vip, _, _ = order.categories(params[1].pi, params[1].xi, tol=0.2, xi_tol=0.5)
    assert res.n_removed.tolist() == [vip.sum(axis=(1, 2)).tolist()]


@pytest.mark.parametrize("kw,msg", [
    ({"layer": 3}, "--layer must be between 1 and 2"),
    ({"layer": 0}, "--layer must be between 1 and 2"),
    ({"samples": 0}, "--samples must be at least 1"),
    ({"fractions": [0.5, 1.2]}, "fractions must be numbers in [0, 1]"),
    ({"fractions": []}, "fractions must be numbers in [0, 1]"),
])
def test_bad_arguments_are_user_errors(kw, msg):
    with pytest.raises(MfphysError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        run(hand_params(), **kw)


def test_random_ranks_are_permutations_of_the_candidates():
    mask = np.random.default_rng(0).random((3, 4, 6)) < 0.4
    ranks = perturb.random_ranks(mask, replica_rngs(0, 3, SELECT_VIP))
    for r in range(3):
        assert sorted(ranks[r][mask[r]].tolist()) == list(range(mask[r].sum()))
        assert np.all(ranks[r][~mask[r]] == perturb.NOT_CANDIDATE)


def test_dataset_round_trip(tmp_path):
    res = run(hand_params())
    ds = perturb.perturbation_dataset(res, attrs={"layer": 1, "source": "x.nc", "config": {"a": 1}})
    path = store.write_atomic(ds, tmp_path / "p.nc")
    back = store.read_dataset(path)
    assert back.attrs[store.KIND_ATTR] == "perturbation" and back.attrs["config"] == '{"a": 1}'
    assert dict(back.sizes) == {"fraction": 4, "replica": R, "sample": 3}
    np.testing.assert_allclose(back.error_vip.values, res.error_vip.mean(axis=-1))
    np.testing.assert_array_equal(back.error_variable_sample.values, res.error_variable)
    np.testing.assert_array_equal(back.n_removed.values, res.n_removed)


def test_f0_reproduces_the_runs_sampled_accuracy():
    """Same seed and number of draws as training's final evaluation: the same sub-networks."""
    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=500, n_test=400, epochs=3, batch_size=100,
                      replicas=2, backend="numpy", seed=3, eval_samples=4)
    result = train(cfg)
    data = load_data(cfg)
    res = perturb.perturbation(result.params, 1, [0.0, 1.0], data.x_test, data.y_test, samples=4, seed=3)
    np.testing.assert_allclose(res.error_vip[0], 100 * (1 - result.sampled_acc), atol=1e-9)
    np.testing.assert_allclose(res.error_base_mf, 100 * (1 - result.history["test_acc"][:, -1]), atol=1e-9)


@pytest.mark.slow
def test_removing_important_connections_hurts_far_more_on_mnist(mnist_dir):
    """docs/model.md section 7.3 on a shorter real-MNIST run (20 epochs, 2 replicas)."""
    cfg = TrainConfig(epochs=20, replicas=2, backend="numpy")
    result = train(cfg, data_dir=mnist_dir)
    data = load_data(cfg, mnist_dir)
    res = perturb.perturbation(result.params, 1, [0.0, 1.0], data.x_test, data.y_test, samples=5, seed=0,
                               live=~result.dead_inputs)
    rise_vip = res.error_vip[1].mean(axis=-1) - res.error_vip[0].mean(axis=-1)
    rise_var = res.error_variable[1].mean(axis=-1) - res.error_variable[0].mean(axis=-1)
    assert np.all(res.n_removed[1] > 1000) and np.all(res.n_removed_variable == res.n_removed)
    # measured (seed 0): rises of 6.6 and 8.5 points against 0.5 and 2.0 for the control
    assert np.all(rise_vip - rise_var > 2.0), (rise_vip, rise_var)  # percentage points, every replica
    assert rise_vip.mean() > 3 * max(rise_var.mean(), 0.3), (rise_vip, rise_var)


def test_perturb_run_on_a_run_file(tmp_path):
    """The storage edge: a run file in, the dataset out, with the run's seed and tolerances."""
    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=500, n_test=300, epochs=3, batch_size=100,
                      replicas=2, backend="numpy", seed=2, eval_samples=3)
    result = train(cfg)
    path = store.save_run(result, tmp_path / "run.nc", tol=0.2, xi_tol=0.05)
    ds = perturb.perturb_run(path, fractions=[0, 1], samples=3, backend="numpy")
    assert ds.attrs["tol"] == 0.2 and ds.attrs["xi_tol"] == 0.05 and ds.attrs["seed"] == 2
    assert ds.attrs["source"] == str(path) and ds.attrs["candidates"] == "live inputs only"
    vip, _, _ = order.categories(result.params[0].pi, result.params[0].xi, tol=0.2, xi_tol=0.05)
    assert ds.n_removed.sel(fraction=1).values.tolist() == vip.sum(axis=(1, 2)).tolist()
    np.testing.assert_allclose(ds.error_vip.sel(fraction=0).values, 100 * (1 - result.sampled_acc.mean(axis=1)))
    exact = perturb.perturb_run(path, fractions=[1], samples=1, exact=True, all_inputs=True, seed=9)
    assert exact.attrs["tol"] == 0 and exact.attrs["candidates"] == "all inputs" and exact.attrs["seed"] == 9


def test_a_bp_run_is_refused_unless_allowed(tmp_path):
    """pi = Xi = 0: every connection is very important, no control arm (docs/model.md section 7.3)."""
    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=300, n_test=200, epochs=2, batch_size=100,
                      replicas=1, backend="numpy", mode="bp", eval_samples=2)
    path = store.save_run(train(cfg), tmp_path / "bp.nc")
    with pytest.raises(MfphysError, match=r"bp.nc is a BP run: .* no control .*--allow-bp"):
        perturb.perturb_run(path, fractions=[0, 1], samples=1)
    ds = perturb.perturb_run(path, fractions=[0, 1], samples=1, allow_bp=True)
    assert ds.n_variable.values.tolist() == [0] and ds.n_removed_variable.sel(fraction=1).values.tolist() == [0]
