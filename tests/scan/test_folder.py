"""Oracles for mfphys.scan.folder: progress from file names, live and stale markers, refused folders.

Progress is checked against a finished tiny scan and a hand-made marker of a live process;
refusals against a snapshot of the folder, which must be unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mfphys import scan, store
from mfphys.errors import MfphysError
from mfphys.fileio import boot_id
from mfphys.scan import folder as scan_folder
from tests.helpers import snapshot, tiny_spec


def test_scan_status(done_scan):
    st = scan.scan_status(done_scan[0])
    assert {k: st[k] for k in ("total", "done", "failed", "running", "pending")} == \
        {"total": 9, "done": 9, "failed": 0, "running": 0, "pending": 0}


def test_live_marker_shows_running_and_blocks_a_second_scan(fresh_scan):
    (fresh_scan / "cells" / "depth=3,n_train=600.nc").unlink()
    marker = {"pid": os.getppid(), "host": "h", "owner_pid": os.getppid(), "owner_host": os.uname().nodename,
              "boot_id": boot_id()}
    (fresh_scan / "cells" / "depth=3,n_train=600.running").write_text(json.dumps(marker))
    assert scan.scan_status(fresh_scan)["running"] == 1
    assert scan.open_scan(fresh_scan).status.sel(depth=3, n_train=600) == "running"
    with pytest.raises(MfphysError, match="being scanned right now by process"):
        scan.run_scan(tiny_spec(), fresh_scan)


def test_refuses_a_different_configuration(fresh_scan):
    before = snapshot(fresh_scan)
    with pytest.raises(MfphysError, match=r"different scan configuration \(depth differs: 1,2,3 there, 1,2 here"):
        scan.run_scan(tiny_spec(depth="1,2"), fresh_scan)
    with pytest.raises(MfphysError, match=r"epochs differs: 3 there, 4 here"):
        scan.run_scan(tiny_spec(epochs="4"), fresh_scan)
    with pytest.raises(MfphysError, match=r"lr is fixed there \(0.1\), scanned here \(0.1,0.2\)"):
        scan.run_scan(tiny_spec(lr="0.1,0.2"), fresh_scan)
    assert snapshot(fresh_scan) == before


@pytest.mark.parametrize("content", ["file", "folder-with-file", "not-a-scan-json"])
def test_refuses_someone_elses_folder(tmp_path, content):
    target = tmp_path / "x"
    if content == "file":
        target.write_text("mine")
    else:
        target.mkdir()
        name = "scan.json" if content == "not-a-scan-json" else "notes.txt"
        (target / name).write_text('{"mfphys_kind": "run"}')
    before = snapshot(tmp_path)
    with pytest.raises(MfphysError, match="not a folder|not an mfphys scan"):
        scan.run_scan(tiny_spec(), target)
    assert snapshot(tmp_path) == before


def test_kind_attr_is_the_store_one():
    assert scan_folder.KIND_ATTR == store.KIND_ATTR


def test_reading_spec_and_progress_imports_no_xarray(done_scan):
    """A monitor polling a scan (scan_status) and the command line's spec need neither xarray nor Dask."""
    code = ("import json, sys\n"
            "from mfphys.scan import scan_status, spec_from_options, read_scan_json\n"
            f"st = scan_status({str(done_scan[0])!r})\n"
            "heavy = sorted(m for m in ('xarray', 'netCDF4', 'dask', 'distributed') if m in sys.modules)\n"
            "print(json.dumps([heavy, st['done']]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[], 9]
