"""Oracles for mfphys.scan.runner: what a scan writes, resume, failures, Dask options, reuse.

Cells are tiny teacher-student runs (20 inputs, width 16, 3 epochs), so a 3 x 3 scan takes
about a second. Oracles: resume against the bytes and mtimes of the files left behind (and
against reading no variables at all), failures against their records, reuse against the
bytes of the copied cells; refusals against an unchanged folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest
import xarray as xr

from mfphys import scan, store
from mfphys.errors import MfphysError
from mfphys.fileio import boot_id
from mfphys.runfile import CheckpointPolicy
from mfphys.scan import runner
from tests.helpers import assert_same_run, dead_pid, snapshot, start_python, tiny_spec, wait_for_checkpoint


def test_scan_writes_every_cell(done_scan):
    folder, report = done_scan
    assert (report.total, report.done, report.failed, report.trained, report.skipped) == (9, 9, 0, 9, 0)
    meta = json.loads((folder / "scan.json").read_text())
    assert meta["mfphys_kind"] == "scan" and meta["grid"] == {"depth": [1, 2, 3], "n_train": [200, 400, 600]}
    assert meta["scan_hash"] == tiny_spec().scan_hash() and meta["width"] == 16
    assert sorted(p.name for p in (folder / "cells").iterdir()) == sorted(f"{c.key}.nc" for c in tiny_spec().cells())


def test_cell_file_is_a_run_file_with_scan_attrs(done_scan):
    folder, _ = done_scan
    cell = tiny_spec().cells()[4]
    ds = store.open_run(scan.cell_path(folder, depth=2, n_train=400))
    assert ds.attrs["mfphys_kind"] == "run" and json.loads(ds.attrs["scan_cell"]) == {"depth": 2, "n_train": 400}
    assert ds.attrs["config_hash"] == cell.config_hash and ds.attrs["mfphys_version"]
    assert store.config_from_dataset(ds) == cell.config


def test_resume_trains_only_missing_cells(fresh_scan):
    cells = fresh_scan / "cells"
    (cells / "depth=2,n_train=400.nc").unlink()
    marker = {"pid": 1, "host": "x", "owner_pid": dead_pid(), "owner_host": os.uname().nodename,
              "boot_id": boot_id()}
    (cells / "depth=2,n_train=400.running").write_text(json.dumps(marker))  # left by a killed scan
    (cells / f".depth=3,n_train=200.nc.{dead_pid()}.tmp").write_bytes(b"half")  # likewise
    assert scan.scan_status(fresh_scan)["pending"] == 1  # a stale marker is not "running"
    before = snapshot(fresh_scan)
    started = []
    report = scan.run_scan(tiny_spec(), fresh_scan, callback=lambda ev: ev.kind == "cell_start" and
                           started.append(ev.cell.key))
    assert started == ["depth=2,n_train=400"] and (report.trained, report.skipped, report.done) == (1, 8, 9)
    after = snapshot(fresh_scan)
    # the index gains the retrained cell's record (docs/scans.md, "The scan index")
    assert {k: v for k, v in after.items() if "depth=2,n_train=400" not in k and k != "cells.index"} == \
        {k: v for k, v in before.items() if "depth=2,n_train=400" not in k and not k.endswith(".tmp")
         and k != "cells.index"}
    assert sorted(p.name for p in cells.iterdir()) == sorted(f"{c.key}.nc" for c in tiny_spec().cells())


def test_resume_reads_attributes_only(fresh_scan, monkeypatch):
    """Deciding that a cell is done reads its attributes, never its arrays."""
    def no_variables(*args, **kwargs):
        raise AssertionError("a resume read a cell file's variables")

    for module, name in ((store, "read_dataset"), (store, "open_run"), (xr, "open_dataset"), (xr, "load_dataset")):
        monkeypatch.setattr(module, name, no_variables)
    before = snapshot(fresh_scan)
    report = scan.run_scan(tiny_spec(), fresh_scan)
    assert (report.trained, report.skipped, report.done) == (0, 9, 9)
    assert snapshot(fresh_scan) == before


def test_refuses_a_foreign_cell_file(fresh_scan):
    cells = fresh_scan / "cells"
    shutil.copy(cells / "depth=1,n_train=200.nc", cells / "depth=1,n_train=400.nc")
    before = snapshot(fresh_scan)
    with pytest.raises(MfphysError, match="not a cell of this scan"):
        scan.run_scan(tiny_spec(), fresh_scan)
    assert snapshot(fresh_scan) == before


def test_diverging_cell_is_recorded_and_the_scan_goes_on(tmp_path):
    spec = tiny_spec(depth="1", n_train="200,400", lr="0.1,1e9")
    report = scan.run_scan(spec, tmp_path / "s")
    assert (report.done, report.failed, report.total) == (2, 2, 4)
    assert [k for k, _ in report.failed_cells] == ["depth=1,n_train=200,lr=1000000000.0",
                                                   "depth=1,n_train=400,lr=1000000000.0"]
    rec = json.loads((tmp_path / "s" / "cells" / "depth=1,n_train=200,lr=1000000000.0.failed.json").read_text())
    assert "diverged" in rec["error"] and rec["error_type"] == "DivergenceError"
    assert rec["config_hash"] == spec.cells()[1].config_hash and "traceback" not in rec
    ds = scan.open_scan(tmp_path / "s")
    assert list(ds.status.sel(depth=1, lr=1e9).values) == ["failed", "failed"]
    assert "diverged" in str(ds.error.sel(depth=1, n_train=200, lr=1e9).values)
    assert np.isnan(ds.test_error.sel(lr=1e9)).all() and np.isfinite(ds.test_error.sel(lr=0.1)).all()
    assert scan.scan_status(tmp_path / "s")["failed"] == 2
    assert ds.lr_schedule.dims == ("depth", "n_train", "lr", "epoch")  # the run's lr, renamed beside coord lr
    np.testing.assert_array_equal(ds.lr_schedule.sel(depth=1, n_train=200, lr=0.1).values, 0.1)
    kept = scan.run_scan(spec, tmp_path / "s", retry_failed=False)
    assert (kept.trained, kept.failed) == (0, 2)
    again = scan.run_scan(spec, tmp_path / "s")  # retried by default (and diverges again)
    assert (again.trained, again.failed, again.skipped) == (2, 2, 2)


def test_crashing_cell_keeps_its_traceback_and_retry_clears_it(tmp_path, monkeypatch):
    real = runner.train_run  # what trains a cell (with its checkpoints)

    def flaky(plan, **kw):
        if plan.config.n_train == 400:
            raise ZeroDivisionError("boom")
        return real(plan, **kw)

    monkeypatch.setattr(runner, "train_run", flaky)
    spec = tiny_spec(depth="1,2", n_train="200,400")
    report = scan.run_scan(spec, tmp_path / "s", pack=False)  # each cell alone, through train_run
    assert (report.done, report.failed) == (2, 2)
    rec = json.loads((tmp_path / "s" / "cells" / "depth=2,n_train=400.failed.json").read_text())
    assert rec["error"] == "ZeroDivisionError: boom" and "flaky" in rec["traceback"]
    monkeypatch.setattr(runner, "train_run", real)
    report = scan.run_scan(spec, tmp_path / "s")
    assert (report.trained, report.done, report.failed) == (2, 4, 0)
    assert not list((tmp_path / "s" / "cells").glob("*.failed.json"))


def test_unreachable_scheduler_writes_nothing(tmp_path):
    with pytest.raises(MfphysError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        scan.run_scan(tiny_spec(), tmp_path / "s", scheduler="tcp://127.0.0.1:1", connect_timeout=0.5)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("kw, message", [({"workers": 0}, "--workers must be >= 1"),
                                         ({"workers": 2, "scheduler": "tcp://x:1"}, "give one of --workers")])
def test_bad_cluster_options(tmp_path, kw, message):
    with pytest.raises(MfphysError, match=message):
        scan.run_scan(tiny_spec(), tmp_path / "s", **kw)
    assert not (tmp_path / "s").exists()


def test_reuse_copies_matching_cells_of_another_scan(done_scan, tmp_path):
    bigger = tiny_spec(depth="1,2,3,4")
    other_epochs = tmp_path / "e4"  # same keys, another configuration: never taken
    scan.run_scan(tiny_spec(depth="4", n_train="200", epochs="4"), other_epochs)
    started = []
    report = scan.run_scan(bigger, tmp_path / "big", reuse=[other_epochs, done_scan[0]],
                           callback=lambda ev: ev.kind == "cell_start" and started.append(ev.cell.key))
    assert started == ["depth=4,n_train=200", "depth=4,n_train=400", "depth=4,n_train=600"]
    assert (report.reused, report.trained, report.done) == (9, 3, 12)
    for cell in tiny_spec().cells():  # byte-identical copies
        assert (tmp_path / "big" / "cells" / f"{cell.key}.nc").read_bytes() == \
            (done_scan[0] / "cells" / f"{cell.key}.nc").read_bytes()
    with pytest.raises(MfphysError, match="not an mfphys scan folder"):
        scan.run_scan(bigger, tmp_path / "big2", reuse=[tmp_path])


# --- cells checkpoint while they train ---------------------------------------------------------------

#: a one-cell scan long enough to be killed in the middle of its training
LONG_CELL = dict(depth="1", n_train="200", epochs="40", batch_size="50")


def killable_scan(folder) -> str:
    """The code of a process that runs the long-cell scan with a checkpoint after every epoch."""
    return (f"from mfphys import scan\nfrom mfphys.runfile import CheckpointPolicy\n"
            f"from tests.helpers import tiny_spec\n"
            f"scan.run_scan(tiny_spec(**{LONG_CELL!r}), {str(folder)!r},\n"
            f"              checkpoint=CheckpointPolicy(every=1, seconds=0))\n")


def test_a_scan_killed_in_the_middle_of_a_cell_resumes_it(tmp_path):
    spec = tiny_spec(**LONG_CELL)
    (cell,) = spec.cells()
    target = int(np.random.default_rng().integers(2, 30))
    proc = start_python(killable_scan(tmp_path / "s"))
    partial = tmp_path / "s" / "cells" / f"{cell.key}.partial.nc"
    wait_for_checkpoint(partial, target, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n = int(store.read_attrs(partial)["epochs_done"])
    assert target <= n < 40 and store.read_attrs(partial)["config_hash"] == cell.config_hash
    assert scan.scan_status(tmp_path / "s")["pending"] == 1  # a checkpoint is not a finished cell
    first = []
    report = scan.run_scan(spec, tmp_path / "s", checkpoint=CheckpointPolicy(every=1, seconds=0),
                           callback=lambda ev: ev.kind == "epoch" and first.append(ev.record.epoch))
    assert report.done == 1 and first[0] == n + 1  # resumed after its checkpoint, not restarted
    assert sorted(p.name for p in (tmp_path / "s" / "cells").iterdir()) == [f"{cell.key}.nc"]
    scan.run_scan(spec, tmp_path / "ref", checkpoint=None)  # the uninterrupted cell
    resumed, ref = store.open_run(tmp_path / "s" / "cells" / f"{cell.key}.nc"), \
        store.open_run(tmp_path / "ref" / "cells" / f"{cell.key}.nc")
    assert_same_run(resumed, ref)
    assert "adam_mu_m_1" not in resumed and resumed.attrs["status"] == "done"  # a cell file holds no state


def test_a_stale_checkpoint_of_another_configuration_is_replaced(tmp_path):
    spec = tiny_spec(depth="1", n_train="200")
    (cell,) = spec.cells()
    folder = tmp_path / "s"
    scan.run_scan(spec, folder)
    (folder / "cells" / f"{cell.key}.nc").unlink()
    stale = folder / "cells" / f"{cell.key}.partial.nc"
    stale.write_text("left by something else")
    report = scan.run_scan(spec, folder, checkpoint=CheckpointPolicy(every=1, seconds=0))
    assert report.trained == 1 and not stale.exists()


def test_cell_files_carry_the_dynamics(done_scan):
    folder, _ = done_scan
    ds = store.open_run(scan.cell_path(folder, depth=2, n_train=400))
    assert list(ds.dyn_epoch.values) == [0, 1, 2, 3] and ds.dyn_frac_vip.shape == (2, 4, 3)
    np.testing.assert_array_equal(ds.dyn_frac_vip.sel(dyn_epoch=3).values, ds.frac_vip.values)
