"""Snapshot tests (pytest-textual-snapshot) of the run view and the scan view: they guard the look.

After a deliberate change of the look: ``pytest tests/tui/test_snapshots.py --snapshot-update``,
then check the SVGs in tests/tui/__snapshots__/test_snapshots/.
"""

from __future__ import annotations

from tests.helpers import SIZE, app_for, select


def test_snapshot_run_view(runs_dir, snap_compare):
    async def show(pilot):
        await select(pilot.app, pilot, "gbp")

    assert snap_compare(app_for(runs_dir), terminal_size=SIZE, run_before=show)


def test_snapshot_scan_view(runs_dir, snap_compare):
    async def show(pilot):
        await select(pilot.app, pilot, "scan")
        await pilot.press("p", "p", "p", "v")  # frac_vip, layer 1, values on

    assert snap_compare(app_for(runs_dir), terminal_size=SIZE, run_before=show)
