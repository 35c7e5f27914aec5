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


# --- third round (docs/guarantees.md) -------------------------------------------------------------
# 3. inputs are checked before they are opened: what is not a regular file is refused, never read


@pytest.mark.parametrize("args", [
    ["order", "{fifo}"],
    ["perturb", "{fifo}", "--fractions", "0,1", "--samples", "1"],
    ["train", *TINY, "--resume", "{fifo}"],
    ["scan", "--config", "{fifo}", "--out", "{tmp}/s"],
    ["scan", "--config", "/dev/zero", "--out", "{tmp}/s"],
])
def test_readers_refuse_what_is_not_a_regular_file(args, tmp_path, cli):
    fifo = tmp_path / "run.nc"
    os.mkfifo(fifo)
    res = cli(*(a.format(fifo=fifo, tmp=tmp_path) for a in args))  # a FIFO opened for reading would block
    one_error_line(res, "not a regular file")
    assert sorted(os.listdir(tmp_path)) == ["run.nc"]


def test_open_run_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "run.nc"
    os.mkfifo(fifo)
    with pytest.raises(MfphysError, match="not a regular file"):
        store.open_run(fifo)


# 4. scan descriptions and cells are checked, never trusted


@pytest.fixture(scope="module")
def scan_dirs(tmp_path_factory, cli):
    base = tmp_path_factory.mktemp("scans")
    assert cli("scan", *SCAN, "--out", base / "a").exit_code == 0
    assert cli("scan", *SCAN, "--lr", "0.05", "--out", base / "b").exit_code == 0
    return base


@pytest.mark.parametrize("damage, message", [
    (lambda m: m["grid"].__setitem__("depth", ["x"]), "depth takes int values, got 'x'"),
    (lambda m: m["grid"].__setitem__("depth", ["1"]), "depth takes int values, got '1'"),
    (lambda m: m.__setitem__("model", "rnn"), "depth is not an option of a rnn scan"),
    (lambda m: m.__setitem__("model", "lstm"), "unknown model 'lstm'"),
    (lambda m: m.__setitem__("name", "a" * 3_000_000), "(3,000,002 characters)"),
    (lambda m: m["fixed"].__setitem__("epochs", "2"), "epochs takes int values"),
])
def test_a_damaged_scan_json_is_one_line(damage, message, scan_dirs, tmp_path, cli):
    import shutil

    from mfphys.scan import open_scan

    folder = tmp_path / "s"
    shutil.copytree(scan_dirs / "a", folder)
    meta = json.loads((folder / "scan.json").read_text())
    damage(meta)
    (folder / "scan.json").write_text(json.dumps(meta))
    with pytest.raises(MfphysError, match=re.escape(message)):
        open_scan(folder)
    res = cli("scan-plot", folder, "--out", tmp_path / "p.png")
    one_error_line(res, "is damaged")
    assert len(res.stderr) < 1000 and not (tmp_path / "p.png").exists()


def test_a_scan_json_that_is_a_fifo_is_one_line(scan_dirs, tmp_path, cli):
    import shutil

    folder = tmp_path / "s"
    shutil.copytree(scan_dirs / "a", folder)
    (folder / "scan.json").unlink()
    os.mkfifo(folder / "scan.json")
    one_error_line(cli("scan-plot", folder), "not a regular file")


def test_a_cell_of_another_configuration_is_reported_never_combined(scan_dirs, tmp_path):
    import shutil

    from mfphys.scan import open_scan

    folder = tmp_path / "s"
    shutil.copytree(scan_dirs / "a", folder)
    for cell in (scan_dirs / "b" / "cells").glob("*.nc"):  # same keys, another lr
        shutil.copy(cell, folder / "cells" / cell.name)
    ds = open_scan(folder)
    assert set(ds.status.values.ravel()) == {"failed"}
    assert "made by another configuration" in str(ds.error.values.ravel()[0])
    assert np.isnan(ds.test_error.values).all()


# 5 and 11. one validation path, with bounds, for every count and value


