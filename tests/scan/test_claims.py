"""One scan process per folder, one trainer per cell, and no state a kill can leave that a rerun cannot finish.

These run the real ``mfphys scan`` command in subprocesses: two started at the same instant,
and one killed (SIGKILL) at each of its write points in turn (folder creation, scan.json,
cell claims, cell files, marker removal), each followed by a rerun.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from mfphys import scan, store
from mfphys.errors import MfphysError
from mfphys.fileio import boot_id
from mfphys.scan.folder import FolderLock, _Paths, claim_cell
from tests.helpers import REPO, dead_pid, one_error_line, snapshot

#: a 1 x 2 scan of tiny cells (about a second of training in all)
ARGS = ["--depth", "1", "--n-train", "200,300", "--dataset", "teacher", "--input-dim", "20", "--width", "8",
        "--epochs", "2", "--batch-size", "100", "-R", "1", "--n-test", "100", "--backend", "numpy"]
OPTIONS = dict(depth="1", n_train="200,300", dataset="teacher", input_dim="20", width="8", epochs="2",
               batch_size="100", replicas="1", n_test="100", backend="numpy")

#: runs `mfphys scan ARGS...` and SIGKILLs itself at the N-th write point (argv[1] = N)
KILLER = r"""
import os, pathlib, signal, sys
n, count = int(sys.argv[1]), [0]
def hit():
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
def before_and_after(fn):
    def wrapped(*a, **k):
        hit()
        out = fn(*a, **k)
        hit()
        return out
    return wrapped
os.replace = before_and_after(os.replace)
pathlib.Path.mkdir = before_and_after(pathlib.Path.mkdir)
pathlib.Path.unlink = before_and_after(pathlib.Path.unlink)
_open = os.open
def exclusive_open(path, flags, *a):
    if flags & os.O_EXCL:
        hit()
    return _open(path, flags, *a)
