"""Training into a live run file (mfphys.runfile): checkpoints, resume, refusals.

Oracles: a resumed or continued run against the uninterrupted run with the same seeds,
array by array and bit for bit (NumPy backend); refusals against the bytes and modification
time of the file they leave alone. The subprocess tests (SIGKILL, Ctrl-C) are in
tests/cli/test_train.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import numpy as np
import pytest

from mfphys import open_run, registry, runfile, store
from mfphys.errors import DivergenceError, MfphysError
from mfphys.fileio import boot_id
from mfphys.runfile import CheckpointPolicy, Plan, plan_run, train_run
from mfphys.train import TrainConfig, train
from tests.helpers import StopAt, assert_same_run, snapshot

CFG = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=200, n_test=100, epochs=7, batch_size=50,
                  replicas=2, backend="numpy", eval_samples=3)
EVERY = CheckpointPolicy(every=1, seconds=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 7-epoch run, as a run file."""
    path = tmp_path_factory.mktemp("ref") / "ref.nc"
    train_run(plan_run(path, CFG), policy=CheckpointPolicy(0, 0))
    return open_run(path)


def seg_start(ds):
    """When the run's first segment started: the file's ``created`` date."""
    return json.loads(ds.attrs["segments"])[0]["started"]


def interrupted(path, n, cfg=CFG):
    stop = StopAt(n)
    with pytest.raises(runfile.Interrupted) as info:
        train_run(plan_run(path, cfg), policy=EVERY, callback=stop.record, stop=stop)
    assert (info.value.epoch, info.value.epochs) == (n, cfg.epochs)
    return path


def test_new_run_file_is_done_and_resumable(reference):
    ds = reference
    assert ds.attrs["status"] == "done" and ds.attrs["epochs_done"] == 7 and ds.sizes["epoch"] == 7
    assert ds.attrs["adam_count"] == 7 * 4  # 200 patterns in batches of 50
    rng = json.loads(ds.attrs["rng_state"])
    assert len(rng["order"]) == len(rng["noise"]) == 2 and rng["order"][0]["bit_generator"] == "PCG64"
    assert json.loads(ds.attrs["writer"])["pid"] == os.getpid()
    assert isinstance(ds.attrs["created"], str) and ds.attrs["created"] <= ds.attrs["updated"]
    assert [s["action"] for s in json.loads(ds.attrs["segments"])] == ["new"]
    for k in ("pi", "m", "xi"):
        assert ds[f"adam_mu_{k}_1"].shape == ds[f"adam_nu_{k}_1"].shape == ds.pi_1.shape
    # the same numbers as the plain in-memory training
    result = train(CFG)
    for a, b in zip(store.params_from_dataset(ds), result.params):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(ds.test_acc_sampled_draw.values, result.sampled_acc)


def test_interrupted_file_is_a_readable_partial_run(tmp_path):
    ds = open_run(interrupted(tmp_path / "r.nc", 3))
    assert ds.attrs["status"] == "interrupted" and ds.attrs["epochs_done"] == 3
    assert list(ds.epoch.values) == [1, 2, 3] and ds.train_loss.shape == (2, 3)
    assert "test_acc_sampled" not in ds and "test_acc_vote" not in ds  # no sampled evaluation yet
    assert ds.frac_vip.dims == ("replica", "layer") and "pi_1" in ds
    assert store.run_status(ds.attrs) == "interrupted" and runfile.writer_alive(ds.attrs) is False


@pytest.mark.parametrize("stop_after", [1, 4, 6])
def test_resume_is_bit_identical_to_the_uninterrupted_run(stop_after, reference, tmp_path):
    path = interrupted(tmp_path / "r.nc", stop_after)
    plan = plan_run(path, CFG)
    assert plan.action == "resume" and plan.state.epoch == stop_after
    train_run(plan, policy=EVERY)
    back = open_run(path)
    assert_same_run(back, reference)
    assert isinstance(back.attrs["created"], str) and back.attrs["created"] == seg_start(back)
    seg = json.loads(back.attrs["segments"])
    assert [(s["action"], s["from_epoch"]) for s in seg] == [("new", 0), ("resume", stop_after)]
    assert "resumed at epoch" in back.attrs["history"].splitlines()[-1]


def test_a_finished_run_continued_equals_one_longer_run(reference, tmp_path):
    path = tmp_path / "short.nc"
    train_run(plan_run(path, dataclasses.replace(CFG, epochs=4)), policy=CheckpointPolicy(0, 0))
    plan = plan_run(path, CFG)
    assert plan.action == "extend" and plan.state.epoch == 4
    train_run(plan, policy=CheckpointPolicy(0, 0))
    back = open_run(path)
    assert_same_run(back, reference, dynamics=False)  # the continued run also sampled epoch 4 (its old end)
    assert 4 in back.dyn_epoch.values and json.loads(back.attrs["segments"])[-1]["action"] == "extend"
    assert store.config_from_dataset(back) == CFG


