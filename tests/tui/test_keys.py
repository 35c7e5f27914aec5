"""Pilot tests of the keyboard (cli/tui/app.py): the filter box owns the keys while it has the focus,
escape clears it from anywhere, the count says what is shown, each view keeps and shows its own
mean/spread choice, and the tab order is the documented one."""

from __future__ import annotations

from tests.helpers import SIZE, app_for, pilot_test, select, settle, static_text, type_fast


def _state(app):
    """Everything a hotkey would change: a letter typed as text must leave it alone (the views'
    choices and the app's table, marks and exports)."""
    from mfphys.cli.tui.views import RunView, ScanView

    run, scan = app.query_one(RunView), app.query_one(ScanView)
    return (scan.stat, run.curves, scan.show_values, scan.part, run.layer_index, scan.param, scan.inputs,
            run.inputs, scan.from_output, scan.show_dynamics, run.dyn_param, app.table_mode, list(app.marked),
            list(app.last_export))


@pilot_test
async def test_typing_scan_live_q_into_the_filter_filters_and_fires_no_key(runs_dir):
    from textual.widgets import Input

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        before = _state(app)
        await pilot.press("slash", *"scan live q")
        await settle(app, pilot)
        box = app.query_one("#filter", Input)
        assert box.value == "scan live q" and app.focused is box
        assert app.is_running and _state(app) == before  # no q (quit), s, l, v, e, ... fired
        assert app.shown_entries == []  # nothing has all three words
        await pilot.press(*["backspace"] * 7)
        await settle(app, pilot)
        assert box.value == "scan" and [e.name for e in app.shown_entries] == ["scan"]
    assert app.return_code is None or app.return_code == 0


@pilot_test
async def test_fast_typing_loses_no_character_and_fires_no_key(runs_dir):
    """Keys queued before the app acted on `/` (or on the first letter typed in the list) reach the box."""
    from textual.widgets import Input

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        before = _state(app)
        type_fast(app, "/scan live q")
        await settle(app, pilot)
        box = app.query_one("#filter", Input)
        assert box.value == "scan live q" and app.is_running and _state(app) == before
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.focused is app.query_one("#entries")
        type_fast(app, "gbpslvpeq")  # g is no key: it starts the filter, and the rest follows it
        await settle(app, pilot)
        assert box.value == "gbpslvpeq" and app.is_running and _state(app) == before


@pilot_test
async def test_escape_clears_the_filter_from_anywhere(runs_dir):
    from textual.widgets import Input

    from mfphys.cli.tui.views import RunView

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        box = app.query_one("#filter", Input)
        await pilot.press("slash", "g", "b", "enter")  # filter, back to the list
        await settle(app, pilot)
        assert box.value == "gb" and app.focused is app.query_one("#entries")
        await pilot.press("escape")  # from the list
        await settle(app, pilot)
        assert box.value == "" and len(app.shown_entries) == 4
        await pilot.press("slash", "g", "b", "enter", "tab")  # focus in the run view
        await settle(app, pilot)
        assert isinstance(app.focused, RunView)
        await pilot.press("escape")
        await settle(app, pilot)
        assert box.value == "" and len(app.shown_entries) == 4 and isinstance(app.focused, RunView)
        await pilot.press("slash", "x", "escape")  # in the box: cleared, and back to the list
        await settle(app, pilot)
        assert box.value == "" and app.focused is app.query_one("#entries")


@pilot_test
async def test_the_count_says_what_is_shown_when_the_filter_hides_it(runs_dir):
    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        await pilot.press("slash", "z", "z")  # no entry has a z
        await settle(app, pilot)
        assert app.view_kind == "run"  # the run stays on screen
        assert static_text(app, "#count") == "0 of 4 entries match 'zz'; showing: gbp"
        await pilot.press("escape")
        await settle(app, pilot)
        assert static_text(app, "#count") == "4 of 4 entries"


@pilot_test
async def test_each_view_keeps_and_shows_its_own_mean_or_spread(runs_dir):
    from mfphys.cli.tui.widgets import Heatmap, LinePlot

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        assert "curves: mean over replicas" in static_text(app, "#run-head")
        await pilot.press("s")
        assert "curves: every replica" in static_text(app, "#run-head")
        assert len(app.query_one("#plot-acc", LinePlot).series) == 4
        await select(app, pilot, "scan")  # the run's choice does not carry over
        assert app.query_one(Heatmap).stat == "mean" and "mean over replicas" in static_text(app, "#scan-head")
        await pilot.press("s")
        assert "std over replicas" in static_text(app, "#scan-head")
        await select(app, pilot, "gbp")  # nor the scan's: the run view still shows every replica
        assert "curves: every replica" in static_text(app, "#run-head")
        await select(app, pilot, "scan")
        assert "std over replicas" in static_text(app, "#scan-head")


@pilot_test
async def test_tab_goes_filter_list_view_in_the_documented_order(runs_dir):
    from textual.widgets import Input

    from mfphys.cli.tui.screens import TAB_ORDER
    from mfphys.cli.tui.views import RunsTable, RunView
    from mfphys.cli.tui.widgets import Heatmap

    assert TAB_ORDER[:2] == ("filter box", "sidebar list")
    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        entries, box = app.query_one("#entries"), app.query_one("#filter", Input)
        assert app.focused is entries
        seen = []
        for _ in range(3):
            await pilot.press("tab")
            seen.append(app.focused)
        assert isinstance(seen[0], RunView) and seen[1] is box and seen[2] is entries  # the order tables are skipped
        await select(app, pilot, "scan")
        await pilot.press("tab")
        assert isinstance(app.focused, Heatmap)
        await pilot.press("shift+tab")
        assert app.focused is entries
        await pilot.press("t")  # the runs table: the list is hidden, filter <-> table
        await settle(app, pilot)
        assert isinstance(app.focused, RunsTable)
        await pilot.press("tab")
        assert app.focused is box
        await pilot.press("tab")
        assert isinstance(app.focused, RunsTable)


@pilot_test
async def test_a_single_file_opens_its_folder_with_that_entry_shown(runs_dir):
    app = app_for(runs_dir, select=runs_dir / "pert.nc")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.current.name == "pert" and app.view_kind == "perturbation"
        assert [e.name for e in app.shown_entries] == ["bp", "gbp", "pert", "scan"]
        assert app.query_one("#entries").highlighted == 2


@pilot_test
async def test_the_inputs_choice_applies_to_both_views(runs_dir):
    """`i` is one choice for the run and the scan view (docs/tui.md): made in one, kept in the other."""
    from mfphys.cli.tui.widgets import Heatmap

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        await pilot.press("i")
        assert "all inputs" in static_text(app, "#order-note")
        await select(app, pilot, "scan")
        heat = app.query_one(Heatmap)
        while heat.grid.param != "entropy":
            await pilot.press("p")
        assert heat.grid.inputs == "all" and "layer 1 over all inputs" in static_text(app, "#scan-head")
        await pilot.press("i")
        await select(app, pilot, "gbp")
        assert "inputs that vary" in static_text(app, "#order-note")
