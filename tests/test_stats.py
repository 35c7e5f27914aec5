"""Mean and spread over replicas (mfphys.stats): one set of numbers for every table, view and export."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys.stats import format_stat, mean_err, replica_stats, sample_std


def test_mean_err_and_format_stat():
    assert mean_err([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1 / math.sqrt(3)))
    assert mean_err([5.0, math.nan]) == (5.0, 0.0)
    assert all(math.isnan(x) for x in mean_err([math.nan]))
    assert format_stat([0.95, 0.96]) == "0.9550 ± 0.0050" and format_stat([]) == "nan"
    # equal replicas: the rounding noise of the mean is no spread
    assert format_stat([0.5375] * 3) == "0.5375"
    assert format_stat([0.1 + 0.2, 0.3]) == "0.3000"


@pytest.mark.parametrize("replicas", [1, 2, 3, 8, 20])
def test_replica_stats_is_mean_err_on_every_slice(replicas, rng):
    """Vectorised over any axis; with finite values, the very numbers of mean_err (and sample_std's
    up to rounding: NumPy sums a non-contiguous axis in another order)."""
    a = rng.normal(size=(replicas, 4, 5)) * 10
    mean, std, sem, n = replica_stats(a, axis=0)
    assert mean.shape == std.shape == sem.shape == n.shape == (4, 5) and (n == replicas).all()
    for i in range(4):
        for j in range(5):
            assert (mean[i, j], sem[i, j]) == mean_err(a[:, i, j])
    if replicas > 1:
        np.testing.assert_allclose(std, sample_std(a, axis=0), rtol=1e-13)
    else:
        assert np.isnan(std).all()  # no spread from one value (sample_std would say 0)
    moved = replica_stats(np.moveaxis(a, 0, -1), axis=-1)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(moved, (mean, std, sem, n)))


def test_replica_stats_leaves_out_nans():
    a = np.array([[1.0, math.nan, math.nan], [3.0, 4.0, math.nan]])
    mean, std, sem, n = replica_stats(a, axis=0)
    assert n.tolist() == [2, 1, 0]
    assert mean[:2].tolist() == [2.0, 4.0] and math.isnan(mean[2])
    assert std[0] == pytest.approx(math.sqrt(2)) and math.isnan(std[1]) and math.isnan(std[2])
    assert sem[0] == pytest.approx(1.0) and sem[1] == 0.0 and math.isnan(sem[2])
    for k in range(3):
        assert np.array_equal([mean[k], sem[k]], mean_err(a[:, k]), equal_nan=True)
