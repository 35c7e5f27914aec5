"""The per-epoch scalar log beside a run file (mfphys.runlog, docs/file-format.md "The epoch log").

Oracles: the uninterrupted run of the same seeds (the log's values are the ones its file holds,
bit for bit on NumPy); the checkpoint read without the log (``open_run(log=False)``); hand-made
torn and foreign logs.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mfphys import open_run, runlog
from mfphys.rnn import preset
from mfphys.runfile import CheckpointPolicy, plan_run, train_run
from mfphys.train import TrainConfig

CFG = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=200, n_test=100, epochs=7, batch_size=50,
                  replicas=2, backend="numpy", eval_samples=3)
#: a checkpoint every other epoch: epochs 5 and 6 of a run killed after epoch 6 are in the log only
EVERY_2 = CheckpointPolicy(every=2, seconds=0)


class KillAfter:
    """A progress callback that raises KeyboardInterrupt after epoch ``n`` (a kill between
    checkpoints: the run file keeps its last checkpoint)."""

    def __init__(self, n):
        self.n = n

    def __call__(self, record):
        if record.epoch == self.n:
            raise KeyboardInterrupt


def killed(path, cfg=CFG, n=6, policy=EVERY_2):
    with pytest.raises(KeyboardInterrupt):
        train_run(plan_run(path, cfg), policy=policy, callback=KillAfter(n))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.nc"
    train_run(plan_run(path, CFG), policy=CheckpointPolicy(0, 0))
    return open_run(path)


def test_killed_run_shows_every_finished_epoch(tmp_path, reference):
    path = killed(tmp_path / "a.nc")
    ds, checkpoint = open_run(path), open_run(path, log=False)
    assert checkpoint.attrs["epochs_done"] == 4 and list(checkpoint.epoch.values) == [1, 2, 3, 4]
    assert list(ds.epoch.values) == [1, 2, 3, 4, 5, 6]
    assert list(ds.from_log.values) == [False] * 4 + [True] * 2 and ds.attrs["log_epochs"] == 2
    for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds"):
        want = reference[k].sel(epoch=ds.epoch)
        if k == "epoch_seconds":
            assert np.all(np.isfinite(ds[k].values))
        else:
            np.testing.assert_array_equal(ds[k].values, want.values, err_msg=k)
    # the dynamics recorded after epoch 5 come from the log too; the parameters stay the checkpoint's
    assert list(ds.dyn_epoch.values) == [0, 1, 2, 5] and list(ds.dyn_from_log.values) == [False] * 3 + [True]
    np.testing.assert_array_equal(ds.dyn_frac_vip.values, reference.dyn_frac_vip.sel(dyn_epoch=ds.dyn_epoch).values)
    np.testing.assert_array_equal(ds.pi_1.values, checkpoint.pi_1.values)
    assert ds.attrs["epochs_done"] == 4


def test_resume_cuts_the_log_back_and_the_finished_run_removes_it(tmp_path, reference):
    path = killed(tmp_path / "a.nc")
    log = runlog.log_path(path)
    assert [r["epoch"] for r in runlog.read_records(log)] == [1, 2, 3, 4, 5, 6]
    seen = []

    def look(record):
        seen.append([r["epoch"] for r in runlog.read_records(log)])

    train_run(plan_run(path, CFG, resume=True), callback=look)
    # resumed at the checkpoint's epoch 4: epochs 5 and 6 are trained (and logged) again
    assert seen == [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]]
    assert not log.exists()
    done = open_run(path)
    assert "from_log" not in done.coords and done.sizes["epoch"] == 7
    np.testing.assert_array_equal(done.test_acc.values, reference.test_acc.values)


def test_a_torn_last_line_is_ignored(tmp_path):
    path = killed(tmp_path / "a.nc")
    log = runlog.log_path(path)
    text = log.read_text()
    log.write_text(text + text.splitlines()[-1][:37])  # a kill in the middle of epoch 7's line
    assert list(open_run(path).epoch.values) == [1, 2, 3, 4, 5, 6]
    lines = text.splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:-20])  # epoch 6's line torn
    ds = open_run(path)
    assert list(ds.epoch.values) == [1, 2, 3, 4, 5] and ds.attrs["log_epochs"] == 1


def test_a_log_of_another_run_is_not_mixed_in(tmp_path):
    path = killed(tmp_path / "a.nc")
    log = runlog.log_path(path)
    lines = log.read_text().splitlines()
    header = json.loads(lines[0])
    log.write_text("\n".join([json.dumps({**header, "created": "2020-01-01T00:00:00+00:00"})] + lines[1:]) + "\n")
    assert open_run(path).sizes["epoch"] == 4 and "from_log" not in open_run(path).coords
    log.write_text("not json at all\n")
    assert open_run(path).sizes["epoch"] == 4


def test_a_new_run_starts_a_new_log(tmp_path):
    path = tmp_path / "a.nc"
    runlog.log_path(path).write_text('{"mfphys_epoch_log":1,"created":"x"}\n{"epoch":9,"values":{}}\n')
    killed(path, n=1, policy=CheckpointPolicy(0, 0))
    assert [r["epoch"] for r in runlog.read_records(runlog.log_path(path))] == [1]
    ds = open_run(path)
    assert list(ds.epoch.values) == [1] and bool(ds.from_log.values[0])


def test_a_line_is_small():
    """A few hundred bytes per epoch without the dynamics (2 replicas here)."""
    rec = {"epoch": 3, "values": {k: np.full(2, 0.123456789) for k in ("train_loss", "train_acc", "test_loss",
                                                                        "test_acc")} | {"lr": 0.1}}
    assert len(runlog._line(rec)) < 400
    line = runlog._line({"epoch": 1, "values": {"x": np.array([np.nan, 1.0])}})
    assert json.loads(line)["values"]["x"] == [None, 1.0]


def test_recurrent_run_through_the_same_log(tmp_path):
    """The recurrent family's epochs go through the same log (its default ``epoch_log``): a
    replica that met the stop rule has NaN there, as in its run file."""
    cfg = dataclasses.replace(preset("multisensory"), n=15, epochs=6, eval_samples=2, test_repeats=1,
                              dtype="float64", backend="numpy", replicas=3, seed=1, stop_loss=0.03380365090196246,
                              stop_min_epoch=3)
    ref = tmp_path / "ref.nc"
    train_run(plan_run(ref, cfg), policy=CheckpointPolicy(0, 0))
    path = killed(tmp_path / "a.nc", cfg, n=5, policy=CheckpointPolicy(every=3, seconds=0))
    ds, full = open_run(path), open_run(ref)
    assert ds.attrs["epochs_done"] == 3 and list(ds.epoch.values) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(ds.train_loss.values, full.train_loss.sel(epoch=ds.epoch).values)
    assert np.isnan(ds.train_loss.values).any()  # the stop rule's NaN went through the log as null
    assert int(ds.dyn_epoch.values[-1]) == 5
    np.testing.assert_array_equal(ds.dyn_sparsity.values, full.dyn_sparsity.sel(dyn_epoch=ds.dyn_epoch).values)
