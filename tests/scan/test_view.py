"""Oracles for mfphys.scan.view: the combined view against the cell files it was built from,
against an independent ``train`` of the same configuration, and on damaged or vanishing cells.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
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


def test_select_layer_counts_from_the_output(done_scan):
    ds = scan.open_scan(done_scan[0])
    out = scan.select_layer(ds, "frac_vip", -1)  # the output layer: layer depth + 1 in every cell
    assert out.dims == ("depth", "n_train", "replica")
    for d in (1, 2, 3):
        np.testing.assert_array_equal(out.sel(depth=d).values, ds.frac_vip.sel(depth=d, layer=d + 1).values)
    last_hidden = scan.select_layer(ds, "entropy", -2)
    np.testing.assert_array_equal(last_hidden.sel(depth=3).values, ds.entropy.sel(depth=3, layer=3).values)
    deepest = scan.select_layer(ds, "sparsity", -4)  # only depth 3 has four layers
    assert np.isnan(deepest.sel(depth=[1, 2])).all() and np.isfinite(deepest.sel(depth=3)).all()
    np.testing.assert_array_equal(scan.select_layer(ds, "sparsity", 2).values, ds.sparsity.sel(layer=2).values)
    with pytest.raises(MfphysError, match="counted from 1"):
        scan.select_layer(ds, "sparsity", 0)


def test_network_mean_live_counts_live_connections_of_layer_1(fresh_scan):
    """Teacher inputs never stay constant: pretend 5 of the 20 were dead in one cell file."""
    import netCDF4

    path = scan.cell_path(fresh_scan, depth=1, n_train=400)
    run = store.open_run(path)
    with netCDF4.Dataset(path, "a") as nc:
        dead = nc["dead_inputs"][:]
        dead[:5] = 1
        nc["dead_inputs"][:] = dead
        v = nc["sparsity_live"][:]
        v[:, 0] = 0.5  # (replica, layer): a layer-1 value over live inputs the test knows
        nc["sparsity_live"][:] = v
    ds = scan.open_scan(fresh_scan)
    cell = ds.sel(depth=1, n_train=400)
    np.testing.assert_array_equal(cell.n_connections_live.values[:2], [16 * 15, 16 * 10])
    np.testing.assert_array_equal(cell.n_connections.values[:2], [16 * 20, 16 * 10])
    want = (0.5 * 16 * 15 + run.sparsity.sel(layer=2).values * 160) / (16 * 15 + 160)
    np.testing.assert_allclose(scan.network_mean(ds, "sparsity", live=True).sel(depth=1, n_train=400).values, want)
    np.testing.assert_allclose(scan.network_mean(ds, "sparsity", live=False).sel(depth=1, n_train=400).values,
                               (run.sparsity.values * [320, 160]).sum(axis=1) / 480)
    # one default everywhere (scan-plot, the scan table, the TUI): live inputs
    np.testing.assert_array_equal(scan.network_mean(ds, "sparsity").values,
                                  scan.network_mean(ds, "sparsity", live=True).values)
    np.testing.assert_array_equal(scan.select_layer(ds, "sparsity", 1).values,
                                  scan.select_layer(ds, "sparsity", 1, live=True).values)


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
    # (the cell files themselves: with the index the cell is not read at all)
    assert scan.open_scan(fresh_scan, index=False).status.sel(depth=3, n_train=200) == "pending"
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


def test_network_mean_and_select_layer_keep_the_dynamics_epochs(done_scan):
    """The whole-network mean and layers counted from the output work on the dyn_* variables too:
    their dyn_epoch dimension is kept, and the last recorded epoch is the final value."""
    ds = scan.open_scan(done_scan[0])
    whole = scan.network_mean(ds, "dyn_frac_vip", live=True)
    assert whole.dims == ("depth", "n_train", "replica", "dyn_epoch")
    np.testing.assert_allclose(whole.isel(dyn_epoch=-1).values, scan.network_mean(ds, "frac_vip", live=True).values)
    out = scan.select_layer(ds, "dyn_entropy", -1)
    assert out.dims == ("depth", "n_train", "replica", "dyn_epoch")
    np.testing.assert_array_equal(out.isel(dyn_epoch=-1).values, scan.select_layer(ds, "entropy", -1).values)
    np.testing.assert_array_equal(scan.select_layer(ds, "dyn_sparsity", 1, live=True).isel(dyn_epoch=-1).values,
                                  ds.sparsity_live.sel(layer=1).values)
