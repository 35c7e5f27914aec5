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
