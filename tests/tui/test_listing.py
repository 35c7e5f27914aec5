"""The sidebar's entries (cli/tui/models/listing.py): what each file is, problem files, caching, filter."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from mfphys import store
from mfphys.cli.tui.models.listing import filter_entries, find_baseline, list_entries
from mfphys.cli.tui.models.run import load_run
from mfphys.errors import MfphysError


def test_list_entries_describes_runs_scans_and_perturbations(runs_dir):
    entries = {e.name: e for e in list_entries(runs_dir)}
    assert sorted(entries) == ["bp", "gbp", "pert", "scan"]
    gbp, bp, pert, sc = entries["gbp"], entries["bp"], entries["pert"], entries["scan"]
    assert (gbp.kind, gbp.status, gbp.mode, gbp.dataset, gbp.architecture, gbp.date) == \
        ("run", "done", "gbp", "teacher", "20-16-10", "2026-01-15 09:30")
    assert (bp.kind, bp.mode) == ("run", "bp")
    assert (pert.kind, pert.architecture) == ("perturbation", "20-16-10")
    assert (sc.kind, sc.status, sc.cells, sc.status_text) == ("scan", "done", (4, 0, 0, 0, 4), "done 4/4 cells")
    assert sc.dataset == "teacher" and sc.architecture == "20-16xd-10"
    assert all(e.ok for e in entries.values())
    assert find_baseline(gbp, entries.values()) == bp
    assert find_baseline(bp, entries.values()) is None


def test_problem_files_are_listed_with_their_error(broken_dir):
    entries = {e.name: e for e in list_entries(broken_dir)}
    assert sorted(entries) == ["corrupt", "empty-scan", "foreign", "not-a-scan", "writing-scan"]  # no temp file
    assert entries["corrupt"].status == "error" and "not a readable netCDF file" in entries["corrupt"].error
    assert "not an mfphys file" in entries["foreign"].error
    assert entries["not-a-scan"].status == "error" and "scan.json" in entries["not-a-scan"].error
    assert entries["empty-scan"].cells == (0, 0, 0, 2, 2) and entries["empty-scan"].ok
    writing = entries["writing-scan"]
    assert writing.cells == (1, 1, 1, 1, 4) and writing.status == "running"
    assert writing.status_text == "running 1/4 cells, 1 failed"


def test_files_of_other_kinds_are_listed_with_their_kind(tmp_path):
    """A reproduction result (known to mfphys.store, not shown by the TUI) and an unknown kind."""
    import xarray as xr

    for name, kind in (("repro", "reproduction"), ("odd", "someday")):
        xr.Dataset({"t": ("x", np.arange(3.0))}, attrs={store.KIND_ATTR: kind}).to_netcdf(tmp_path / f"{name}.nc")
    entries = {e.name: e for e in list_entries(tmp_path)}
    assert (entries["repro"].kind, entries["repro"].status) == ("reproduction", "error")
    assert "the TUI shows runs, scans and perturbation files" in entries["repro"].error
    assert (entries["odd"].kind, entries["odd"].error) == ("someday", f"unknown {store.KIND_ATTR} 'someday'")


def test_half_written_or_vanished_files_never_raise_from_listing(tmp_path, runs_dir):
    raw = (runs_dir / "gbp.nc").read_bytes()
    (tmp_path / "half.nc").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "gone.nc").write_bytes(raw)
    entries = {e.name: e for e in list_entries(tmp_path)}
    assert entries["half"].status == "error"
    (tmp_path / "gone.nc").unlink()
    with pytest.raises(MfphysError, match="no such file"):
        load_run(entries["gone"].path)
    with pytest.raises(MfphysError):
        load_run(entries["half"].path)


def test_listing_rereads_only_changed_files(tmp_path, runs_dir, monkeypatch):
    for name in ("gbp.nc", "bp.nc"):
        (tmp_path / name).write_bytes((runs_dir / name).read_bytes())
    reads = []
    real = store.read_attrs
    monkeypatch.setattr(store, "read_attrs", lambda p: reads.append(p.name) or real(p))
    list_entries(tmp_path)
    list_entries(tmp_path)
    assert sorted(reads) == ["bp.nc", "gbp.nc"]
    st = (tmp_path / "bp.nc").stat()
    os.utime(tmp_path / "bp.nc", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    list_entries(tmp_path)
    assert sorted(reads) == ["bp.nc", "bp.nc", "gbp.nc"]


@pytest.mark.parametrize("text, expected", [
    ("", ["bp", "gbp", "pert", "scan"]),
    ("scan", ["scan"]),
    ("run bp", ["bp", "gbp"]),  # every word must match: gbp's mode contains "bp"
    ("perturbation", ["pert"]),
    ("GBP", ["gbp"]),
    ("nothing-matches", []),
])
def test_filter_entries(runs_dir, text, expected):
    assert [e.name for e in filter_entries(list_entries(runs_dir), text)] == expected


def test_partial_run_files_say_how_far_they_are(tmp_path):
    """Run files written while training (docs/file-format.md, "Status, partial files, checkpoints")."""
    import socket

    from mfphys.fileio import boot_id
    from tests.helpers import dead_pid, tiny_config, write_checkpoint

    cfg = tiny_config(epochs=4)
    write_checkpoint(tmp_path / "start.nc", cfg, 0)
    write_checkpoint(tmp_path / "run.nc", cfg, 2)
    gone = {"pid": dead_pid(), "host": socket.gethostname(), "boot_id": boot_id()}
    write_checkpoint(tmp_path / "dead.nc", cfg, 2, writer=gone)
    write_checkpoint(tmp_path / "stop.nc", cfg, 3, status="interrupted")
    entries = {e.name: e for e in list_entries(tmp_path)}
    start, run, dead, stop = (entries[k] for k in ("start", "run", "dead", "stop"))
    assert (start.status, start.epochs_done, start.epochs, start.status_text) == ("running", 0, 4, "starting 0/4")
    assert start.eta_at is None  # no epoch timed yet
    assert (run.status, run.epochs_done, run.epochs) == ("running", 2, 4) and run.partial
    assert re.fullmatch(r"running 2/4 ETA \d+(s|m\d\ds|h\d\dm|d\d\dh)", run.status_text), run.status_text
    assert (dead.status, dead.status_text) == ("stopped", "stopped at 2/4")
    assert (stop.status, stop.status_text) == ("interrupted", "interrupted at 3/4")
    assert sorted(e.name for e in filter_entries(entries.values(), "running")) == ["run", "start"]
    assert [e.name for e in filter_entries(entries.values(), "stopped")] == ["dead"]


def test_the_eta_counts_down_from_the_last_checkpoint(tmp_path):
    """ETA: the last write plus the epochs left at the slower of the recorded training time and
    the wall time of this command's epochs; a done run has none."""
    import json
    from datetime import datetime

    from tests.helpers import tiny_config, write_checkpoint

    ds = write_checkpoint(tmp_path / "r.nc", tiny_config(epochs=4), 2)
    updated = "2026-01-15T10:00:00+00:00"  # 30 min after the segment started (CREATED): 900 s per epoch
    ds.attrs.update(updated=updated, timings=json.dumps({"train_seconds": 10.0}))
    store.write_atomic(ds, tmp_path / "r.nc")
    (entry,) = list_entries(tmp_path)
    t = datetime.fromisoformat(updated).timestamp()
    assert entry.eta_at == pytest.approx(t + 2 * 900)
    assert entry.eta_seconds(now=t + 100) == pytest.approx(1700)
    assert entry.progress_text(now=t + 100) == "running 2/4 ETA 28m20s"
    assert entry.eta_seconds(now=t + 10_000) == 0  # overdue: never negative
    ds.attrs.update(timings=json.dumps({"train_seconds": 7200.0}))  # the slower estimate wins
    store.write_atomic(ds, tmp_path / "r.nc")
    (entry,) = list_entries(tmp_path)
    assert entry.progress_text(now=t) == "running 2/4 ETA 2h00m"