os.open = exclusive_open
sys.argv = ["mfphys", "scan", *sys.argv[2:]]
from mfphys.cli.main import main
main()
"""


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _cells(folder):
    return {p.name: store.open_run(p) for p in sorted((folder / "cells").glob("*.nc"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref") / "scan"
    scan.run_scan(scan.spec_from_options(OPTIONS), folder)
    return _cells(folder)


def test_same_scan_started_twice_at_once_trains_each_cell_once(tmp_path):
    """Several trials of two identical commands started together: every cell is trained by exactly
    one of them (the other is refused while the first holds the folder, or finds it done)."""
    for trial in range(3):
        folder = tmp_path / f"t{trial}"
        cmd = [sys.executable, "-m", "mfphys", "scan", *ARGS, "--out", str(folder)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        trained = 0
        for rc, out, err in outs:
            if rc == 0:
                trained += int(re.search(r"\((\d+) trained now", out).group(1))
            else:
                assert rc == 2 and "is being scanned right now" in err, (rc, err)
        assert trained == 2, outs  # two cells, each trained exactly once
        assert scan.scan_status(folder)["done"] == 2


def test_killed_at_every_write_point_the_rerun_completes(tmp_path, reference):
    n = 0
    while True:
        n += 1
        assert n < 80, "more write points than expected: the loop does not end"
        folder = tmp_path / f"k{n}"
        proc = subprocess.run([sys.executable, "-c", KILLER, str(n), *ARGS, "--out", str(folder), "-q"],
                              capture_output=True, text=True, env=_env(), timeout=120)
        if proc.returncode == 0:
            break  # N is past the last write point: the scan ran through
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        report = scan.run_scan(scan.spec_from_options(OPTIONS), folder)  # the rerun
        assert report.done == report.total == 2, (n, report)
        got = _cells(folder)
        assert got.keys() == reference.keys()
        for name, ds in got.items():
            for var in ("pi_1", "m_1", "xi_1", "test_acc"):
                np.testing.assert_array_equal(ds[var].values, reference[name][var].values)
        leftovers = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".running"))]
        assert leftovers == [], (n, leftovers)
    print(f"{n - 1} write points")
    assert n > 8  # the kills really hit the folder, scan.json, the claims, the cells and the markers


def test_folder_killed_before_its_scan_json_is_resumed(tmp_path):
    folder = tmp_path / "half"
    (folder / "cells").mkdir(parents=True)
    (folder / f".scan.json.{dead_pid()}.tmp").write_bytes(b"")
    report = scan.run_scan(scan.spec_from_options(OPTIONS), folder)
    assert report.done == 2 and (folder / "scan.json").exists()
    assert not list(folder.glob(".*.tmp"))


def test_a_held_folder_refuses_a_second_scan(tmp_path):
    folder = tmp_path / "held"
    folder.mkdir()
    other = {"owner_pid": 1, "owner_host": "elsewhere", "boot_id": ""}
    with FolderLock(_Paths(folder), other):
        proc = subprocess.run([sys.executable, "-m", "mfphys", "scan", *ARGS, "--out", str(folder)],
                              capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {folder} is being scanned right now by process 1 on elsewhere; " \
                                  "wait for it to finish or stop it"


def test_a_cell_claimed_by_a_live_process_is_not_trained_twice(tmp_path):
    p = _Paths(tmp_path)
    (tmp_path / "cells").mkdir()
    mine = {"owner_pid": os.getpid(), "owner_host": "here", "boot_id": ""}
    theirs = {"owner_pid": 12345, "owner_host": "another-host", "boot_id": ""}
    assert claim_cell(p, "k", theirs)
    assert not claim_cell(p, "k", mine)  # another host's claim: cannot tell it is dead, so it stands
    stale = {"owner_pid": dead_pid(), "owner_host": socket.gethostname(), "boot_id": boot_id()}
    (tmp_path / "cells" / "k.running").write_text(json.dumps(stale))
    assert claim_cell(p, "k", mine)  # a dead process's claim on this machine is taken over


@pytest.mark.parametrize("damage, message", [
    ({"dims": None}, "'dims' is missing"),
    ({"grid": "depth"}, "'grid' is missing or not a dict"),
    ({"grid": {"depth": [1]}}, "the grid has no values for n_train"),
    ({"scan_hash": None}, "'scan_hash' is missing"),
])
def test_damaged_scan_json_is_one_line_everywhere(tmp_path, cli, damage, message):
    folder = tmp_path / "s"
    scan.run_scan(scan.spec_from_options(OPTIONS), folder)
    meta = json.loads((folder / "scan.json").read_text())
    for k, v in damage.items():
        if v is None:
            del meta[k]
        else:
            meta[k] = v
    (folder / "scan.json").write_text(json.dumps(meta))
    for call in (lambda: scan.open_scan(folder), lambda: scan.scan_status(folder)):
        with pytest.raises(MfphysError, match=message):
            call()
    one_error_line(cli("scan-plot", folder), message)


def test_cells_path_that_is_a_file(tmp_path, cli):
    folder = tmp_path / "s"
    scan.run_scan(scan.spec_from_options(OPTIONS), folder)
    for p in (folder / "cells").iterdir():
        p.unlink()
    (folder / "cells").rmdir()
    (folder / "cells").write_text("not a folder")
    before = snapshot(tmp_path)
    one_error_line(cli("scan", *ARGS, "--out", folder), "is not a folder")
    one_error_line(cli("scan-plot", folder), "is not a folder")
    assert snapshot(tmp_path) == before


def test_a_cell_that_cannot_be_written_is_recorded_failed(tmp_path, monkeypatch, cli):
    """A full disk while writing a cell: the cell fails (recorded, exit 4), the scan goes on."""
    real = store.write_atomic

    def full(ds, path):
        if str(path).endswith("n_train=300.nc"):
            raise MfphysError(f"cannot write {path}: No space left on device (0 B free)")
        return real(ds, path)

    monkeypatch.setattr(store, "write_atomic", full)
    res = cli("scan", *ARGS, "--out", tmp_path / "s", "-q")
    assert res.exit_code == 4, res.output
    assert "No space left on device" in res.stderr
    assert (tmp_path / "s" / "cells" / "depth=1,n_train=200.nc").exists()
    record = json.loads((tmp_path / "s" / "cells" / "depth=1,n_train=300.failed.json").read_text())
    assert "No space left on device" in record["error"]


def test_scan_plot_without_a_finished_cell_says_so(tmp_path, cli):
    folder = tmp_path / "s"
    folder.mkdir()
    spec = scan.spec_from_options(OPTIONS)
    from mfphys.fileio import write_json_atomic

    write_json_atomic({"mfphys_kind": "scan", "name": "s", "dims": list(spec.dims), "grid": spec.grid_dict,
                       "fixed": spec.fixed_dict, "scan_hash": spec.scan_hash()}, folder / "scan.json")
    one_error_line(cli("scan-plot", folder), "no cell is done yet")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: an unwritable parent cannot be made")
def test_unwritable_parent_is_one_line(tmp_path, cli):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_error_line(cli("scan", *ARGS, "--out", locked / "sub" / "s"), "cannot create the scan folder")


def test_parent_that_is_a_file_is_one_line(tmp_path, cli):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    one_error_line(cli("scan", *ARGS, "--out", tmp_path / "file" / "s"), "Not a directory")
    assert snapshot(tmp_path) == before


def test_an_interrupt_right_after_a_claim_leaves_no_marker(tmp_path, monkeypatch):
    """Ctrl-C between claiming a cell and starting it: the claim goes with the scan."""
    from mfphys.scan import runner
    from tests.helpers import tiny_spec

    real = runner.claim_cell

    def claim_then_interrupt(p, key, owner):
        assert real(p, key, owner)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "claim_cell", claim_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        scan.run_scan(tiny_spec(depth="1", n_train="200"), tmp_path / "s")
    assert not list((tmp_path / "s" / "cells").glob("*.running"))
