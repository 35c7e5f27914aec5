"""Recurrent runs in live run files (mfphys.runfile over mfphys.rnn.train's steps, docs/model-rnn.md
section 9): checkpoints, resume, extension, the stop rule, dynamics, refusals.

Oracles: numbers recorded from the one-call loop before it was cut into steps; a resumed or
continued run against the uninterrupted run with the same seeds, bit for bit (NumPy); the
dynamics' last sample against the final order parameters computed from the stored matrices;
refusals against the bytes and modification time of the file they leave alone. The subprocess
tests (SIGKILL, Ctrl-C) are in tests/cli/test_rnn.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mfphys import open_run, runfile, store
from mfphys.data import load_dataset
from mfphys.errors import MfphysError
from mfphys.rnn import RnnConfig, preset, train_rnn
from mfphys.rnn.model import MATRICES
from mfphys.runfile import CheckpointPolicy, plan_run, train_run
from mfphys.train import TrainConfig
from tests.helpers import StopAt, assert_same_run, snapshot

#: replicas 2 and 0 meet the stop rule at epochs 3 and 4, replica 1 trains all 6 epochs
MS_STOP = dataclasses.replace(preset("multisensory"), n=15, epochs=6, eval_samples=2, test_repeats=1,
                              dtype="float64", backend="numpy", replicas=3, seed=1, stop_loss=0.03380365090196246,
                              stop_min_epoch=3)
MNIST = RnnConfig(task="mnist", steps=28, n=16, batch_size=32, batches_per_epoch=4, epochs=3, eval_samples=2,
                  dtype="float64", backend="numpy", init=preset("row_mnist").init, replicas=2, seed=3)
EVERY = CheckpointPolicy(every=1, seconds=0)


@pytest.fixture(scope="module")
def mnist_small(mnist_dir):
    return load_dataset("mnist", n_train=512, n_test=200, data_dir=mnist_dir)


def test_train_rnn_gives_the_numbers_of_the_loop_before_it_was_cut_into_steps(mnist_small):
    # recorded with the one-call loop (float64, NumPy); the steps must not change a bit of it
    ms = train_rnn(MS_STOP)
    np.testing.assert_array_equal(ms.stop_epoch, [4, 6, 3])
    np.testing.assert_allclose(ms.history["train_loss"][:, -1], [np.nan, 0.03715462325245326, np.nan], rtol=1e-12)
    np.testing.assert_allclose(ms.params[1].m.sum(), 9.36310266904394, rtol=1e-12)
    mn = train_rnn(MNIST, dataset=mnist_small)
    np.testing.assert_allclose(mn.history["train_loss"][:, -1], [3.553944011280412, 3.0564136745595576], rtol=1e-12)
    np.testing.assert_allclose(mn.params[1].m.sum(), 118.26301643676848, rtol=1e-12)
    np.testing.assert_array_equal(mn.history["test_acc"], [[0.065, 0.075, 0.065], [0.085, 0.07, 0.07]])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted multisensory run with the stop rule, as a run file."""
    path = tmp_path_factory.mktemp("ref") / "ref.nc"
    train_run(plan_run(path, MS_STOP), policy=CheckpointPolicy(0, 0))
    return path


def interrupted(path, n, cfg=MS_STOP, **kw):
    stop = StopAt(n)
    with pytest.raises(runfile.Interrupted):
        train_run(plan_run(path, cfg), policy=EVERY, callback=stop.record, stop=stop, **kw)
    return path


def test_the_run_file_is_the_in_memory_run(reference):
    ds = open_run(reference)
    mem = train_rnn(MS_STOP)
    assert ds.attrs["status"] == "done" and ds.attrs["model"] == "rnn" and ds.attrs["epochs_done"] == 6
    np.testing.assert_array_equal(ds.train_loss.values, mem.history["train_loss"])
    np.testing.assert_array_equal(ds.stop_epoch.values, [4, 6, 3])
    np.testing.assert_array_equal(ds.active.values, [0, 1, 0])
    np.testing.assert_array_equal(ds.p_high_mf.values, mem.evaluation["p_high_mean"])
    for matrix, layer in zip(MATRICES, mem.params):
        np.testing.assert_array_equal(ds[f"m_{matrix}"].values, layer.m)


@pytest.mark.parametrize("stop_after", [2, 3, 5])  # before, between and after the replicas stop
def test_resume_is_bit_identical_to_the_uninterrupted_run(stop_after, reference, tmp_path):
    path = interrupted(tmp_path / "r.nc", stop_after)
    part = open_run(path)
    assert part.attrs["status"] == "interrupted" and part.attrs["epochs_done"] == stop_after
    assert part.sizes["epoch"] == stop_after and "p_high_mf" not in part
    assert store.open_trained_run(path).m_recurrent.shape == (3, 15, 15)  # readable: curves and matrices so far
    plan = plan_run(path, MS_STOP)
    assert plan.action == "resume" and plan.state.epoch == stop_after
    train_run(plan, policy=EVERY)
    done = open_run(path)
    assert_same_run(done, open_run(reference))
    assert [(s["action"], s["from_epoch"]) for s in json.loads(done.attrs["segments"])] == [("new", 0),
                                                                                          ("resume", stop_after)]


