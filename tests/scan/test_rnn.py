"""Recurrent scans (``model = "rnn"``): the grid steps x n_train of MNIST presets, end to end.

A tiny scan (n = 20 hidden units, T = 7 and 14 steps, 256 and 512 images, one epoch, two
replicas) is trained once per session; the tests read it, copy it to damage it, or train one
more cell next to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from mfphys import budget, scan, store
from mfphys.errors import MfphysError
from mfphys.rnn import preset, train_rnn
from mfphys.rnn.config import mnist_batches_per_epoch, with_n_train
from mfphys.rnn.store import rnn_run_to_dataset
from mfphys.rnn.tasks import PIXEL_MNIST, ROW_MNIST, mnist_protocol, sequential_mnist

GRID = {"steps": [7, 14], "n_train": [256, 512]}
FIXED = {"n": 20, "epochs": 1, "replicas": 2, "n_test": 200, "eval_samples": 2, "backend": "numpy"}


def rnn_spec(grid=None, **fixed):
    return scan.ScanSpec.build(grid or GRID, {**FIXED, **fixed}, model="rnn")


@pytest.fixture(scope="module")
def rnn_scan(tmp_path_factory, mnist_dir):
    folder = tmp_path_factory.mktemp("rnnscan") / "tiny"
    report = scan.run_scan(rnn_spec(), folder, data_dir=mnist_dir)
    return folder, report


# --- the specification ------------------------------------------------------------------------


def test_spec_grid_is_steps_by_n_train_and_defaults_are_the_presets():
    spec = rnn_spec({"n_train": [512, 256], "steps": [14, 7], "seed": [0, 1]})
    assert spec.dims == ("steps", "n_train", "seed") and spec.shape == (2, 2, 2)
    fixed = spec.fixed_dict
    assert fixed["preset"] == "row_mnist" and fixed["batch_size"] == ROW_MNIST.batch_size
    assert fixed["lr"] == ROW_MNIST.optimizer.lr_m[0] and fixed["mode"] == "gbp"
    assert spec.default_name().startswith("mnist-rnn-scan-")
    # fixing an option at its default value is the same scan as leaving it out
    assert rnn_spec(preset="row_mnist", batch_size=128).scan_hash() == rnn_spec().scan_hash()
    # the model is part of the scan's identity
    assert rnn_spec().scan_hash() != scan.ScanSpec(rnn_spec().grid, rnn_spec().fixed).scan_hash()


def test_cells_are_the_preset_read_in_steps_pieces():
    spec = rnn_spec({"steps": [7, 28], "n_train": [256, 60000]}, n=100, epochs=3, lr=0.002, mode="bp")
    cells = {c.key: c for c in spec.cells()}
    assert all(c.model == "rnn" for c in cells.values())
    c = cells["steps=28,n_train=60000"].config
    # T = 28 with the preset's n is row_mnist itself, but for the options set
    want = dataclasses.replace(ROW_MNIST, epochs=3, mode="bp", replicas=2, n_test=200, eval_samples=2,
                               backend="numpy", n_train=60000,
                               optimizer=dataclasses.replace(ROW_MNIST.optimizer, lr_m=(0.002,) * 3,
                                                             lr_xi=(0.002,) * 3, lr_pi=(0.002,) * 3))
    assert c == want
    c7 = cells["steps=7,n_train=256"].config
    assert c7.steps == 7 and c7.io == (112, 10) and c7.init == sequential_mnist(7).init
    assert c7.batches_per_epoch == 2  # min(200, 256 // 128)
    assert cells["steps=7,n_train=256"].config_hash == scan.config_hash(c7)


@pytest.mark.parametrize("n_train, per", [(128, 1), (1000, 7), (25600, 200), (60000, 200)])
def test_n_train_rule(n_train, per):
    assert mnist_batches_per_epoch(n_train, 128, 200) == per
    assert with_n_train(ROW_MNIST, n_train).batches_per_epoch == per
    assert mnist_batches_per_epoch(n_train, 128, None) == n_train // 128
    with pytest.raises(MfphysError, match="less than one mini-batch"):
        mnist_batches_per_epoch(100, 128, 200)


@pytest.mark.parametrize("steps", [7, 14, 28, 56, 112, 784])
def test_mnist_protocol(steps):
    assert mnist_protocol(ROW_MNIST, steps) == sequential_mnist(steps)
    assert mnist_protocol(ROW_MNIST, 28) is ROW_MNIST and mnist_protocol(PIXEL_MNIST, 784) is PIXEL_MNIST
    # the rule sqrt(N_in / N) for the input and output m, with any number of units
    cfg = mnist_protocol(PIXEL_MNIST, steps, n=50)
    assert cfg.n == 50 and cfg.init[0].m_std == pytest.approx(np.sqrt(784 / steps / 50))
    assert cfg.init[1] == PIXEL_MNIST.init[1] and cfg.input_stochastic is False


@pytest.mark.parametrize("grid, fixed, message", [
    ({"steps": [9], "n_train": [256]}, {}, "cell steps=9,n_train=256: steps must divide the 784 pixels"),
    ({"steps": [7], "n_train": [100, 256]}, {}, "cell steps=7,n_train=100: n_train 100 is less than one mini-batch"),
    ({"steps": [7], "n_train": [256]}, {"preset": "multisensory"}, "generates its trials (no data size)"),
    ({"steps": [7], "n_train": [256]}, {"preset": "nope"}, "unknown preset 'nope'"),
    ({"steps": [7], "n_train": [256], "replicas": [1, 2]}, {}, "replicas cannot be scanned"),
    ({"steps": [7], "n_train": [256], "preset": ["row_mnist", "pixel_mnist"]}, {}, "preset cannot be scanned"),
    ({"steps": [7], "n_train": [256], "depth": [1]}, {}, "unknown parameter 'depth' of --model rnn"),
    ({"n_train": [256]}, {}, "give the steps values to scan"),
    ({"steps": [7], "n_train": [256]}, {"mode": "sgd"}, "unknown mode 'sgd'"),
])
def test_refusals(grid, fixed, message):
    with pytest.raises(MfphysError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scan.ScanSpec.build(grid, fixed, model="rnn")


def test_toml(tmp_path):
    path = tmp_path / "scan.toml"
    path.write_text('model = "rnn"\nname = "t"\n[grid]\nsteps = [7, 14]\nn_train = [256, 512]\n'
                    '[fixed]\nn = 20\nepochs = 1\nreplicas = 2\nn-test = 200\neval_samples = 2\nbackend = "numpy"\n')
    spec = scan.spec_from_options({}, config=path)
    assert spec.model == "rnn" and spec.name == "t"
    assert spec.scan_hash() == rnn_spec().scan_hash()
    # the command line wins over the file, option by option
    assert scan.spec_from_options({"epochs": "2"}, config=path).fixed_dict["epochs"] == 2
    assert scan.spec_from_options({"steps": "28"}, config=path, model="rnn").grid_dict["steps"] == [28]
    with pytest.raises(MfphysError, match="disagrees with model = 'rnn'"):
        scan.spec_from_options({}, config=path, model="ffn")
    path.write_text('model = "lstm"\n[grid]\nsteps = [7]\n')
    with pytest.raises(MfphysError, match="model must be one of ffn, rnn"):
        scan.spec_from_options({}, config=path)


# --- running, resuming, reading ---------------------------------------------------------------


def test_scan_writes_recurrent_cells(rnn_scan):
    folder, report = rnn_scan
    assert (report.total, report.done, report.failed, report.trained) == (4, 4, 0, 4)
    meta = json.loads((folder / "scan.json").read_text())
    assert meta["model"] == "rnn" and meta["dims"] == ["steps", "n_train"] and "width" not in meta
    spec = rnn_spec()
    for cell in spec.cells():
        attrs = store.read_attrs(folder / "cells" / f"{cell.key}.nc")
        assert attrs["model"] == "rnn" and attrs["config_hash"] == cell.config_hash
        assert json.loads(attrs["scan_cell"]) == dict(cell.coords) and attrs["preset"] == "row_mnist"
    assert not list((folder / "cells").glob("*.running"))


def test_open_scan_of_a_recurrent_scan(rnn_scan):
    ds = scan.open_scan(rnn_scan[0])
    assert ds.attrs["model"] == "rnn"
    assert list(ds.status.dims) == ["steps", "n_train"] and (ds.status == "done").all()
    assert ds.frac_uip.dims == ("steps", "n_train", "replica", "matrix")
    assert list(ds.matrix.values) == ["input", "recurrent", "output"] and "layer" not in ds.dims
    for name in ("frac_vip", "frac_uip", "entropy", "frac_vip_nodiag", "test_acc_mf", "test_acc_noisy",
                 "test_acc_quenched", "test_acc_annealed", "test_acc_quenched_vote", "train_loss", "test_acc"):
        assert name in ds and np.isfinite(ds[name].values).all(), name
    assert ds.train_loss.dims == ("steps", "n_train", "replica", "epoch")
    np.testing.assert_allclose(ds.test_error, 1 - ds.test_acc.isel(epoch=-1))
    # input 784/T x 20, recurrent 20 x 20, output 20 x 10
    np.testing.assert_array_equal(ds.n_connections.sel(steps=7, n_train=256), [112 * 20, 400, 200])
    assert ds.train_seconds.dims == ("steps", "n_train") and np.isfinite(ds.train_seconds).all()  # recorded


def test_cell_numbers_equal_a_direct_run(rnn_scan, mnist_dir):
    folder, _ = rnn_scan
    cell = next(c for c in rnn_spec().cells() if c.key == "steps=14,n_train=512")
    direct = rnn_run_to_dataset(train_rnn(cell.config, data_dir=mnist_dir))
    got = store.read_dataset(folder / "cells" / f"{cell.key}.nc")
    for name in ("pi_recurrent", "m_input", "xi_output", "frac_vip", "entropy", "test_acc_mf", "test_acc_quenched",
                 "train_loss"):
        np.testing.assert_array_equal(got[name].values, direct[name].values, err_msg=name)
    assert got.attrs["config"] == direct.attrs["config"]


def test_resume_keeps_finished_cells(rnn_scan, tmp_path, mnist_dir):
    folder = tmp_path / "copy"
    shutil.copytree(rnn_scan[0], folder)
    cells = folder / "cells"
    gone = cells / "steps=7,n_train=512.nc"
    gone.unlink()
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cells.glob("*.nc")}
    report = scan.run_scan(rnn_spec(), folder, data_dir=mnist_dir)
    assert (report.trained, report.skipped, report.done) == (1, 3, 4)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cells.glob("*.nc") if p != gone} == before
    again = store.read_dataset(gone)
    ref = store.read_dataset(rnn_scan[0] / "cells" / gone.name)
    np.testing.assert_array_equal(again.m_recurrent.values, ref.m_recurrent.values)
    # another configuration is refused before anything is written
    with pytest.raises(MfphysError, match="different scan configuration"):
        scan.run_scan(rnn_spec(epochs=2), folder, data_dir=mnist_dir)


def test_failed_cell_is_recorded_and_retried(rnn_scan, tmp_path, mnist_dir, monkeypatch):
    from mfphys.errors import DivergenceError
    from mfphys.scan import runner

    folder = tmp_path / "copy"
    shutil.copytree(rnn_scan[0], folder)
    (folder / "cells" / "steps=14,n_train=256.nc").unlink()
    real = runner._train_checkpointed

    def failing(cell, *args):
        raise DivergenceError("training diverged at epoch 1 (replica 0, loss is not finite)")

    monkeypatch.setattr(runner, "_train_checkpointed", failing)
    report = scan.run_scan(rnn_spec(), folder, data_dir=mnist_dir)
    assert report.failed == 1 and report.failed_cells[0][0] == "steps=14,n_train=256"
    record = json.loads((folder / "cells" / "steps=14,n_train=256.failed.json").read_text())
    assert "diverged" in record["error"] and record["scan_cell"] == {"steps": 14, "n_train": 256}
    ds = scan.open_scan(folder)
    assert ds.status.sel(steps=14, n_train=256) == "failed" and "diverged" in str(ds.error.sel(steps=14, n_train=256))
    monkeypatch.setattr(runner, "_train_checkpointed", real)
    report = scan.run_scan(rnn_spec(), folder, data_dir=mnist_dir)
    assert (report.failed, report.trained, report.done) == (0, 1, 4)
    assert not (folder / "cells" / "steps=14,n_train=256.failed.json").exists()


def test_dask_worker_gives_the_same_cell(rnn_scan, tmp_path, mnist_dir):
    pytest.importorskip("dask.distributed")
    spec = rnn_spec({"steps": [14], "n_train": [512]})
    report = scan.run_scan(spec, tmp_path / "dask", workers=1, data_dir=mnist_dir)
    assert report.done == 1 and report.failed == 0
    got = store.read_dataset(tmp_path / "dask" / "cells" / "steps=14,n_train=512.nc")
    ref = store.read_dataset(rnn_scan[0] / "cells" / "steps=14,n_train=512.nc")
    for name in ("pi_recurrent", "m_recurrent", "test_acc_mf", "train_loss"):
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)


def test_claimed_cell_is_left_to_its_owner(rnn_scan, tmp_path, mnist_dir):
    """A cell another live scan process has claimed is skipped, not trained twice."""
    from mfphys.scan.folder import _owner, _Paths, claim_cell

    folder = tmp_path / "copy"
    shutil.copytree(rnn_scan[0], folder)
    (folder / "cells" / "steps=7,n_train=256.nc").unlink()
    other = {**_owner(), "owner_pid": os.getppid()}  # a live process that is not this one
    assert claim_cell(_Paths(folder), "steps=7,n_train=256", other)
    with pytest.raises(MfphysError, match="being scanned right now"):
        scan.run_scan(rnn_spec(), folder, data_dir=mnist_dir)


# --- budget -------------------------------------------------------------------------------------


def test_dry_run_plan_and_estimates(rnn_scan, tmp_path):
    spec = rnn_spec()
    plan = scan.plan_scan(spec, tmp_path / "new", calibrate=True)
    assert plan.total == 4 and len(plan.todo) == 4 and np.isfinite(plan.seconds) and plan.memory > 0
    assert not (tmp_path / "new").exists()
    done = scan.plan_scan(spec, rnn_scan[0])
    assert done.done == 4 and not done.todo and done.disk == 0
    # the file estimate is right within a factor of 2 of the cells written
    for cell in spec.cells():
        size = (rnn_scan[0] / "cells" / f"{cell.key}.nc").stat().st_size
        est = budget.rnn_estimate(cell.config, state=False).disk  # a cell file holds no optimiser state
        assert size / 2 < est < 2 * size, (cell.key, size, est)
    # more steps and more units need more memory
    small = budget.rnn_estimate(spec.cells()[0].config).peak
    big = budget.rnn_estimate(dataclasses.replace(mnist_protocol(preset("row_mnist"), 112), replicas=2)).peak
    assert big > small


def test_a_scan_killed_in_the_middle_of_a_recurrent_cell_resumes_it(tmp_path, mnist_dir):
    """A recurrent cell checkpoints as a feed-forward one: SIGKILL mid-cell, rerun, same numbers."""
    import signal

    from mfphys.runfile import CheckpointPolicy
    from tests.helpers import assert_same_run, start_python, wait_for_checkpoint

    grid, fixed = {"steps": [28], "n_train": [256]}, dict(epochs=40, replicas=1)
    spec = rnn_spec(grid, **fixed)
    (cell,) = spec.cells()
    every = CheckpointPolicy(every=1, seconds=0)
    target = int(np.random.default_rng().integers(2, 20))
    proc = start_python(f"from mfphys import scan\nfrom mfphys.runfile import CheckpointPolicy\n"
                        f"from tests.scan.test_rnn import rnn_spec\n"
                        f"scan.run_scan(rnn_spec({grid!r}, **{fixed!r}), {str(tmp_path / 's')!r}, "
                        f"data_dir={str(mnist_dir)!r}, checkpoint=CheckpointPolicy(every=1, seconds=0))\n")
    partial = tmp_path / "s" / "cells" / f"{cell.key}.partial.nc"
    wait_for_checkpoint(partial, target, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    attrs = store.read_attrs(partial)
    n = int(attrs["epochs_done"])
    assert target <= n < 40 and attrs["config_hash"] == cell.config_hash and attrs["model"] == "rnn"
    assert scan.scan_status(tmp_path / "s")["pending"] == 1
    first = []
    report = scan.run_scan(spec, tmp_path / "s", data_dir=mnist_dir, checkpoint=every,
                           callback=lambda ev: ev.kind == "epoch" and first.append(ev.record.epoch))
    assert report.done == 1 and first[0] == n + 1  # resumed after its checkpoint, not restarted
    assert sorted(p.name for p in (tmp_path / "s" / "cells").iterdir()) == [f"{cell.key}.nc"]
    scan.run_scan(spec, tmp_path / "ref", data_dir=mnist_dir, checkpoint=None)  # in memory, uninterrupted
    resumed = store.open_run(tmp_path / "s" / "cells" / f"{cell.key}.nc")
    ref = store.open_run(tmp_path / "ref" / "cells" / f"{cell.key}.nc")
    assert_same_run(resumed, ref)
    assert resumed.attrs["status"] == "done" and "dyn_frac_vip" in resumed
    assert not any(k.startswith("opt_") for k in resumed.data_vars)  # a cell file holds no state