def test_done_run_plans_nothing(reference, tmp_path):
    assert plan_run(_copy(reference, tmp_path), CFG).action == "done"


def _copy(ds, tmp_path):
    path = tmp_path / "copy.nc"
    store.write_atomic(ds, path)
    return path


@pytest.mark.parametrize("change, message", [
    (dict(lr=0.05), "--lr 0.1 in the file, 0.05 here"),
    (dict(mode="bp"), "was made by --mode gbp, not bp"),
    (dict(seed=3, batch_size=25), "--batch-size 50 in the file, 25 here; --seed 0 in the file, 3 here"),
    (dict(epochs=5), "has 7 epochs done already: give --epochs 7 or more"),
])
def test_refusals_leave_the_file_alone(change, message, reference, tmp_path):
    path = _copy(reference, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match="^" + ".*" + message.replace("(", r"\(")):
        plan_run(path, dataclasses.replace(CFG, **change))
    assert snapshot(tmp_path) == before


def test_foreign_corrupt_and_live_files_are_refused(reference, tmp_path):
    text = tmp_path / "notes.nc"
    text.write_text("not netCDF")
    with pytest.raises(MfphysError, match="not a readable netCDF file.*nothing was written"):
        plan_run(text, CFG)
    half = tmp_path / "half.nc"
    half.write_bytes(_copy(reference, tmp_path).read_bytes()[:5000])
    with pytest.raises(MfphysError, match="half.nc"):
        plan_run(half, CFG, resume=True)
    scan_like = tmp_path / "pert.nc"
    store.write_atomic(reference[["test_acc"]].assign_attrs(mfphys_kind="perturbation"), scan_like)
    with pytest.raises(MfphysError, match="an mfphys perturbation file, not a run file"):
        plan_run(scan_like, CFG)
    live = tmp_path / "live.nc"
    writer = {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot_id()}
    store.write_atomic(reference.assign_attrs(status="running", writer=json.dumps(writer)), live)
    with pytest.raises(MfphysError, match=f"being written right now by process {os.getpid()}"):
        plan_run(live, CFG)
    elsewhere = tmp_path / "elsewhere.nc"
    store.write_atomic(reference.assign_attrs(status="running", writer=json.dumps({**writer, "host": "x"})),
                       elsewhere)
    with pytest.raises(MfphysError, match="another machine.*--resume"):
        plan_run(elsewhere, CFG)
    assert plan_run(elsewhere, CFG, resume=True).action == "resume"  # the user says it is gone
    with pytest.raises(MfphysError, match="no such file"):
        plan_run(tmp_path / "missing.nc", CFG, resume=True)


def test_old_run_files_open_as_done_and_cannot_be_continued(reference, tmp_path):
    """A run file written before checkpoints existed: no status, no state, no dynamics."""
    old = reference.drop_vars([k for k in reference.variables if k.startswith(("adam_", "dyn_", "snap_"))])
    old = old.drop_dims([d for d in ("dyn_epoch", "snap_epoch", "edge") if d in old.dims])
    for k in ("status", "epochs_done", "adam_count", "rng_state", "writer", "segments", "updated", "dynamics_every"):
        old.attrs.pop(k)
    path = tmp_path / "old.nc"
    store.write_atomic(old, path)
    ds = open_run(path)
    assert store.run_status(ds.attrs) == "done" and "dyn_epoch" not in ds.dims
    assert store.dynamics_from_dataset(ds).epochs == ()
    assert plan_run(path, CFG).action == "done"
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match="holds no checkpoint"):
        plan_run(path, dataclasses.replace(CFG, epochs=9))
    assert snapshot(tmp_path) == before


def test_failed_new_run_leaves_no_file_and_a_failed_resume_keeps_its_checkpoint(tmp_path, monkeypatch):
    family = registry.get("ffn")  # the family object the run-file layer asks for a TrainConfig
    real = family.train_epoch

    def diverge_at(n):
        def step(setup, state):
            if state.epoch + 1 == n:
                raise DivergenceError(f"training diverged at epoch {n}")
            return real(setup, state)
        return step

    path = tmp_path / "r.nc"
    monkeypatch.setattr(family, "train_epoch", diverge_at(5))
    with pytest.raises(DivergenceError):
        train_run(plan_run(path, CFG), policy=EVERY)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    interrupted(path, 2)
    monkeypatch.setattr(family, "train_epoch", diverge_at(5))
    with pytest.raises(DivergenceError):
        train_run(plan_run(path, CFG), policy=EVERY)
    ds = open_run(path)
    assert ds.attrs["status"] == "interrupted" and ds.attrs["epochs_done"] == 4


