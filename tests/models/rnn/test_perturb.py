"""The targeted perturbation of a recurrent matrix (docs/model-rnn.md section 9)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mfphys.backend import SELECT_VIP, replica_rngs
from mfphys.errors import MfphysError
from mfphys.perturb import candidates, random_ranks
from mfphys.rnn import perturb as rp
from mfphys.rnn import preset, train_rnn


@pytest.fixture(scope="module")
def row(mnist_dir):
    from mfphys.data import load_dataset

    cfg = dataclasses.replace(preset("row_mnist"), epochs=2, replicas=1, n_train=1024, n_test=200,
                              batches_per_epoch=8, eval_samples=2, backend="numpy")
    data = load_dataset("mnist", n_train=1024, n_test=200, data_dir=mnist_dir)
    return cfg, train_rnn(cfg, dataset=data), rp.task_inputs(cfg, dataset=data)


def test_fraction_zero_is_the_unperturbed_network(row):
    cfg, res, test = row
    r = rp.perturbation(res.params, "recurrent", [0, 0.5], test, cfg, samples=2, seed=cfg.seed)
    np.testing.assert_array_equal(r.error_vip[0], r.error_base)
    np.testing.assert_array_equal(r.error_variable[0], r.error_base)
    np.testing.assert_array_equal(r.error_vip_mf[0], r.error_base_mf)
    # with the run's seed, the mean field is the run's own evaluation (module docstring)
    np.testing.assert_allclose(r.error_base_mf, 100 * (1 - res.evaluation["acc_mean"]))


def test_removed_sets_are_random_and_nested(row):
    _, res, _ = row
    vip, _ = candidates(res.params.recurrent)
    ranks = random_ranks(vip, replica_rngs(0, 1, SELECT_VIP))
    order = np.flatnonzero(vip[0])  # the candidates in memory order
    chosen = [set(np.flatnonzero((ranks[0] < k).ravel())) for k in (10, 50, 200)]
    assert chosen[0] <= chosen[1] <= chosen[2]
    assert chosen[1] != set(order[:50])  # not the first k in memory order


def test_no_diagonal_leaves_the_self_connections_out(row):
    _, res, _ = row
    mask = rp.candidate_mask(res.params, "recurrent", diagonal=False)
    vip, var = candidates(res.params.recurrent, live=mask)
    assert not vip[:, np.eye(mask.shape[0], dtype=bool)].any() and not var[:, np.eye(mask.shape[0], dtype=bool)].any()
    assert rp.candidate_mask(res.params, "recurrent") is None


def test_removing_every_vip_hurts_at_least_as_much_as_the_control(row):
    # one tiny fixed-seed run (1 replica, 2 epochs): a regression check of the direction, not a statistic
    cfg, res, test = row
    r = rp.perturbation(res.params, "recurrent", [1], test, cfg, samples=2, seed=cfg.seed)
    assert r.n_removed[0, 0] == r.n_vip[0] > 0 and r.n_removed_variable[0, 0] == r.n_vip[0]
    assert r.error_vip_mf[0].mean() >= r.error_variable_mf[0].mean()
    assert r.error_vip[0].mean() >= r.error_variable[0].mean()


@pytest.mark.parametrize("args, expect", [
    (dict(matrix="hidden"), "--matrix must be one of input, recurrent, output"),
    (dict(matrix="input", diagonal=False), "--no-diagonal leaves out the recurrent self-connections"),
    (dict(samples=0), "--samples must be at least 1"),
])
def test_bad_arguments(args, expect):
    kw = dict(matrix="recurrent", samples=2, diagonal=True) | args
    with pytest.raises(MfphysError, match=expect):
        rp.check_arguments(kw.pop("matrix"), kw.pop("samples"), [0, 1], **kw)
