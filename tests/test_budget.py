"""The memory and disk estimates of mfphys.budget against what a run really writes."""

from __future__ import annotations

import pytest

from mfphys import budget
from mfphys.runfile import CheckpointPolicy, plan_run, train_run
from mfphys.train import TrainConfig


@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_disk_estimate_covers_the_resumable_run_file(mode, tmp_path):
    """A run file holds the parameters and Adam's moments (to be continued) and the dynamics."""
    cfg = TrainConfig(dataset="teacher", layers=(784, 64, 10), n_train=200, n_test=100, epochs=4, batch_size=50,
                      replicas=2, backend="numpy", mode=mode)
    path = tmp_path / "r.nc"
    train_run(plan_run(path, cfg), policy=CheckpointPolicy(0, 0), dynamics_every=1)
    size = path.stat().st_size
    estimate = budget.train_estimate(cfg, dynamics_every=1).disk
    assert size <= estimate <= 1.5 * size + (64 << 10), (size, estimate)
