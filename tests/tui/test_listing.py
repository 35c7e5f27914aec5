"""The sidebar's entries (cli/tui/models/listing.py): what each file is, problem files, caching, filter."""

from __future__ import annotations

import os

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