def test_a_finished_run_continued_equals_one_longer_run(mnist_small, tmp_path):
    longer = tmp_path / "long.nc"
    train_run(plan_run(longer, dataclasses.replace(MNIST, epochs=5)), dataset=mnist_small)
    path = tmp_path / "r.nc"
    train_run(plan_run(path, MNIST), dataset=mnist_small)
    plan = plan_run(path, dataclasses.replace(MNIST, epochs=5))
    assert plan.action == "extend" and plan.state.epoch == 3
    train_run(plan, dataset=mnist_small)
    back, ref = open_run(path), open_run(longer)
    assert_same_run(back, ref, dynamics=False)  # the continued run also sampled epoch 3 (its old end)
    common = [e for e in back.dyn_epoch.values if e in ref.dyn_epoch.values]
    np.testing.assert_array_equal(back.dyn_entropy.sel(dyn_epoch=common), ref.dyn_entropy.sel(dyn_epoch=common))
    assert 3 in back.dyn_epoch.values and json.loads(back.attrs["segments"])[-1]["action"] == "extend"


def test_a_run_whose_replicas_all_stopped_is_done_before_its_epochs(tmp_path):
    cfg = dataclasses.replace(MS_STOP, stop_loss=0.05, stop_min_epoch=2)
    path = tmp_path / "r.nc"
    res = train_run(plan_run(path, cfg), policy=EVERY)
    ds = open_run(path)
    assert ds.attrs["status"] == "done" and ds.attrs["epochs_done"] == 2 < cfg.epochs
    np.testing.assert_array_equal(res.stop_epoch, [2, 2, 2])
    assert ds.attrs["replicas_active"] == 0 and ds.dyn_epoch.values[-1] == 2  # its last epoch is sampled
    before = snapshot(tmp_path)
    for epochs in (cfg.epochs, cfg.epochs + 4):
        assert plan_run(path, dataclasses.replace(cfg, epochs=epochs)).action == "done"
    with pytest.raises(MfphysError, match="is done: nothing to train"):
        train_run(plan_run(path, cfg))
    assert snapshot(tmp_path) == before


def test_dynamics_per_matrix(reference):
    ds = open_run(reference)
    assert ds.dyn_frac_vip.dims == ("replica", "dyn_epoch", "matrix")
    assert list(ds.matrix.values) == list(MATRICES)
    np.testing.assert_array_equal(ds.dyn_epoch.values, [0, 1, 2, 5, 6])  # train.dynamics_due's schedule
    assert ds.snap_hist_pi.dims == ("replica", "snap_epoch", "matrix", "pi_bin")
    for k in ("frac_vip", "frac_uip", "mean_xi", "entropy", "frac_vip_nodiag", "entropy_nodiag"):
        np.testing.assert_allclose(ds[f"dyn_{k}"].isel(dyn_epoch=-1).values, ds[k].values, rtol=1e-12, err_msg=k)
    # the input and output columns of the no-diagonal variants are the plain ones
    np.testing.assert_array_equal(ds.dyn_frac_vip_nodiag.sel(matrix=["input", "output"]).values,
                                  ds.dyn_frac_vip.sel(matrix=["input", "output"]).values)
    assert not np.array_equal(ds.dyn_mean_pi_nodiag.sel(matrix="recurrent").values,
                              ds.dyn_mean_pi.sel(matrix="recurrent").values)


@pytest.mark.parametrize("change, message", [
    (dict(seed=2), "--seed 1 in the file, 2 here"),
    (dict(mode="bp"), "was made by --mode gbp, not bp"),
    (dict(epochs=4), "has 6 epochs done already"),
])
def test_refusals_leave_the_file_alone(change, message, reference, tmp_path):
    path = tmp_path / "r.nc"
    path.write_bytes(reference.read_bytes())
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match=message):
        plan_run(path, dataclasses.replace(MS_STOP, **change))
    assert snapshot(tmp_path) == before


def test_the_two_families_do_not_continue_each_other(reference, tmp_path):
    path = tmp_path / "r.nc"
    path.write_bytes(reference.read_bytes())
    ffn = TrainConfig(dataset="teacher", layers=(20, 8, 10), n_train=100, n_test=50, epochs=2, batch_size=50,
                      backend="numpy")
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match=r"a recurrent run file \(model rnn\): feed-forward training cannot"):
        plan_run(path, ffn)
    other = tmp_path / "ffn.nc"
    train_run(plan_run(other, ffn))
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match=r"a feed-forward run file \(model ffn\): recurrent training"):
        plan_run(other, MS_STOP)
    assert snapshot(tmp_path) == before


def test_state_reader_is_the_stores(reference):
    ds = store.read_dataset(reference)
    state = store.state_from_dataset(ds, reference)  # what mfphys.scan reads a partial cell with
    assert state.epoch == 6 and state.opt.count == int(ds.attrs["opt_count"]) > 0
    np.testing.assert_array_equal(state.active, [False, True, False])
    assert state.opt.nu.recurrent.m.shape == (3, 15, 15)  # the preset trains with RMSprop: no mu
    bad = ds.copy()
    bad.attrs["rng_state"] = json.dumps({"order": [], "noise": []})
    with pytest.raises(MfphysError, match="rng_state does not hold"):
        store.state_from_dataset(bad, reference)


@pytest.mark.gpu
def test_cupy_resume_with_host_noise_continues_the_run(tmp_path):
    """On CuPy with ``host_noise`` the noise comes from the stored host streams: a resumed run
    is the uninterrupted one up to the GPU's rounding (docs/model-rnn.md section 9)."""
    cfg = dataclasses.replace(MS_STOP, backend="cupy", host_noise=True)
    whole = tmp_path / "whole.nc"
    train_run(plan_run(whole, cfg), policy=CheckpointPolicy(0, 0))
    path = interrupted(tmp_path / "r.nc", 2, cfg)
    train_run(plan_run(path, cfg), policy=EVERY)
    a, b = open_run(path), open_run(whole)
    np.testing.assert_array_equal(a.stop_epoch.values, b.stop_epoch.values)
    for name in ("train_loss", "m_recurrent", "pi_recurrent", "xi_recurrent", "p_high_mf"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9, atol=1e-12, err_msg=name)
