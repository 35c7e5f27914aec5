"""``mfphys train`` and ``mfphys data`` from the command line: output files and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mfphys import data as data_mod
from mfphys import open_run

TINY = ["--dataset", "teacher", "--layers", "784,16,10", "--n-train", "200", "--n-test", "100", "--epochs", "2",
        "--batch-size", "50", "--backend", "numpy", "--quiet"]




def test_train_writes_a_run_file(tmp_path, cli):
    out = tmp_path / "runs" / "tiny.nc"
    res = cli("train", *TINY, "-R", "2", "--out", str(out), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ds = open_run(out)
    assert ds.sizes["replica"] == 2 and ds.sizes["epoch"] == 2 and ds.attrs["architecture"] == "784-16-10"
    assert "mfphys train" in ds.attrs["history"] or "mfphys" in ds.attrs["history"]


def test_train_shows_progress_and_summary(tmp_path, cli):
    res = cli("train", *[a for a in TINY if a != "--quiet"], "--out", str(tmp_path / "r.nc"), catch_exceptions=False)
    assert res.exit_code == 0
    assert "frac_vip" in res.stdout and "wrote" in res.stdout


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No MNIST anywhere and no network: an empty env dir, an empty cache, unreachable mirrors."""
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data_mod, "MIRRORS", {k: ("http://127.0.0.1:9/",) for k in data_mod.MIRRORS})
    monkeypatch.setattr(data_mod, "DOWNLOAD_TIMEOUT_S", 2.0)
    data_mod.clear_cache()


BAD = {
    "malformed layers": (["--layers", "784,abc,10"], "--layers"),
    "input width": (["--layers", "100,10", "--data-dir", "{mnist}"], "784 input features"),
    "n-train too large": (["--n-train", "70000", "--data-dir", "{mnist}"], "larger than"),
    "lr zero": (["--lr", "0"], "--lr"),
    "lr negative": (["--lr", "-0.1"], "--lr"),
    "batch zero": (["--batch-size", "0"], "--batch-size"),
    "epochs zero": (["--epochs", "0"], "--epochs"),
    "unknown backend": (["--backend", "tpu"], "backend"),
    "cupy without GPU": (["--backend", "cupy", "--dataset", "teacher"], "GPU"),
    "unknown dataset": (["--dataset", "cifar"], "cifar"),
    "diverges": (["--dataset", "teacher", "--layers", "784,16,10", "--n-train", "200", "--batch-size", "50",
                  "--lr", "1e12", "--epochs", "4", "--backend", "numpy"], "diverged"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_no_file(case, tmp_path, mnist_dir, cli):
    args, expect = BAD[case]
    if case == "cupy without GPU":
        from mfphys.backend import gpu_status

        if gpu_status()[0]:
            pytest.skip("a GPU works here")
    args = [a.format(mnist=mnist_dir) for a in args]
    out = tmp_path / "r.nc"
    res = cli("train", "--epochs", "1", *args, "--out", str(out), "--quiet", catch_exceptions=False)
    assert res.exit_code != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr
    assert "Traceback" not in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing partial left behind


def test_missing_data_offline_says_where_to_put_files(offline, tmp_path, cli):
    res = cli("train", "--epochs", "1", "--out", str(tmp_path / "r.nc"), "--quiet", catch_exceptions=False)
    assert res.exit_code != 0
    (line,) = res.stderr.strip().splitlines()
    assert "MFPHYS_DATA_DIR" in line and "--data-dir" in line
    assert not (tmp_path / "r.nc").exists()


def test_unwritable_out_fails_before_training(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    res = cli("train", *TINY, "--out", str(blocker / "run.nc"), catch_exceptions=False)
    assert res.exit_code != 0 and "cannot write" in res.stderr
    assert blocker.read_text() == "keep me"


def test_entry_point_subprocess_error_exit_code(tmp_path):
    """The installed console script: one line on stderr, non-zero exit, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "mfphys", "train", "--layers", "7", "--out", str(tmp_path / "x.nc")],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --layers needs at least two positive widths, got 7"]


def test_data_where_and_verify(mnist_dir, cli):
    res = cli("data", "where", "--data-dir", str(mnist_dir), catch_exceptions=False)
    assert res.exit_code == 0 and str(mnist_dir) in res.stdout
    res = cli("data", "verify", "--data-dir", str(mnist_dir), catch_exceptions=False)
    assert res.exit_code == 0 and res.stdout.count("yes") == 4
