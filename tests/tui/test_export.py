"""Exports of a view's numbers (CSV) and plot (PNG) (cli/tui/export.py)."""

from __future__ import annotations

import csv

import pytest

from mfphys.cli.tui.export import export_scan
from mfphys.cli.tui.models.scan_grid import load_scan, scan_grid


def test_export_scan_writes_csv_of_the_grid_and_png(runs_dir, tmp_path):
    grid = scan_grid(load_scan(runs_dir / "scan"), "sparsity", 1)
    paths = export_scan("scan", grid, tmp_path)
    # layer 1 over live inputs (the default) says so in the name
    assert [p.name for p in paths] == ["scan-scan-sparsity-layer1-live.csv", "scan-scan-sparsity-layer1-live.png"]
    rows = list(csv.DictReader(paths[0].open()))
    assert len(rows) == 4 and rows[0]["depth"] == "1" and rows[0]["n_train"] == "200"
    assert [float(r["sparsity_mean"]) for r in rows] == pytest.approx(grid.mean.ravel().tolist())
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_exported_heatmap_has_depth_1_at_the_top_as_the_tui(runs_dir):
    """The PNG and the TUI's heatmap put the first row (depth 1) in the same place: the top."""
    from mfphys.cli.tui.export import scan_figure
    from mfphys.cli.tui.widgets import heatmap_text

    grid = scan_grid(load_scan(runs_dir / "scan"), "test_error")
    ax = scan_figure("scan", grid).axes[0]
    assert ax.yaxis_inverted()  # row 0 drawn at the top
    bottom, top = ax.get_ylim()
    assert bottom > top
    labels = {round(t): lab.get_text() for t, lab in zip(ax.get_yticks(), ax.get_yticklabels())}
    assert labels[0] == "1" and labels[1] == "2"
    text = heatmap_text(grid, 60, 20).plain.splitlines()
    row_of = {d: next(i for i, line in enumerate(text) if line.split()[:1] == [d]) for d in ("1", "2")}
    assert row_of["1"] < row_of["2"]  # the terminal draws depth 1 above depth 2 too


def test_export_names_say_how_layers_are_counted_and_which_inputs(runs_dir, tmp_path):
    from mfphys.cli.tui.export import scan_stem
    from mfphys.cli.tui.models.scan_grid import NETWORK

    ds = load_scan(runs_dir / "scan")
    assert scan_stem("s", scan_grid(ds, "sparsity", 2)) == "s-scan-sparsity-layer2"  # live inputs do not matter
    assert scan_stem("s", scan_grid(ds, "sparsity", 1, inputs="all")) == "s-scan-sparsity-layer1"
    assert scan_stem("s", scan_grid(ds, "entropy", NETWORK)) == "s-scan-entropy-layerall-live"
    # the output layer is never layer 1 here (depth >= 1); output-1 is layer 1 at depth 1
    assert scan_stem("s", scan_grid(ds, "frac_vip", -1)) == "s-scan-frac_vip-layerout"
    assert scan_stem("s", scan_grid(ds, "frac_vip", -2)) == "s-scan-frac_vip-layerout-1-live"
