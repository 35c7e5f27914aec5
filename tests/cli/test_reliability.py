"""Every refusal is one clear line, a documented exit code, no traceback, and nothing touched.

The cases of an audit of bad inputs, hostile destinations and full disks, grouped by root
cause: destinations that are not regular files, sizes that cannot fit, full disks, missing
range checks, unwritable parents and damaged files (see docs/cli.md, "Errors and exit codes").
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess

import numpy as np
import pytest

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.train import TrainConfig, evaluate_sampled, train
from tests.helpers import one_error_line, snapshot

TINY = ["--dataset", "teacher", "--layers", "784,16,10", "--n-train", "200", "--n-test", "100", "--epochs", "2",
        "--batch-size", "50", "--backend", "numpy", "-q"]
SCAN = ["--depth", "1", "--n-train", "200", "--dataset", "teacher", "--input-dim", "20", "--width", "8",
        "--epochs", "2", "--batch-size", "100", "-R", "1", "--n-test", "100", "--backend", "numpy", "-q"]


@pytest.fixture(scope="module")
def run_file(tmp_path_factory, cli):
    path = tmp_path_factory.mktemp("run") / "run.nc"
    assert cli("train", *TINY, "--out", path).exit_code == 0
    return path


# --- 1. destinations that are not regular files -------------------------------------------------


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.png"  # a name every writer accepts
    os.mkfifo(path)
    return path


def test_no_command_replaces_a_fifo(fifo, run_file, tmp_path, cli):
    scan_dir = tmp_path / "scan"
    assert cli("scan", *SCAN, "--out", scan_dir).exit_code == 0
    for args in (["train", *TINY, "--out", fifo],
                 ["perturb", run_file, "--fractions", "0,1", "--samples", "1", "--out", fifo],
                 ["scan-plot", scan_dir, "--out", fifo]):
        one_error_line(cli(*args), "not a regular file")
        assert fifo.is_fifo()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/null")
def test_dev_null_survives_every_writer(run_file, cli):
    before = os.stat("/dev/null")
    one_error_line(cli("train", *TINY, "--out", "/dev/null"), "not a regular file")
    one_error_line(cli("perturb", run_file, "--fractions", "0,1", "--samples", "1", "--out", "/dev/null"),
                   "not a regular file")
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


# --- 2. sizes that cannot fit --------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["--replicas", "100000"],
    ["--layers", "784,100000,10"],
    ["--epochs", "1000000000000"],
])
def test_what_cannot_fit_in_memory_is_refused_up_front(args, tmp_path, cli):
    res = cli("train", *TINY, *args, "--out", tmp_path / "r.nc")
    one_error_line(res, "not enough memory")
    assert "available" in res.stderr and not (tmp_path / "r.nc").exists()


def test_scan_that_cannot_fit_is_refused(tmp_path, cli):
    one_error_line(cli("scan", *SCAN, "-R", "100000", "--out", tmp_path / "s"), "not enough memory")
    assert not (tmp_path / "s").exists()


def test_perturb_fractions_beyond_reason(run_file, cli):
    one_error_line(cli("perturb", run_file, "--fractions", "0:1:1e-12"), "at most 10,000")


def test_sampled_evaluation_works_in_blocks_of_draws():
    """Many draws never hold more than a block's weights; the first draws do not depend on how many follow."""
    from mfphys.backend import EVAL, replica_rngs
    from mfphys.train import DRAW_BLOCK, load_data

    cfg = TrainConfig(dataset="teacher", layers=(20, 8, 10), n_train=100, n_test=50, epochs=1, batch_size=50,
                      backend="numpy", replicas=2)
    res, data = train(cfg), load_data(cfg)
    few, _ = evaluate_sampled(res.params, data.x_test, data.y_test, n_draws=DRAW_BLOCK,
                              rngs=replica_rngs(0, 2, EVAL), activation="relu")
    many, vote = evaluate_sampled(res.params, data.x_test, data.y_test, n_draws=3 * DRAW_BLOCK + 1,
                                  rngs=replica_rngs(0, 2, EVAL), activation="relu")
    assert many.shape == (2, 3 * DRAW_BLOCK + 1) and vote.shape == (2,)
    np.testing.assert_array_equal(many[:, :DRAW_BLOCK], few)
    assert np.all((0 <= many) & (many <= 1))


def test_eval_samples_estimate_is_bounded():
    from mfphys import budget
    from mfphys.train import DRAW_BLOCK

    small = budget.train_estimate(TrainConfig(eval_samples=DRAW_BLOCK))
    huge = budget.train_estimate(TrainConfig(eval_samples=100000))
    temporary = "largest temporary (step, evaluation or sampled evaluation)"
    assert huge.memory[temporary] == small.memory[temporary]  # blocks of draws: the weights drawn do not grow
    # what does grow, the accuracies of every draw, is in the estimate: memory and disk
    assert huge.memory["sampled accuracies"] - small.memory["sampled accuracies"] == 3 * (100000 - DRAW_BLOCK) * 8
    assert huge.disk - small.disk == (100000 - DRAW_BLOCK) * 8