@pytest.mark.parametrize("args, message", [
    (["--dynamics-every", "100000000000000000000"], "--dynamics-every must be at most"),
    (["--blas-threads", "100000000000000000000"], "--blas-threads must be at most"),
    (["--eval-samples", "100000000000000"], "--eval-samples must be at most"),
    (["--seed", "100000000000000000000"], "--seed must be at most"),
    (["--family", "rnn", "--preset", ""], "--preset '' is empty"),
])
def test_counts_beyond_their_bounds_are_refused_up_front(args, message, tmp_path, cli):
    tiny = TINY if "--family" not in args else ["--epochs", "1", "-q"]
    one_error_line(cli("train", *tiny, *args, "--out", tmp_path / "r.nc"), message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--seed", "100000000000000000000"], "--seed must be at most"),
    (["--samples", "99999999999"], "--samples must be at most"),
])
def test_perturb_counts_are_bounded(args, message, run_file, tmp_path, cli):
    one_error_line(cli("perturb", run_file, "--fractions", "0,1", *args, "--out", tmp_path / "p.nc"), message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value, message", [("-1", "--connect-timeout must be a positive number"),
                                            ("nan", "--connect-timeout must be a positive number")])
def test_scan_connect_timeout_is_checked(value, message, tmp_path, cli):
    one_error_line(cli("scan", *SCAN, "--connect-timeout", value, "--out", tmp_path / "s"), message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("line, message", [('lr = "0.1"', "lr takes float values, got '0.1'"),
                                           ('epochs = "2"', "epochs takes int values, got '2'"),
                                           ('depth = "1,2"', "depth takes int values, got '1,2'")])
def test_toml_values_have_their_option_type(line, message, tmp_path):
    from mfphys.scan import ScanSpec

    path = tmp_path / "s.toml"
    table = "grid" if line.startswith("depth") else "fixed"
    other = "" if table == "grid" else "depth = [1]\n"
    path.write_text(f"[grid]\n{other}n_train = [200]\n" + (f"{line}\n" if table == "grid" else f"[fixed]\n{line}\n"))
    with pytest.raises(MfphysError, match=re.escape(message)):
        ScanSpec.from_toml(path)


def test_one_validation_for_the_python_api():
    with pytest.raises(MfphysError, match="--eval-samples must be at most"):
        TrainConfig(eval_samples=10**12)
    with pytest.raises(MfphysError, match="--seed must be at most"):
        TrainConfig(seed=2**70)


# 6 and 12. names too long, and messages that echo at most a bounded prefix


@pytest.mark.parametrize("name", ["a" * 300, "ö" * 200])
def test_a_file_name_too_long_is_one_line(name, tmp_path, cli):
    one_error_line(cli("train", *TINY, "--out", tmp_path / f"{name}.nc"), "too long")
    one_error_line(cli("scan", *SCAN, "--out", tmp_path / name), "too long")
    assert os.listdir(tmp_path) == []


def test_messages_quote_a_bounded_prefix(tmp_path, cli):
    res = cli("train", *TINY, "--activation", "x" * 2_000_000, "--out", tmp_path / "r.nc")
    one_error_line(res, "unknown --activation 'xxxx")
    assert len(res.stderr) < 500


# 8. a read-only destination is said as such


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_read_only_destination_is_not_called_full(tmp_path, cli):
    with small_tmpfs(tmp_path / "ro") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        one_error_line(cli("scan", *SCAN, "--out", ro / "s"), "Read-only file system")
        one_error_line(cli("train", *TINY, "--out", ro / "r.nc"), "Read-only file system")


def test_write_errors_name_a_read_only_file_system(tmp_path, monkeypatch):
    from mfphys import fileio

    monkeypatch.setattr(fileio, "read_only", lambda path: True)
    monkeypatch.setattr(fileio, "free_bytes", lambda path: 0)
    assert "Read-only file system" in str(fileio.write_error(tmp_path / "x", RuntimeError("NetCDF: HDF error")))
    with pytest.raises(MfphysError, match="Read-only file system"):
        fileio.check_free_space(tmp_path / "x", 10)


# 9. reproduce checks its resources before it announces or creates anything


def test_reproduce_that_cannot_fit_is_refused_before_it_starts(tmp_path, cli, mnist_dir, monkeypatch):
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(mnist_dir))
    res = cli("reproduce", "curves", "--quick", "--seeds", "100000000", "--backend", "numpy",
              "--out", tmp_path / "p")
    one_error_line(res, "not enough memory")
    assert "expected duration" not in res.stderr and not (tmp_path / "p").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_reproduce_on_a_full_disk_leaves_no_folder(tmp_path, cli, mnist_dir, monkeypatch):
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(mnist_dir))
    with small_tmpfs(tmp_path / "small", size="64k") as small:
        res = cli("reproduce", "curves", "--quick", "--backend", "numpy", "--out", small / "p")
        one_error_line(res, "No space left on device")
        assert "expected duration" not in res.stderr and os.listdir(small) == []


