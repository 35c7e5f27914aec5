"""The scan view's model (cli/tui/models/scan_grid.py): the heatmap's numbers against the cell files."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys import scan, store
from mfphys.cli.tui.models.listing import list_entries
from mfphys.cli.tui.models.scan_grid import NETWORK, cell_keys, load_scan, overlay_status, scan_grid, scan_layers


def test_scan_grid_matches_the_cell_files(runs_dir):
    """The heatmap's numbers are the replica mean and std of each cell file's own values."""
    ds = load_scan(runs_dir / "scan")
    grid = scan_grid(ds, "sparsity", 2)
    assert (grid.row_dim, grid.col_dim) == ("depth", "n_train")
    assert grid.rows.tolist() == [1, 2] and grid.cols.tolist() == [200, 400]
    err = scan_grid(ds, "test_error")
    assert err.layer is None
    for i, depth in enumerate((1, 2)):
        for j, n in enumerate((200, 400)):
            cell = store.open_run(scan.cell_path(runs_dir / "scan", depth=depth, n_train=n))
            frac = cell["frac_vip"].sel(layer=1).values
            g = scan_grid(ds, "frac_vip", 1)
            assert g.mean[i, j] == pytest.approx(frac.mean())
            assert g.spread[i, j] == pytest.approx(frac.std(ddof=1))
            assert g.values[i, j].tolist() == pytest.approx(frac.tolist())
            assert err.mean[i, j] == pytest.approx(1 - cell["test_acc"].isel(epoch=-1).values.mean())
            # layer 2 is the output layer at depth 1 and a hidden layer at depth 2; layer 3 only at depth 2
            g3 = scan_grid(ds, "frac_vip", 3)
            assert np.isfinite(g3.mean[i, j]) == (depth == 2)
            assert grid.status[i, j] == "done"


def test_scan_grid_whole_network_is_connection_weighted(runs_dir):
    ds = load_scan(runs_dir / "scan")
    assert scan_layers(ds) == [1, 2, 3, NETWORK]
    g = scan_grid(ds, "frac_vip", NETWORK)
    cell = store.open_run(scan.cell_path(runs_dir / "scan", depth=2, n_train=400))
    widths = (20, 16, 16, 10)
    n = np.array([a * b for a, b in zip(widths[:-1], widths[1:])])
    expected = (cell["frac_vip"].values * n).sum(axis=1) / n.sum()
    assert g.values[1, 1].tolist() == pytest.approx(expected.tolist())


def test_overlay_status_marks_cells_finished_since_the_last_read(broken_dir):
    ds = load_scan(broken_dir / "writing-scan")
    entry = next(e for e in list_entries(broken_dir) if e.name == "writing-scan")
    keys = cell_keys(ds)
    assert keys[0, 0] == "depth=1,n_train=200"
    fresh = dict(entry.cell_status)
    assert overlay_status(ds, entry.cell_status).tolist() == [["done", "running"], ["failed", "pending"]]
    fresh[keys[1, 1]] = "done"  # finished after ds was read
    over = overlay_status(ds, tuple(fresh.items()))
    assert over[1, 1] == "unread"
    grid = scan_grid(ds, "test_error", overlay=over)
    assert grid.status[1, 1] == "unread" and grid.error[1, 0].startswith("training diverged")


def test_parameters_have_one_name_per_quantity(runs_dir):
    from mfphys.cli.tui.models.scan_grid import scan_params

    params = scan_params(load_scan(runs_dir / "scan"))
    assert "sparsity" in params and "frac_uip" not in params  # the same set (pi >= 1 - tol)
    assert not [p for p in params if p.endswith("_live")]  # live numbers are a choice (inputs), not names
    assert "frac_uip_exact" in params  # exact equality is another set: it stays


def test_layer_1_reads_live_inputs_by_default(runs_dir):
    ds = load_scan(runs_dir / "scan")
    live = scan_grid(ds, "entropy", 1)
    assert live.inputs == "live"
    assert live.mean[0, 0] == pytest.approx(float(ds["entropy_live"].isel(depth=0, n_train=0, layer=0).mean()))
    assert scan_grid(ds, "entropy", 1, inputs="all").inputs == "all"
    assert scan_grid(ds, "entropy", 2).inputs is None  # live inputs change layer 1 only
    assert scan_grid(ds, "test_error").inputs is None


def test_whole_network_live_mean_weights_layer_1_by_live_connections(runs_dir):
    ds = load_scan(runs_dir / "scan")
    first = ds["layer"] == 1
    assert (ds["n_connections_live"] == ds["n_connections"]).where(ds["n_connections"].notnull(), True).all()
    # teacher data: every input varies; pretend half of them are dead
    half = ds.assign(n_connections_live=ds["n_connections_live"].where(~first, ds["n_connections_live"] * 0.5))
    g = scan_grid(half, "entropy", NETWORK)
    cell = store.open_run(scan.cell_path(runs_dir / "scan", depth=1, n_train=200))
    n = np.array([0.5 * 20 * 16, 16 * 10])  # half the inputs live: half of layer 1's connections count
    want = (cell["entropy_live"].values * n).sum(axis=1) / n.sum()
    assert g.values[0, 0].tolist() == pytest.approx(want.tolist())
    assert g.inputs == "live"


def test_layers_counted_from_the_output_line_up_depths(runs_dir):
    from mfphys.cli.tui.models.scan_grid import layer_label

    ds = load_scan(runs_dir / "scan")
    assert scan_layers(ds, from_output=True) == [-1, -2, -3, NETWORK]
    assert [layer_label(x) for x in (-1, -2, -3, 2, NETWORK)] == ["output layer", "output-1", "output-2", "layer 2",
                                                                  "whole network"]
    out = scan_grid(ds, "frac_vip", -1)
    below = scan_grid(ds, "frac_vip", -3)
    for i, depth in enumerate((1, 2)):
        for j, n in enumerate((200, 400)):
            cell = store.open_run(scan.cell_path(runs_dir / "scan", depth=depth, n_train=n))
            # the output layer is layer depth + 1 in every cell
            assert out.mean[i, j] == pytest.approx(float(cell["frac_vip_live"].sel(layer=depth + 1).mean()))
            assert np.isfinite(below.mean[i, j]) == (depth == 2)  # output-2 exists only at depth 2


def test_trajectories_of_a_row_or_column_end_at_the_heatmap(runs_dir):
    """The parameter against epoch per cell of the cursor's row or column: its last recorded
    epoch is what the heatmap shows, for one layer, the whole network and layers from the output."""
    from mfphys.cli.tui.models.scan_grid import scan_trajectories, trajectory_source, trajectory_table

    ds = load_scan(runs_dir / "scan")
    assert trajectory_source(ds, "frac_vip") == "dyn_frac_vip" and trajectory_source(ds, "test_error") == "test_acc"
    assert trajectory_source(ds, "sampled_error") is None
    assert scan_trajectories(ds, "sampled_error", cursor=(0, 0)) is None
    for param, layer in (("frac_vip", 1), ("entropy", NETWORK), ("sparsity", -1), ("test_error", None)):
        grid = scan_grid(ds, param, layer)
        row = scan_trajectories(ds, param, layer, along="row", cursor=(1, 0))
        assert (row.fixed, row.line_dim, row.labels, row.status) == (("depth", 2), "n_train", (200, 400),
                                                                     ("done", "done"))
        np.testing.assert_allclose(row.mean[:, -1], grid.mean[1, :])
        col = scan_trajectories(ds, param, layer, along="column", cursor=(0, 1))
        assert (col.fixed, col.line_dim, col.labels) == (("n_train", 400), "depth", (1, 2))
        np.testing.assert_allclose(col.mean[:, -1], grid.mean[:, 1])
        assert row.x.tolist() == ([1, 2] if param == "test_error" else [0, 1, 2])
    header, rows = trajectory_table(scan_trajectories(ds, "frac_vip", 1, cursor=(0, 0)))
    assert header == ["epoch", "n_train=200", "n_train=400"] and [r[0] for r in rows] == [0, 1, 2]
    assert scan_trajectories(ds, "frac_vip", 1, inputs="live").inputs == "live"


def test_an_adaptive_scan_is_drawn_on_the_grid_of_its_cells(tmp_path):
    """An adaptive scan's cells sit at their own coordinates; places no cell sampled are pending,
    and the markers of running cells (scan_status) land on the cells they belong to."""
    pytest.importorskip("adaptive")
    spec = scan.AdaptiveSpec.build({"alpha": (1, 20)}, discrete={"depth": [1, 2]},
                                   fixed={"dataset": "teacher", "input_dim": 20, "width": 8, "epochs": 1,
                                          "replicas": 2, "batch_size": 10, "n_test": 100, "backend": "numpy"})
    folder = tmp_path / "ad"
    scan.run_adaptive_scan(spec, folder, cells=5)
    ds = load_scan(folder)
    grid = scan_grid(ds, "sparsity", NETWORK)
    assert (grid.row_dim, grid.col_dim) == ("depth", "alpha")
    assert grid.rows.tolist() == [1, 2] and grid.cols[0] == 1.0 and grid.cols[-1] == 20.0
    assert (grid.status == "done").sum() == 5 and (grid.status == "pending").sum() == grid.status.size - 5
    assert np.isfinite(grid.mean[grid.status == "done"]).all() and np.isnan(grid.mean[grid.status == "pending"]).all()
    keys = cell_keys(ds)
    cells = scan.scan_status(folder)["cells"]
    assert {keys[i] for i in zip(*np.nonzero(grid.status == "done"))} == set(cells)
    key = keys[0, 0]
    assert overlay_status(ds, ((key, "running"),))[0, 0] == "running"