def test_checkpoint_policy():
    # a write that took 1 s is followed by the next one no sooner than 50 s later (2 % of the time)
    assert not CheckpointPolicy(every=0, seconds=5).due(9, 49.0, 1.0) and CheckpointPolicy(0, 5).due(9, 50.0, 1.0)
    assert CheckpointPolicy(every=2, seconds=5).due(2, 0.1, 1.0)  # by count, whatever the cost
    assert CheckpointPolicy(every=3, seconds=0).due(3, 0.0) and not CheckpointPolicy(every=3, seconds=0).due(2, 99)
    assert CheckpointPolicy(every=0, seconds=5).due(1, 5.0) and not CheckpointPolicy(every=0, seconds=5).due(9, 4.9)
    assert not CheckpointPolicy(0, 0).due(100, 1e9)
    for bad in (CheckpointPolicy(every=-1), CheckpointPolicy(seconds=float("nan")), CheckpointPolicy(seconds=-1)):
        with pytest.raises(MfphysError, match="--checkpoint-"):
            bad.validate()


def test_plan_done_cannot_be_trained(reference, tmp_path):
    with pytest.raises(MfphysError, match="is done"):
        train_run(Plan("done", tmp_path / "x.nc", CFG))


# --- the trained state is on disk before the final evaluation (issue: finished training lost) ----


def test_ctrl_c_in_the_final_evaluation_keeps_every_epoch(reference, tmp_path, monkeypatch):
    """A KeyboardInterrupt in the sampled evaluation leaves the file at its last epoch (status
    interrupted); resuming it only evaluates and ends with the numbers of the uninterrupted run."""
    from mfphys.models.ffn import train as ffn_train

    path = tmp_path / "r.nc"
    real = ffn_train.evaluate_sampled

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ffn_train, "evaluate_sampled", ctrl_c)
    with pytest.raises(runfile.Interrupted) as info:
        train_run(plan_run(path, CFG), policy=CheckpointPolicy(0, 0))
    assert info.value.evaluating and info.value.epoch == CFG.epochs
    attrs = store.read_attrs(path)
    assert attrs["status"] == "interrupted" and int(attrs["epochs_done"]) == CFG.epochs
    monkeypatch.setattr(ffn_train, "evaluate_sampled", real)
    plan = plan_run(path, CFG, resume=True)
    assert plan.action == "resume" and plan.state.epoch == CFG.epochs
    train_run(plan, policy=CheckpointPolicy(0, 0))
    assert_same_run(open_run(path), reference)


def test_the_trained_state_is_written_before_the_evaluation_starts(tmp_path, monkeypatch):
    from mfphys.models.ffn import train as ffn_train

    path, seen = tmp_path / "r.nc", []
    real = ffn_train.evaluate_sampled

    def look(*args, **kwargs):
        seen.append(int(store.read_attrs(path)["epochs_done"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(ffn_train, "evaluate_sampled", look)
    train_run(plan_run(path, CFG), policy=CheckpointPolicy(0, 0))
    assert seen == [CFG.epochs]


# --- one writer per run file (an atomic claim) ----------------------------------------------------


def test_a_claimed_run_file_is_refused_to_a_second_writer(tmp_path):
    """Another process holds the claim: planning and training are refused in one line, nothing written."""
    import subprocess
    import sys

    path = tmp_path / "r.nc"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom mfphys.fileio import claim_file\n"
                               "with claim_file(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)",
                               str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MfphysError, match=f"being written right now by process {holder.pid}"):
            train_run(plan_run(path, CFG), policy=CheckpointPolicy(0, 0))
        assert not path.exists()
    finally:
        holder.kill()
        holder.wait()
    train_run(plan_run(path, CFG), policy=CheckpointPolicy(0, 0))  # the claim died with its process
    assert store.read_attrs(path)["status"] == "done"
    assert not runfile.Path(tmp_path / ".r.nc.lock").exists()


def test_a_plan_made_stale_by_another_writer_is_refused(reference, tmp_path):
    """Check-then-act: the file appeared (or changed) between the plan and the training."""
    path = tmp_path / "r.nc"
    plan = plan_run(path, CFG)
    store.write_atomic(reference, path)
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match="changed since this command looked at it"):
        train_run(plan, policy=CheckpointPolicy(0, 0))
    assert snapshot(tmp_path) == before


def test_claims_are_reentrant_and_released(tmp_path):
    from mfphys.fileio import claim_file, claim_name

    path = tmp_path / "r.nc"
    with claim_file(path):
        assert claim_name(path).exists()
        with claim_file(path):
            pass
        assert claim_name(path).exists()
    assert not claim_name(path).exists()
    with claim_file(tmp_path / "missing" / "r.nc"):  # nowhere to claim: nothing to write there either
        pass
