"""Oracles for mfphys.scan: grids, resume, failures and the combined view.

Cells are tiny teacher-student runs (20 inputs, width 16, 3 epochs), so a 3 x 3 scan takes
about a second. Oracles: the combined view against the cell files it was built from and
against an independent ``train`` of the same configuration; resume against the bytes and
mtimes of the files left behind; refusals against an unchanged folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mfphys import scan, store
from mfphys.errors import MfphysError
from mfphys.train import TrainConfig, train
from tests.helpers import snapshot

TINY = dict(dataset="teacher", input_dim="20", width="16", epochs="3", batch_size="100", replicas="2", n_test="200",
            backend="numpy")
GRID = dict(depth="1,2,3", n_train="200,400,600")


def tiny_spec(**over):
    return scan.spec_from_options({**GRID, **TINY, **over})


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def done_scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan") / "tiny"
    report = scan.run_scan(tiny_spec(), folder)
    return folder, report


@pytest.fixture
def fresh_scan(done_scan, tmp_path):
    """A private copy of the finished tiny scan, to damage."""
    folder = tmp_path / "tiny"
    shutil.copytree(done_scan[0], folder)
    return folder


# --- the specification ------------------------------------------------------------------------------


@pytest.mark.parametrize("coords, key", [
    ((("depth", 2), ("n_train", 1000)), "depth=2,n_train=1000"),
    ((("lr", 1e-5), ("dataset", "fashion-mnist")), "lr=1e-05,dataset=fashion-mnist"),
    ((("host_noise", True), ("width", 100)), "host_noise=true,width=100"),
    ((("dataset", "a/b c"),), "dataset=a%2Fb%20c"),
])
def test_cell_key(coords, key):
    assert scan.cell_key(coords) == key


def test_cells_architecture_and_order():
    spec = tiny_spec()
    cells = spec.cells()
    assert spec.dims == ("depth", "n_train") and spec.shape == (3, 3)
    assert [c.key for c in cells[:4]] == ["depth=1,n_train=200", "depth=1,n_train=400", "depth=1,n_train=600",
                                          "depth=2,n_train=200"]
    for c in cells:
        d, p = dict(c.coords)["depth"], dict(c.coords)["n_train"]
        assert c.config.layers == (20,) + (16,) * d + (10,)
        assert c.config.n_train == p and c.config.replicas == 2 and c.config.seed == 0
        assert c.config_hash == hashlib.sha256(c.config.to_json().encode()).hexdigest()


def test_list_values_are_scanned_single_values_fixed():
    spec = tiny_spec(lr="0.1,0.05", width="8")
    assert spec.dims == ("depth", "n_train", "lr") and spec.shape == (3, 3, 2)
    assert spec.fixed_dict["width"] == 8 and "lr" not in spec.fixed_dict
    assert {c.config.lr for c in spec.cells()} == {0.1, 0.05}


def test_scan_hash_pins_the_configuration():
    assert tiny_spec().scan_hash() == tiny_spec(epochs="3.0").scan_hash()  # same values, other spelling
    assert tiny_spec().scan_hash() != tiny_spec(epochs="4").scan_hash()
    assert tiny_spec().scan_hash() != tiny_spec(depth="3,2,1").scan_hash()  # grid order is part of it
    assert tiny_spec().default_name() == f"teacher-scan-{tiny_spec().scan_hash()[:10]}"


@pytest.mark.parametrize("over, message", [
    ({"depth": "1,,2"}, "malformed --depth"),
    ({"depth": "1,x"}, "depth takes int"),
    ({"depth": "1,1"}, "lists a value twice"),
    ({"depth": None}, "give the depth values"),
    ({"depth": "-1"}, "must be >= 0"),
    ({"replicas": "2,3"}, "replicas cannot be scanned"),
    ({"batch_size": "500"}, "--batch-size 500 is larger than n_train 200"),
    ({"dataset": "mnist"}, "784 pixels"),
    ({"lr": "-1"}, "--lr must be a positive"),
    ({"lr": "nan"}, "lr takes float"),
    ({"activation": "foo"}, "unknown --activation"),
    ({"name": "../x"}, "plain folder name"),
])
def test_bad_options(over, message):
    opts = {**GRID, **TINY, **over}
    name = opts.pop("name", None)
    with pytest.raises(MfphysError, match=message.replace("+", r"\+")):
        scan.spec_from_options({k: v for k, v in opts.items()}, name=name)


def test_unknown_parameter():
    with pytest.raises(MfphysError, match="unknown parameter 'dept'"):
        scan.ScanSpec.build({"dept": [1], "n_train": [200]})


TOML = """
name = "from-file"
[grid]
depth = [1, 2, 3]
n_train = [200, 400, 600]
[fixed]
dataset = "teacher"
input-dim = 20
width = 16
epochs = 3
batch_size = 100
replicas = 2
n_test = 200
backend = "numpy"
"""


def test_toml_equals_options(tmp_path):
    path = tmp_path / "scan.toml"
    path.write_text(TOML)
    spec = scan.ScanSpec.from_toml(path)
    assert spec.name == "from-file"
    assert spec.scan_hash() == tiny_spec().scan_hash()
    over = scan.spec_from_options({"epochs": "2", "lr": "0.1,0.2"}, config=path)  # the command line wins
    assert over.fixed_dict["epochs"] == 2 and over.dims == ("depth", "n_train", "lr")


@pytest.mark.parametrize("text, message", [
    ("[grid]\ndepth = [1,", "not valid TOML"),
    (TOML.replace("width = 16", "widht = 16"), "unknown parameter 'widht'"),
    ("depht = 1\n" + TOML, "unknown top-level key"),
    (TOML.replace("depth = [1, 2, 3]", 'depth = ["a"]'), "depth takes int"),
    (TOML.replace("depth = [1, 2, 3]", "depth = []"), "depth has no values"),
    ("grid = 3", "grid must be a table"),
])
def test_bad_toml(tmp_path, text, message):
    path = tmp_path / "scan.toml"
    path.write_text(text)
    with pytest.raises(MfphysError, match=message):
        scan.ScanSpec.from_toml(path)


def test_missing_toml(tmp_path):
    with pytest.raises(MfphysError, match="no such file"):
        scan.ScanSpec.from_toml(tmp_path / "nope.toml")


# --- a finished scan --------------------------------------------------------------------------------


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


def test_open_scan_layout(done_scan):
    ds = scan.open_scan(done_scan[0])
    assert ds.attrs["mfphys_kind"] == "scan" and json.loads(ds.attrs["grid"])["depth"] == [1, 2, 3]
    assert ds.sparsity.dims == ("depth", "n_train", "replica", "layer")
    assert ds.test_acc.dims == ("depth", "n_train", "replica", "epoch")
    assert ds.test_acc_sampled.dims == ("depth", "n_train", "replica")
    assert list(ds.layer.values) == [1, 2, 3, 4] and list(ds.replica.values) == [0, 1]
    assert (ds.status == "done").all() and (ds.error == "").all()
    for d in (1, 2, 3):  # a depth-d net has d + 1 layers; beyond them NaN
        for name in ("sparsity", "entropy", "frac_vip"):
            v = ds[name].sel(depth=d).values
            assert np.isfinite(v[..., : d + 1]).all() and np.isnan(v[..., d + 1:]).all()
    assert "pi_1" not in ds and "hist_pi" not in ds  # per-connection arrays stay in the cell files


def test_open_scan_equals_cell_files_and_direct_training(done_scan):
    folder, _ = done_scan
    ds = scan.open_scan(folder)
    for cell in tiny_spec().cells():
        run = store.open_run(folder / "cells" / f"{cell.key}.nc")
        part = ds.sel(dict(cell.coords))
        L = len(cell.config.layers) - 1
        for name in ("sparsity", "frac_vip", "entropy", "mean_xi"):
            np.testing.assert_array_equal(part[name].values[:, :L], run[name].values)
        np.testing.assert_array_equal(part.test_acc.values, run.test_acc.values)
        np.testing.assert_array_equal(part.test_error.values, 1 - run.test_acc.values[:, -1])
    cell = tiny_spec().cells()[5]  # an independent training of one cell's configuration: same numbers
    with threadpool_limits(1):  # cells train with one BLAS thread (run_scan's blas_threads=1)
        direct = store.run_to_dataset(train(cell.config))
    part = ds.sel(dict(cell.coords))
    np.testing.assert_array_equal(part.test_acc.values, direct.test_acc.values)
    np.testing.assert_array_equal(part.sparsity.values[:, : len(cell.config.layers) - 1], direct.sparsity.values)


def test_network_mean_weights_by_connections(done_scan):
    ds = scan.open_scan(done_scan[0])
    got = scan.network_mean(ds, "sparsity").sel(depth=2, n_train=600).values
    run = store.open_run(scan.cell_path(done_scan[0], depth=2, n_train=600))
    n = np.array([20 * 16, 16 * 16, 16 * 10])
    absent = [sum(int((run[f"pi_{l}"].values[r] >= 1 - 0.01).sum()) for l in (1, 2, 3)) for r in range(2)]
    np.testing.assert_allclose(got, np.array(absent) / n.sum())
    np.testing.assert_array_equal(ds.n_connections.sel(depth=2, n_train=600).values[:3], n)


def test_scan_status(done_scan):
    st = scan.scan_status(done_scan[0])
    assert {k: st[k] for k in ("total", "done", "failed", "running", "pending")} == \
        {"total": 9, "done": 9, "failed": 0, "running": 0, "pending": 0}


# --- resume and refusals ---------------------------------------------------------------------------


def test_resume_trains_only_missing_cells(fresh_scan):
    cells = fresh_scan / "cells"
    (cells / "depth=2,n_train=400.nc").unlink()
    marker = {"pid": 1, "host": "x", "owner_pid": dead_pid(), "owner_host": os.uname().nodename,
              "boot_id": scan._boot_id()}
    (cells / "depth=2,n_train=400.running").write_text(json.dumps(marker))  # left by a killed scan
    (cells / f".depth=3,n_train=200.nc.{dead_pid()}.tmp").write_bytes(b"half")  # likewise
    assert scan.scan_status(fresh_scan)["pending"] == 1  # a stale marker is not "running"
    before = snapshot(fresh_scan)
    started = []
    report = scan.run_scan(tiny_spec(), fresh_scan, callback=lambda ev: ev.kind == "cell_start" and
                           started.append(ev.cell.key))
    assert started == ["depth=2,n_train=400"] and (report.trained, report.skipped, report.done) == (1, 8, 9)
    after = snapshot(fresh_scan)
    assert {k: v for k, v in after.items() if "depth=2,n_train=400" not in k} == \
        {k: v for k, v in before.items() if "depth=2,n_train=400" not in k and not k.endswith(".tmp")}
    assert sorted(p.name for p in cells.iterdir()) == sorted(f"{c.key}.nc" for c in tiny_spec().cells())


def test_corrupt_or_vanishing_cell(fresh_scan, monkeypatch):
    bad = fresh_scan / "cells" / "depth=1,n_train=600.nc"
    bad.write_bytes(b"CDF\x01 not really")
    ds = scan.open_scan(fresh_scan)  # never fails on a damaged cell: it is not done
    assert ds.status.sel(depth=1, n_train=600) == "pending" and (ds.status == "done").sum() == 8
    assert np.isnan(ds.sparsity.sel(depth=1, n_train=600)).all()
    read = scan._cell_summary

    def vanish(path, *key):  # a cell deleted between the listing and the read
        if "depth=3,n_train=200" in str(path):
            raise MfphysError(f"cannot read {path}: FileNotFoundError")
        return read(path, *key)

    monkeypatch.setattr(scan, "_cell_summary", vanish)
    assert scan.open_scan(fresh_scan).status.sel(depth=3, n_train=200) == "pending"
    monkeypatch.undo()
    report = scan.run_scan(tiny_spec(), fresh_scan)  # a damaged cell is trained again
    assert report.trained == 1 and store.open_run(bad).attrs["config_hash"]


def test_refuses_a_different_configuration(fresh_scan):
    before = snapshot(fresh_scan)
    with pytest.raises(MfphysError, match=r"different scan configuration \(depth differs: 1,2,3 there, 1,2 here"):
        scan.run_scan(tiny_spec(depth="1,2"), fresh_scan)
    with pytest.raises(MfphysError, match=r"epochs differs: 3 there, 4 here"):
        scan.run_scan(tiny_spec(epochs="4"), fresh_scan)
    with pytest.raises(MfphysError, match=r"lr is fixed there \(0.1\), scanned here \(0.1,0.2\)"):
        scan.run_scan(tiny_spec(lr="0.1,0.2"), fresh_scan)
    assert snapshot(fresh_scan) == before


def test_refuses_a_foreign_cell_file(fresh_scan):
    cells = fresh_scan / "cells"
    shutil.copy(cells / "depth=1,n_train=200.nc", cells / "depth=1,n_train=400.nc")
    before = snapshot(fresh_scan)
    with pytest.raises(MfphysError, match="not a cell of this scan"):
        scan.run_scan(tiny_spec(), fresh_scan)
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


def test_live_marker_shows_running_and_blocks_a_second_scan(fresh_scan):
    (fresh_scan / "cells" / "depth=3,n_train=600.nc").unlink()
    marker = {"pid": os.getppid(), "host": "h", "owner_pid": os.getppid(), "owner_host": os.uname().nodename,
              "boot_id": scan._boot_id()}
    (fresh_scan / "cells" / "depth=3,n_train=600.running").write_text(json.dumps(marker))
    assert scan.scan_status(fresh_scan)["running"] == 1
    assert scan.open_scan(fresh_scan).status.sel(depth=3, n_train=600) == "running"
    with pytest.raises(MfphysError, match="being scanned right now by process"):
        scan.run_scan(tiny_spec(), fresh_scan)


# --- failures ---------------------------------------------------------------------------------------


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
    real = scan.train

    def flaky(config, **kw):
        if config.n_train == 400:
            raise ZeroDivisionError("boom")
        return real(config, **kw)

    monkeypatch.setattr(scan, "train", flaky)
    spec = tiny_spec(depth="1,2", n_train="200,400")
    report = scan.run_scan(spec, tmp_path / "s")
    assert (report.done, report.failed) == (2, 2)
    rec = json.loads((tmp_path / "s" / "cells" / "depth=2,n_train=400.failed.json").read_text())
    assert rec["error"] == "ZeroDivisionError: boom" and "flaky" in rec["traceback"]
    monkeypatch.setattr(scan, "train", real)
    report = scan.run_scan(spec, tmp_path / "s")
    assert (report.trained, report.done, report.failed) == (2, 4, 0)
    assert not list((tmp_path / "s" / "cells").glob("*.failed.json"))


# --- Dask ----------------------------------------------------------------------------------------------


def test_unreachable_scheduler_writes_nothing(tmp_path):
    with pytest.raises(MfphysError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        scan.run_scan(tiny_spec(), tmp_path / "s", scheduler="tcp://127.0.0.1:1", connect_timeout=0.5)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("kw, message", [({"workers": 0}, "--workers must be >= 1"),
                                         ({"workers": 2, "scheduler": "tcp://x:1"}, "not both")])
def test_bad_cluster_options(tmp_path, kw, message):
    with pytest.raises(MfphysError, match=message):
        scan.run_scan(tiny_spec(), tmp_path / "s", **kw)
    assert not (tmp_path / "s").exists()


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_spec().name = "x"
    assert isinstance(tiny_spec().cells()[0].config, TrainConfig)


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