# --- 3. full disks ------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path, size="1m"):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_is_said_before_training(tmp_path, cli):
    with small_tmpfs(tmp_path / "small") as small:
        res = cli("train", "--dataset", "teacher", "--layers", "784,300,300,10", "-R", "2", "--epochs", "1",
                  "--n-train", "200", "--batch-size", "50", "--backend", "numpy", "-q", "--out", small / "r.nc")
        one_error_line(res, "No space left on device")
        assert "needs about" in res.stderr and os.listdir(small) == []


def test_full_disk_while_writing_is_one_line(tmp_path, monkeypatch, cli):
    """The netCDF library reports a full disk as a RuntimeError ("NetCDF: HDF error")."""
    import xarray as xr

    from mfphys import fileio

    def hdf_error(self, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    monkeypatch.setattr(fileio, "free_bytes", lambda path: 0)
    res = cli("train", *TINY, "--out", tmp_path / "r.nc")
    one_error_line(res, "No space left on device")
    assert os.listdir(tmp_path) == []


# --- 6. range checks, one validation for every entry point ---------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": "0.1"}, "--lr must be a number, got '0.1'"),
    ({"epochs": -1}, "--epochs must be positive, got -1"),
    ({"epochs": 2.5}, "--epochs must be an integer"),
    ({"n_train": 1e3}, "--n-train must be an integer"),
    ({"seed": -1}, "--seed must be >= 0"),
    ({"weight_decay": math.nan}, "--weight-decay must be a finite number >= 0, got nan"),
    ({"init_m_std": math.inf}, "--init-m-std must be a finite number >= 0, got inf"),
    ({"init_xi": -0.1}, "--init-xi must be a finite number >= 0"),
    ({"adam_b1": 1.0}, "--adam-b1 must be a number in [0, 1)"),
    ({"layers": (784,)}, "--layers needs at least two positive widths"),
    ({"activation": "swish"}, "unknown --activation 'swish'"),
    ({"decay_on": "m"}, "--decay-on must be a sequence"),
    ({"replicas": True}, "--replicas must be an integer"),
])
def test_train_config_refuses_bad_values_at_once(kwargs, message):
    with pytest.raises(MfphysError, match=re.escape(message)):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),
    (["--init-m-std", "inf"], "--init-m-std must be a finite number >= 0, got inf"),
    (["--init-xi", "-1"], "--init-xi must be a finite number >= 0"),
])
def test_train_and_scan_give_the_same_message(args, message, tmp_path, cli):
    one_error_line(cli("train", *TINY, *args, "--out", tmp_path / "r.nc"), message)
    one_error_line(cli("scan", *SCAN, *args, "--out", tmp_path / "s"), message)
    assert os.listdir(tmp_path) == []


def test_n_train_takes_an_integer_in_train_and_scan(tmp_path, cli):
    assert cli("train", *TINY, "--n-train", "1e3", "--out", tmp_path / "r.nc").exit_code == 2
    one_error_line(cli("scan", *SCAN, "--n-train", "1e3", "--out", tmp_path / "s"), "n_train takes int values")
    assert os.listdir(tmp_path) == []


def test_perturb_negative_seed(run_file, tmp_path, cli):
    one_error_line(cli("perturb", run_file, "--fractions", "0,1", "--seed", "-1", "--out", tmp_path / "p.nc"),
                   "seed must be >= 0")
    assert os.listdir(tmp_path) == []


# --- 7. unwritable parents -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "scan", "reproduce"])
def test_a_parent_that_is_a_file(command, tmp_path, cli):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    args = {"train": ["train", *TINY, "--out", tmp_path / "file" / "r.nc"],
            "scan": ["scan", *SCAN, "--out", tmp_path / "file" / "s"],
            "reproduce": ["reproduce", "curves", "--quick", "--backend", "numpy", "--out", tmp_path / "file" / "p"]}
    res = cli(*args[command])
    one_error_line(res, "Not a directory")
    assert snapshot(tmp_path) == before


# --- 8. damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize("how, message", [
    ("drop-xi", "not a complete run file"),
    ("bad-config", "'config' attribute is not a configuration"),
    ("bad-activation", "unknown --activation"),
])
@pytest.mark.parametrize("command", ["order", "perturb"])
def test_damaged_run_files_are_one_line(run_file, tmp_path, cli, how, message, command):
    ds = store.open_run(run_file)
    if how == "drop-xi":
        ds = ds.drop_vars("xi_1")
    elif how == "bad-config":
        ds.attrs["config"] = "{oops"
    else:
        cfg = json.loads(ds.attrs["config"])
        cfg["activation"] = "swish"
        ds.attrs["config"] = json.dumps(cfg)
    bad = tmp_path / "bad.nc"
    store.write_atomic(ds, bad)
    before = snapshot(tmp_path)
    args = [command, bad] + (["--fractions", "0,1", "--samples", "1"] if command == "perturb" else [])
    one_error_line(cli(*args), message)
    assert snapshot(tmp_path) == before
