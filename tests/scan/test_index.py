"""Oracles for mfphys.scan.index: the scan index against the view rebuilt from the cell files
(``open_scan(index=False)``), when the index is missing, stale, damaged or names foreign cells,
with several writers at once, and after a killed scan.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr

from mfphys import scan
from mfphys.scan import index as scan_index
from mfphys.scan import view
from tests.helpers import tiny_spec

KEY = "depth=2,n_train=400"


def entries(folder):
    return scan_index.read(folder / "cells.index")[0]


def assert_same_view(folder):
    """The view from the index is the view from the cell files, variables in the same order."""
    fast, slow = scan.open_scan(folder), scan.open_scan(folder, index=False)
    xr.testing.assert_identical(fast, slow)
    assert list(fast.data_vars) == list(slow.data_vars)
    return fast


def test_run_scan_writes_an_index_the_view_reads_unchanged(fresh_scan):
    index = fresh_scan / "cells.index"
    assert set(entries(fresh_scan)) == {c.key for c in tiny_spec().cells()}  # written as cells finished
    size = index.stat().st_size
    ds = assert_same_view(fresh_scan)
    assert (ds.status == "done").all() and index.stat().st_size == size  # nothing needed reading again


def test_index_is_not_read_when_asked_and_every_cell_is_read(fresh_scan, monkeypatch):
    reads = []
    real = view._cell_summary.__wrapped__
    monkeypatch.setattr(view, "_cell_summary", lambda *a: reads.append(a[0]) or real(*a))
    scan.open_scan(fresh_scan)
    assert reads == []  # every cell from the index
    scan.open_scan(fresh_scan, index=False)
    assert len(reads) == 9


def test_missing_index_is_rebuilt_from_the_cells(fresh_scan):
    before = scan.open_scan(fresh_scan)
    (fresh_scan / "cells.index").unlink()
    xr.testing.assert_identical(assert_same_view(fresh_scan), before)
    assert set(entries(fresh_scan)) == {c.key for c in tiny_spec().cells()}


def test_stale_entry_is_replaced_by_the_cell_file(fresh_scan):
    path = fresh_scan / "cells" / f"{KEY}.nc"
    with netCDF4.Dataset(path, "a") as nc:  # the cell file changes after its entry was written
        nc["test_acc"][0, -1] = 0.125
    ds = assert_same_view(fresh_scan)
    assert ds.test_acc.sel(depth=2, n_train=400).values[0, -1] == 0.125
    st = path.stat()
    assert (entries(fresh_scan)[KEY].cell["mtime_ns"], entries(fresh_scan)[KEY].cell["size"]) == \
        (st.st_mtime_ns, st.st_size)  # the index caught up


def test_entry_of_a_vanished_cell_is_not_shown(fresh_scan):
    (fresh_scan / "cells" / f"{KEY}.nc").unlink()
    ds = assert_same_view(fresh_scan)
    assert ds.status.sel(depth=2, n_train=400) == "pending"
    assert np.isnan(ds.sparsity.sel(depth=2, n_train=400)).all()


def test_foreign_cell_never_enters(fresh_scan, tmp_path):
    """A cell file of another configuration under one of this scan's keys (its coordinates match,
    its scan_hash and config_hash do not) is left out, from the index or from the files."""
    other = tmp_path / "other"
    scan.run_scan(tiny_spec(lr="0.05", depth="2", n_train="400"), other)
    shutil.copy2(other / "cells" / f"{KEY}.nc", fresh_scan / "cells" / f"{KEY}.nc")
    (fresh_scan / "cells.index").unlink()
    assert_status_as_view(fresh_scan, KEY, "failed")  # before any reader rebuilt the index
    ds = assert_same_view(fresh_scan)
    assert ds.status.sel(depth=2, n_train=400) != "done" and KEY not in entries(fresh_scan)
    # nor does a foreign record appended to the index (a record for a file it does not describe)
    shutil.copy2(other / "cells.index", fresh_scan / "cells.index")
    ds = assert_same_view(fresh_scan)
    assert ds.status.sel(depth=2, n_train=400) != "done"
    assert_status_as_view(fresh_scan, KEY, "failed")


def assert_status_as_view(folder, key, expected):
    """The monitor's cheap progress (scan_status) says of every cell what open_scan says."""
    status = scan.scan_status(folder)
    view_status = scan.open_scan(folder).status
    assert status["cells"][key] == expected
    for cell, st in status["cells"].items():
        coords = dict(part.split("=") for part in cell.split(","))
        assert view_status.sel({k: int(v) for k, v in coords.items()}).item() == st, cell
    assert status["done"] == int((view_status == "done").sum())


def test_scan_status_counts_a_damaged_cell_file_as_not_done(fresh_scan):
    """A cell file that is not netCDF (no index entry vouches for it) is pending, as a resume
    and open_scan treat it; the others stay done, from their index entries."""
    (fresh_scan / "cells" / f"{KEY}.nc").write_bytes(b"not a netCDF file")
    assert_status_as_view(fresh_scan, KEY, "pending")


def test_cells_reused_from_another_scan_enter_by_their_configuration(done_scan, tmp_path):
    bigger = tiny_spec(n_train="200,400,600,800")
    scan.run_scan(bigger, tmp_path / "big", reuse=[done_scan[0]])
    (tmp_path / "big" / "cells.index").unlink()  # the copied cells carry the other scan's scan_hash
    ds = assert_same_view(tmp_path / "big")
    assert (ds.status == "done").all()


