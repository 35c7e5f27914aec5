"""``mfphys scan --adaptive`` and ``mfphys scan-plot`` of an adaptive scan: the command, its
refusals, the dry run, a kill and its resume, Dask workers, the picture."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mfphys import scan, store
from tests.helpers import REPO, default_sigint, one_error_line, snapshot

pytest.importorskip("adaptive")

ARGS = ["--adaptive", "--dataset", "teacher", "--input-dim", "20", "--width", "10", "--depth", "1,2",
        "--axis", "alpha=1:50", "--epochs", "2", "--batch-size", "10", "-R", "2", "--n-test", "200",
        "--backend", "numpy"]


@pytest.fixture(scope="module")
def cli_adaptive(tmp_path_factory, cli):
    folder = tmp_path_factory.mktemp("cli") / "adaptive"
    result = cli("scan", *ARGS, "--target", "test_error,sparsity", "--cells", "6", "--out", str(folder))
    assert result.exit_code == 0, result.output
    return folder, result


def test_adaptive_command_writes_cells_and_summarises(cli_adaptive, cli):
    folder, result = cli_adaptive
    assert "6 cells done (6 trained now, 0 kept), 0 failed; loss" in result.stdout
    assert "alpha" in result.stdout and "sparsity" in result.stdout
    meta = json.loads((folder / "scan.json").read_text())
    assert meta["adaptive"]["target"] == ["test_error", "sparsity"] and meta["command"].startswith("mfphys ")
    ds = scan.open_scan(folder)
    assert ds.sizes["cell"] == 6 and sorted(set(ds.depth.values)) == [1, 2]
    again = cli("scan", *ARGS, "--target", "test_error,sparsity", "--cells", "6", "--out", str(folder))
    assert again.exit_code == 0 and "(0 trained now, 6 kept)" in again.stdout


def test_scan_plot_draws_the_cells_over_the_interpolation(cli_adaptive, cli, tmp_path):
    folder, _ = cli_adaptive
    out = tmp_path / "p.png"
    result = cli("scan-plot", str(folder), "--out", str(out), "--level", "0.05")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "6 cell(s) done" in result.stdout
    result = cli("scan-plot", str(folder), "--out", str(tmp_path / "q.png"), "--vars", "frac_vip,gap",
                 "--sel", "depth=2")
    assert result.exit_code == 0, result.output
    one_error_line(cli("scan-plot", str(folder), "--vars", "nope"), "--vars: unknown variable 'nope'")
    one_error_line(cli("scan-plot", str(folder), "--sel", "width=3"), "not a discrete axis")


@pytest.mark.parametrize("args, expect", [
    (["--axis", "alpha=1:5", "--depth", "1", "--dataset", "teacher", "--input-dim", "20"], "add --adaptive"),
    (["--adaptive", "--depth", "1", "--dataset", "teacher", "--input-dim", "20", "--cells", "3"],
     "needs a continuous axis"),
    (["--adaptive", "--depth", "1", "--axis", "n_train=100:1000"], "needs a budget"),
    (["--adaptive", "--depth", "1", "--axis", "n_train=100:1000", "--n-train", "200", "--cells", "2"],
     "set by the continuous axis"),
    (["--adaptive", "--axis", "depth=1:4", "--cells", "2"], "n_train values"),
    (["--adaptive", "--depth", "1", "--axis", "depth=1:4", "--n-train", "100", "--cells", "2"],
     "depth is set by the continuous axis depth"),
    (["--adaptive", "--depth", "1", "--axis", "speed=1:4", "--n-train", "100", "--cells", "2"],
     "not a continuous axis"),
])
def test_bad_adaptive_options_give_one_line_and_write_nothing(tmp_path, cli, args, expect):
    one_error_line(cli("scan", *args, "--out", str(tmp_path / "x")), expect)
    assert not (tmp_path / "x").exists()


def test_level_is_for_adaptive_scans_only(tmp_path, cli):
    from tests.helpers import tiny_spec

    scan.run_scan(tiny_spec(depth="1", n_train="200"), tmp_path / "grid")
    one_error_line(cli("scan-plot", str(tmp_path / "grid"), "--level", "0.1"), "is a grid scan")


def test_dry_run_prints_the_budget_and_writes_nothing(tmp_path, cli):
    result = cli("scan", *ARGS, "--cells", "8", "--out", str(tmp_path / "dry"), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "8 (0 done, 8 to train)" in result.stdout and "estimated time" in result.stdout
    assert not (tmp_path / "dry").exists()


def test_killed_adaptive_scan_resumes_from_its_cells(tmp_path, cli):
    folder = tmp_path / "killed"
    slow = ["--epochs", "40"]  # a second or more a cell: time for the kill to land part-way
    cmd = [sys.executable, "-m", "mfphys", "scan", *ARGS, *slow, "--cells", "6", "--out", str(folder), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    cells = folder / "cells"
    deadline = time.monotonic() + 120

    def finished():
        return [c for c in cells.glob("*.nc") if not c.name.endswith(".partial.nc")]

    while len(finished()) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    before = {k: v for k, v in snapshot(cells).items() if k.endswith(".nc") and not k.endswith(".partial.nc")
              and not k.startswith(".")}
    assert 2 <= len(before) < 6, "the scan must be killed part-way for this test to mean anything"
    result = cli("scan", *ARGS, *slow, "--cells", "6", "--out", str(folder), "-q")
    assert result.exit_code == 0, result.output
    after = snapshot(cells)
    assert {k: after[k] for k in before} == before  # the finished cells are kept as they were
    status = scan.scan_status(folder)
    assert (status["done"], status["running"]) == (6, 0) and not list(cells.glob("*.running"))


def test_workers_ask_for_cells_as_they_free_up(tmp_path, cli):
    result = cli("scan", *ARGS, "--cells", "6", "--out", str(tmp_path / "dask"), "--workers", "2", "-q")
    assert result.exit_code == 0, result.output
    seq = cli("scan", *ARGS, "--cells", "4", "--out", str(tmp_path / "seq"), "-q")
    assert seq.exit_code == 0, seq.output
    # the first cells are the bounds of each depth, whichever way they ran: the same numbers
    for key in scan.scan_status(tmp_path / "seq")["cells"]:
        a = store.open_run(tmp_path / "seq" / "cells" / f"{key}.nc")
        b = store.open_run(tmp_path / "dask" / "cells" / f"{key}.nc")
        np.testing.assert_array_equal(a["pi_1"].values, b["pi_1"].values)
    assert scan.scan_status(tmp_path / "dask")["done"] == 6
