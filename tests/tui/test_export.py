"""Exports of a view's numbers (CSV) and plot (PNG) (cli/tui/export.py)."""

from __future__ import annotations

import csv

import pytest

from mfphys.cli.tui.export import export_scan
from mfphys.cli.tui.models.scan_grid import load_scan, scan_grid


def test_export_scan_writes_csv_of_the_grid_and_png(runs_dir, tmp_path):
    grid = scan_grid(load_scan(runs_dir / "scan"), "sparsity", 1)
    paths = export_scan("scan", grid, tmp_path)
    assert [p.name for p in paths] == ["scan-scan-sparsity-layer1.csv", "scan-scan-sparsity-layer1.png"]
    rows = list(csv.DictReader(paths[0].open()))
    assert len(rows) == 4 and rows[0]["depth"] == "1" and rows[0]["n_train"] == "200"
    assert [float(r["sparsity_mean"]) for r in rows] == pytest.approx(grid.mean.ravel().tolist())
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left
