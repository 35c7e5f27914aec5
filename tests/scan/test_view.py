"""Oracles for mfphys.scan.view: the combined view against the cell files it was built from,
against an independent ``train`` of the same configuration, and on damaged or vanishing cells.
"""

from __future__ import annotations

import json

import numpy as np
from threadpoolctl import threadpool_limits

from mfphys import scan, store
from mfphys.errors import MfphysError
from mfphys.scan import view
from mfphys.train import train
from tests.helpers import tiny_spec


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


def test_corrupt_or_vanishing_cell(fresh_scan, monkeypatch):
    bad = fresh_scan / "cells" / "depth=1,n_train=600.nc"
    bad.write_bytes(b"CDF\x01 not really")
    ds = scan.open_scan(fresh_scan)  # never fails on a damaged cell: it is not done
    assert ds.status.sel(depth=1, n_train=600) == "pending" and (ds.status == "done").sum() == 8
    assert np.isnan(ds.sparsity.sel(depth=1, n_train=600)).all()
    read = view._cell_summary

    def vanish(path, *key):  # a cell deleted between the listing and the read
        if "depth=3,n_train=200" in str(path):
            raise MfphysError(f"cannot read {path}: FileNotFoundError")
        return read(path, *key)

    monkeypatch.setattr(view, "_cell_summary", vanish)
    assert scan.open_scan(fresh_scan).status.sel(depth=3, n_train=200) == "pending"
    monkeypatch.undo()
    report = scan.run_scan(tiny_spec(), fresh_scan)  # a damaged cell is trained again
    assert report.trained == 1 and store.open_run(bad).attrs["config_hash"]


def test_open_scan_carries_the_dynamics(done_scan):
    folder, _ = done_scan
    ds = scan.open_scan(folder)
    assert list(ds.dyn_epoch.values) == [0, 1, 2, 3]
    assert ds.dyn_sparsity.dims == ("depth", "n_train", "replica", "dyn_epoch", "layer")
    cell = store.open_run(scan.cell_path(folder, depth=1, n_train=400))
    np.testing.assert_array_equal(ds.dyn_sparsity.sel(depth=1, n_train=400, layer=[1, 2]).values,
                                  cell.dyn_sparsity.values)
    assert np.isnan(ds.dyn_sparsity.sel(depth=1, layer=[3, 4])).all()  # no such layers at depth 1
    np.testing.assert_array_equal(ds.dyn_entropy.sel(dyn_epoch=3).values, ds.entropy.values)