# 10. an unusable MFPHYS_DATA_DIR is what the message is about; nothing is downloaded behind it


@pytest.mark.parametrize("how, message", [
    ("empty", "MFPHYS_DATA_DIR={dir} does not hold mnist"),
    ("fifo", "is not a regular file"),
    ("folder", "is a folder, not a file"),
])
def test_an_unusable_data_dir_is_said_about_itself(how, message, tmp_path, monkeypatch, cli):
    from mfphys import data

    folder = tmp_path / "data"
    folder.mkdir()
    if how != "empty":
        bad = folder / "train-labels-idx1-ubyte.gz"
        os.mkfifo(bad) if how == "fifo" else bad.mkdir()
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded behind the user's back")

    monkeypatch.setattr(data, "fetch", no_download)
    res = cli("train", "--n-train", "100", "--epochs", "1", "-q", "--out", tmp_path / "r.nc")
    one_error_line(res, message.format(dir=folder))
    assert "cache" not in res.stderr.split(";")[0] and not (tmp_path / "r.nc").exists()


# 13. the edges of the process: output that cannot be written, Ctrl-C while importing


def test_output_to_a_closed_pipe_or_a_full_disk(run_file):
    import sys

    env = {**os.environ, "COLUMNS": "200"}
    cmd = f"{sys.executable} -m mfphys order {run_file}"
    piped = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], capture_output=True, text=True,
                           env=env)
    assert piped.returncode == 0 and "Traceback" not in piped.stderr, piped.stderr
    if os.path.exists("/dev/full"):
        full = subprocess.run(["bash", "-c", f"{cmd} > /dev/full"], capture_output=True, text=True, env=env)
        assert full.returncode == 2 and full.stderr.strip() == "error: cannot write the output: No space left on " \
                                                               "device", full.stderr


def test_ctrl_c_while_importing_is_one_line(tmp_path):
    """The interrupt arrives before any mfphys code could catch it (here: as the package loads)."""
    import signal
    import sys

    script = "import os, signal, sys\nsys.argv[0] = 'mfphys'\nimport mfphys\nos.kill(os.getpid(), signal.SIGINT)\n" \
             "import time\ntime.sleep(5)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130 and proc.stderr.strip() == "interrupted", (proc.returncode, proc.stderr)


# 1 and 2 on the command line: the final evaluation, and two identical commands at once


def test_ctrl_c_in_the_final_evaluation_says_how_to_finish(tmp_path, monkeypatch, cli):
    from mfphys.models.ffn import train as ffn_train

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ffn_train, "evaluate_sampled", ctrl_c)
    out = tmp_path / "r.nc"
    res = cli("train", *TINY, "--out", out)
    assert res.exit_code == 130
    assert f"finish the evaluation with: mfphys train --resume {out}" in res.stderr
    attrs = store.read_attrs(out)
    assert attrs["status"] == "interrupted" and int(attrs["epochs_done"]) == 2
    monkeypatch.undo()
    assert cli("train", "--resume", out, "-q").exit_code == 0
    assert store.read_attrs(out)["status"] == "done"


def test_two_identical_train_commands_started_together_train_once(tmp_path):
    from tests.helpers import start_mfphys

    out = tmp_path / "r.nc"
    args = ["train", *TINY[:-1], "--epochs", "200", "--out", out]  # seconds of training: they overlap
    procs = [start_mfphys(*args) for _ in range(2)]
    results = [(p.wait(timeout=600), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is being written right now by process" in refused and refused.count("\n") == 1, refused
    assert store.read_attrs(out)["status"] == "done"
    assert not (tmp_path / ".r.nc.lock").exists()