@pytest.mark.parametrize("damage", ["torn tail", "garbage between records", "flipped byte", "not an index"])
def test_damaged_index_gives_the_same_view_and_is_repaired(fresh_scan, damage):
    path = fresh_scan / "cells.index"
    data = path.read_bytes()
    second = data.index(scan_index.MAGIC, 1)
    if damage == "torn tail":  # a writer killed mid-record
        data = data + data[:second][: second // 2]
    elif damage == "garbage between records":
        data = data[:second] + b"\0" * 1000 + data[second:]
    elif damage == "flipped byte":  # the first record's payload no longer matches its CRC
        data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
    else:
        data = b"this is not an index" * 100
    path.write_bytes(data)
    assert_same_view(fresh_scan)
    assert set(entries(fresh_scan)) == {c.key for c in tiny_spec().cells()}


def _append_many(path, records, start):
    start.wait()
    for r in records:
        scan_index.append(path, [r])


def test_concurrent_writers_lose_no_record(tmp_path, fresh_scan):
    """Four processes append 50 records each at once, one record per write, while another
    rewrites the index: every record of the last round is there and whole."""
    base = scan_index.read(fresh_scan / "cells.index")[0]
    e = next(iter(base.values()))
    path = tmp_path / "cells.index"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = []
    for w in range(4):
        recs = [scan_index.encode({**e.cell, "key": f"w{w}-{k}"}, [("x", ("epoch",), np.arange(k + 3.0), {})], None)
                for k in range(50)]
        procs.append(ctx.Process(target=_append_many, args=(path, recs, start)))
    for p in procs:
        p.start()
    start.set()
    for _ in range(5):
        if path.exists():
            scan_index.rewrite(path, [f"w{w}-{k}" for w in range(4) for k in range(50)])
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got, _, damaged = scan_index.read(path)
    assert damaged == 0 and set(got) == {f"w{w}-{k}" for w in range(4) for k in range(50)}
    for key, entry in got.items():
        k = int(key.split("-")[1])
        np.testing.assert_array_equal(np.frombuffer(entry.data, dtype="<f8"), np.arange(k + 3.0))


def _open(folder, out):
    ds = scan.open_scan(folder)
    out.put(int((ds.status == "done").sum()))


def test_readers_rebuilding_at_once(fresh_scan):
    """Two processes open a scan without an index at the same time: both rebuild it, both see
    every cell, and the index they leave is whole."""
    (fresh_scan / "cells.index").unlink()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(fresh_scan, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert [out.get(), out.get()] == [9, 9]
    assert scan_index.read(fresh_scan / "cells.index")[2] == 0
    assert set(entries(fresh_scan)) == {c.key for c in tiny_spec().cells()}
    assert_same_view(fresh_scan)


class _Stop(Exception):
    pass


def test_resume_after_a_killed_scan(tmp_path):
    """A scan stopped after some cells leaves their records; the rerun adds the others, and the
    view is the view of the cell files."""
    folder = tmp_path / "s"
    done = []

    def stop(ev):
        if ev.kind == "cell_done":
            done.append(ev.cell.key)
            if len(done) == 4:
                raise _Stop

    with pytest.raises(_Stop):
        scan.run_scan(tiny_spec(), folder, callback=stop)
    assert set(entries(folder)) == set(done)
    assert_same_view(folder)
    scan.run_scan(tiny_spec(), folder)
    assert set(entries(folder)) == {c.key for c in tiny_spec().cells()}
    ds = assert_same_view(folder)
    assert (ds.status == "done").all()


def test_a_growing_index_is_read_from_where_the_last_read_stopped(fresh_scan, monkeypatch):
    path = fresh_scan / "cells.index"
    first = dict(entries(fresh_scan))
    e = first[KEY]
    parsed = []
    real = scan_index._parse
    monkeypatch.setattr(scan_index, "_parse", lambda buf, *a: parsed.append(len(buf)) or real(buf, *a))
    record = scan_index.encode({**e.cell, "key": "new"}, [("x", ("epoch",), np.arange(3.0), {})], None)
    scan_index.append(path, [record])
    got = entries(fresh_scan)
    assert parsed == [len(record)] and set(got) == set(first) | {"new"}


def test_attributes_of_any_netcdf_type_survive():
    attrs = {"long_name": "x", "flag_values": np.array([0, 1], dtype=np.int8), "scale": np.float32(0.5),
             "n": 3, "list": [1, 2]}
    rec = scan_index.encode({"key": "k"}, [("v", ("replica",), np.ones(2, dtype=np.float32), attrs)], [0, 2])
    entries_: dict = {}
    scan_index._parse(memoryview(rec), 0, entries_)
    layout = scan_index.parse_layout(entries_["k"].layout)
    (name, dims, dtype, shape, got, _, _), = layout.vars
    assert (name, dims, dtype, shape) == ("v", ("replica",), np.float32, (2,))
    assert got["flag_values"].dtype == np.int8 and list(got["flag_values"]) == [0, 1]
    assert type(got["scale"]) is np.float32 and got["n"] == 3 and got["list"] == [1, 2]
    assert list(layout.dyn_epoch) == [0, 2]
    assert json.loads(json.dumps(entries_["k"].cell)) == {"key": "k"}


def test_warm_open_returns_its_own_copy_and_sees_changes(fresh_scan):
    first = scan.open_scan(fresh_scan)
    first["sparsity"].values[...] = -1.0  # the caller's arrays: the next open is not affected
    again = scan.open_scan(fresh_scan)
    assert (again.sparsity.values != -1.0).any()
    xr.testing.assert_identical(again, scan.open_scan(fresh_scan, index=False))
    (fresh_scan / "cells" / f"{KEY}.nc").unlink()  # a change of the folder is seen at once
    assert scan.open_scan(fresh_scan).status.sel(depth=2, n_train=400) == "pending"