def test_a_killed_writer_is_noticed_without_the_file_changing(tmp_path):
    """The liveness of a running file's writer is asked at every listing, not cached with the file."""
    import json
    import subprocess
    import sys

    from mfphys import runfile
    from tests.helpers import tiny_config, write_checkpoint

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        writer = {**runfile.writer_info(), "pid": proc.pid}
        write_checkpoint(tmp_path / "r.nc", tiny_config(epochs=4), 1, writer=writer)
        (entry,) = list_entries(tmp_path)
        assert entry.status == "running" and json.loads(entry.writer)["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    (entry,) = list_entries(tmp_path)
    assert entry.status_text == "stopped at 1/4"


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (185, "3m05s"), (7500, "2h05m"),
                                           (3 * 86400 + 4 * 3600, "3d04h")])
def test_duration(seconds, text):
    from mfphys.cli.tui.models.format import duration

    assert duration(seconds) == text


def test_filter_finds_runs_by_tags_notes_and_settings(tmp_path):
    """``tag:NAME``, ``key=value`` (numbers as numbers), ``key>value``, and plain words in the tags
    and the note (docs/tui.md "Finding runs by their settings")."""
    from mfphys import store
    from mfphys.train import train
    from tests.helpers import SCAN_FIXED, tiny_config, write_scan

    for name, lr, tags, note in (("a", 0.05, ["demo"], "first try"), ("b", 0.1, ["paper", "R3"], None)):
        ds = store.run_to_dataset(train(tiny_config(lr=lr, epochs=1)), name=name, tags=tags, note=note)
        store.write_atomic(ds, tmp_path / f"{name}.nc")
    write_scan(tmp_path / "s", depth=(1, 2), n_train=(200,))
    entries = list_entries(tmp_path)

    def names(text):
        return [e.name for e in filter_entries(entries, text)]

    assert names("tag:demo") == ["a"] and names("tag:r3") == ["b"] and names("tag:dem") == []
    # (the scan trains at lr 0.1 too)
    assert names("lr=0.05") == ["a"] and names("lr=0.050") == ["a"] and names("lr>0.07") == ["b", "s"]
    assert names("lr=0.05 tag:paper") == [] and names("first") == ["a"] and names("paper") == ["b"]
    assert names("epochs=1") == ["a", "b"] and names("layers=20,16,10") == ["a", "b"]
    assert names("depth=2") == ["s"] and names(f"width={SCAN_FIXED['width']}") == ["s"]
    assert names("nosuchsetting=1") == []
