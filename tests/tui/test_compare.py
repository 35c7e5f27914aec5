"""Pilot tests of comparing runs (cli/tui/app.py, views.py): the runs table, its sorting, marks and
the overlay of marked runs' curves; and names that tell runs apart in the sidebar."""

from __future__ import annotations

import shutil

import pytest

from mfphys import store
from tests.helpers import SIZE, app_for, pilot_test, press_fast, screen_text, select, settle, static_text


def _table_names(app) -> list[str]:
    from mfphys.cli.tui.views import RunsTable

    table = app.query_one("#runs-table", RunsTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


@pilot_test
async def test_runs_table_lists_runs_and_sorts_by_key_and_by_header_click(runs_dir):
    from mfphys.cli.tui.views import RunsTable, RunsTableView

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        await pilot.press("t")
        await settle(app, pilot)
        assert app.view_kind == "table" and isinstance(app.focused, RunsTable)
        assert _table_names(app) == ["bp", "gbp"]  # runs only, by name
        text = screen_text(app)
        for column in ("name", "dataset", "architecture", "mode", "epochs", "accuracy", "sparsity", "VIP", "date"):
            assert column in text
        acc = {r.name: r.accuracy for r in app.query_one(RunsTableView).rows}
        await pilot.press("6")  # accuracy: the best first
        assert _table_names(app) == sorted(acc, key=acc.get, reverse=True)
        assert "sorted by accuracy ↓" in static_text(app, "#table-head")
        await pilot.press("6")  # again: the other way
        assert _table_names(app) == sorted(acc, key=acc.get)
        await pilot.press("1")
        assert _table_names(app) == ["bp", "gbp"]
        # a click on the "mode" header sorts by mode (bp < gbp), a second one the other way
        table = app.query_one("#runs-table", RunsTable)
        header = next(line for line in screen_text(app).splitlines() if "dataset" in line and "mode" in line)
        x = header.index("mode") - table.region.x + 1
        await pilot.click("#runs-table", offset=(x, 0))
        await settle(app, pilot)
        assert app.query_one(RunsTableView).sort == ("mode", False) and _table_names(app) == ["bp", "gbp"]
        await pilot.click("#runs-table", offset=(x, 0))
        await settle(app, pilot)
        assert app.query_one(RunsTableView).sort == ("mode", True) and _table_names(app) == ["gbp", "bp"]
        await pilot.press("slash", "g", "b", "enter")  # the filter applies to the table; enter: back to it
        await settle(app, pilot)
        assert _table_names(app) == ["gbp"] and isinstance(app.focused, RunsTable)
        await pilot.press("slash", "escape")  # the list is hidden: escape also returns to the table
        await settle(app, pilot)
        assert _table_names(app) == ["gbp", "bp"] and isinstance(app.focused, RunsTable)
        await pilot.press("t")  # back to the run view
        assert app.view_kind == "run" and app.current.name == "gbp"


@pilot_test
async def test_two_marked_runs_are_overlaid_in_the_run_view(runs_dir):
    from mfphys.cli.tui.widgets import LinePlot

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        await pilot.press("t")
        await settle(app, pilot)
        press_fast(app, "space", "down", "space")  # mark bp and gbp, typed fast: in that order
        await settle(app, pilot)
        assert [p.name for p in app.marked] == ["bp.nc", "gbp.nc"]
        assert screen_text(app).count("●") >= 2
        await pilot.press("enter")  # open the run under the cursor: gbp
        await settle(app, pilot)
        assert app.view_kind == "run" and app.current.name == "gbp"
        for plot in ("#plot-loss", "#plot-acc"):
            series = app.query_one(plot, LinePlot).series
            assert [s.label for s in series] == ["gbp", "bp"]  # named after the runs; bp is not drawn twice
            assert len({s.colour for s in series}) == 2
        assert "overlay: ━ gbp  ━ bp" in static_text(app, "#run-head")
        text = screen_text(app)
        assert "━ gbp  ━ bp" in text
        await pilot.press("M")  # no marks: the BP baseline is back
        await settle(app, pilot)
        assert [s.label for s in app.query_one("#plot-loss", LinePlot).series] == ["gbp", "BP"]
        await select(app, pilot, "bp")
        await pilot.press("space")  # marks from the sidebar
        await select(app, pilot, "gbp")
        assert [s.label for s in app.query_one("#plot-acc", LinePlot).series] == ["gbp", "bp"]
        assert "● bp" in screen_text(app)


@pilot_test
async def test_export_of_the_runs_table_and_of_an_overlay(runs_dir, tmp_path):
    import csv

    app = app_for(runs_dir, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        await pilot.press("t")
        await settle(app, pilot)
        await pilot.press("space", "e")  # mark bp, export the table
        await settle(app, pilot)
        (path,) = app.last_export
        rows = list(csv.DictReader(path.open()))
        assert path.name == "runs-runs.csv" and [r["name"] for r in rows] == ["bp", "gbp"]
        await pilot.press("t", "e")
        await settle(app, pilot)
        curves = next(p for p in app.last_export if p.name == "gbp-run-curves.csv")
        header = next(csv.reader(curves.open()))
        assert "bp:test_acc_mean" in header and "bp_test_acc_mean" not in header


def _copy(src, dst, **attrs):
    ds = store.open_run(src)
    ds.attrs.update(attrs)
    store.write_atomic(ds, dst)


@pilot_test
async def test_sidebar_names_tell_default_named_runs_apart(runs_dir, tmp_path):
    """Default names differ at their end (the time): they are shortened in the middle; a run's own
    name (the ``name`` attribute) is shown instead of its file name."""
    stem = "teacher-20-16-10-gbp-seed0-20260115-"
    for t in ("093000", "143000"):
        shutil.copy(runs_dir / "gbp.nc", tmp_path / f"{stem}{t}.nc")
    _copy(runs_dir / "bp.nc", tmp_path / f"{stem}180000.nc", name="wide-baseline")
    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "093000" in text and "143000" in text  # the time stamps survive
        assert "wide-baseline" in text and "180000" not in text.split("│")[0]
        await pilot.press("slash", *"wide", "enter")  # the own name filters too
        await settle(app, pilot)
        assert [e.title for e in app.shown_entries] == ["wide-baseline"]
        assert "wide-baseline" in static_text(app, "#run-head") and "(teacher-20-16-10" in static_text(app, "#run-head")


def test_entry_prompt_keeps_both_ends_of_a_long_name():
    from pathlib import Path

    from mfphys.cli.tui.models.listing import Entry
    from mfphys.cli.tui.sidebar import entry_prompt

    name = "mnist-784-100-100-10-gbp-seed0-20261127-042936"
    first = entry_prompt(Entry(Path(name + ".nc"), name, "run", "done"), width=42).plain.splitlines()[0]
    assert len(first) <= 42 and first.startswith("mnist-784") and first.endswith("20261127-042936")
    marked = entry_prompt(Entry(Path("a.nc"), "a", "run", "done", label="my run"), marked=True).plain
    assert marked.splitlines()[0] == "● my run"


@pytest.mark.parametrize("kind", ["file", "scan"])
def test_command_opens_a_file_or_a_scan_folder_in_its_folder(runs_dir, kind):
    from mfphys.cli.tui import resolve_target

    path = runs_dir / ("gbp.nc" if kind == "file" else "scan")
    assert resolve_target(path) == (runs_dir, path)
    assert resolve_target(runs_dir) == (runs_dir, None)


@pilot_test
async def test_the_live_refresh_keeps_the_runs_tables_cursor(runs_dir):
    from mfphys.cli.tui.views import RunsTable

    app = app_for(runs_dir, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        await pilot.press("t")
        await settle(app, pilot)
        await pilot.press("down")
        table = app.query_one("#runs-table", RunsTable)
        assert table.cursor_row == 1
        await pilot.pause(1.0)  # several refreshes: the folder is listed and the rows read again
        assert table.cursor_row == 1 and app.view_kind == "table"


@pilot_test
async def test_runs_table_shows_tags_and_the_settings_that_differ_and_sorts_by_them(tmp_path):
    """``c`` adds the columns of tags and of the settings that differ (next to the name), and a
    digit sorts by them; ``mfphys tui --columns`` chooses them."""
    from mfphys.cli.tui.views import RunsTableView
    from mfphys.train import train
    from tests.helpers import tiny_config

    for name, lr, tags in (("a", 0.2, ["x"]), ("b", 0.05, []), ("c", 0.1, ["y", "z"])):
        ds = store.run_to_dataset(train(tiny_config(lr=lr, epochs=1)), name=name, tags=tags)
        store.write_atomic(ds, tmp_path / f"{name}.nc")

    def header(app) -> str:
        return next(line for line in screen_text(app).splitlines() if "dataset" in line and "architecture" in line)

    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        await settle(app, pilot)
        assert "tags" not in header(app)
        await pilot.press("c")
        await settle(app, pilot)
        assert header(app).index("name") < header(app).index("tags") < header(app).index("lr") < header(app).index(
            "dataset")
        await pilot.press("3")  # name, tags, lr: the third column, sorted as numbers
        assert app.query_one(RunsTableView).sort == ("lr", False) and _table_names(app) == ["b", "c", "a"]
        await pilot.press("3")
        assert _table_names(app) == ["a", "c", "b"]
        await pilot.press("c")
        await settle(app, pilot)
        assert "tags" not in header(app)
    app = app_for(tmp_path, columns=("seed", "note"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("t", "c", "c")  # off and on again: the chosen columns
        await settle(app, pilot)
        assert "seed" in header(app) and "note" in header(app) and "tags" not in header(app)
