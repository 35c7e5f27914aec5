"""The family panels (cli/tui/families): one lookup, ``panels_for(model)``, for what the TUI
draws differently per model family, and a family without panels of its own (a run file with
another ``model`` attribute) opening through the generic ones."""

from __future__ import annotations

from mfphys import store
from tests.helpers import SIZE, app_for, pilot_test, select, static_text


def test_panels_for_each_family():
    from mfphys.cli.tui.families import FAMILIES, panels_for

    assert panels_for("ffn") is panels_for("") is panels_for(None) is FAMILIES["ffn"]
    ffn, rnn, toy = panels_for("ffn"), panels_for("rnn"), panels_for("toy")
    assert (ffn.part_dim, ffn.live_inputs, ffn.from_output, ffn.diagonal, ffn.evaluation, ffn.tag) == (
        "layer", True, True, False, False, "")
    assert (rnn.part_dim, rnn.live_inputs, rnn.from_output, rnn.diagonal, rnn.evaluation, rnn.psychometric,
            rnn.tag) == ("matrix", False, False, True, True, True, "rnn")
    assert toy.name == toy.tag == "toy" and toy.part_dim is None
    assert not (toy.live_inputs or toy.from_output or toy.diagonal or toy.evaluation or toy.psychometric)
    assert toy.part_of(("replica", "matrix")) == "matrix" and toy.part_of(("replica", "layer")) == "layer"
    assert toy.mode_label("gbp") == "toy gbp" and rnn.mode_label("gbp") == "rnn gbp" and ffn.mode_label("gbp") == "gbp"


def _columns(app, selector):
    from textual.widgets import DataTable

    return [str(c.label) for c in app.query_one(selector, DataTable).columns.values()]


@pilot_test
async def test_a_third_family_opens_through_the_generic_panels(rnn_dir, tmp_path):
    """Run files of a family "toy" (copies of a recurrent and a feed-forward run under that name):
    learning curves, the order table per matrix or per layer, no family-specific choice or panel."""
    folder = tmp_path / "toys"
    folder.mkdir()
    for source, name in (("rnn-mnist", "toy-matrix"), ("ffn-teacher", "toy-layer")):
        ds = store.open_run(rnn_dir / f"{source}.nc")
        ds.attrs["model"] = "toy"
        store.write_atomic(ds, folder / f"{name}.nc")
    app = app_for(folder)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "toy-matrix")
        assert app.view_kind == "run" and "toy" in app.current.model
        head = static_text(app, "#run-head")
        assert "toy gbp" in head and "test acc" in head and "quenched" not in head
        assert _columns(app, "#run-order") == ["order parameter", "input", "recurrent", "output"]
        assert not app.query_one("#run-eval").display and not app.query_one("#run-psych").display
        for action in ("toggle_inputs", "toggle_diagonal", "toggle_output"):
            assert app.shown_view.check_action(action, ()) is None
        assert app.shown_view.check_action("cycle_layer", (1,)) is True
        await pilot.press("l")
        assert "histograms, recurrent matrix (2 of 3)" in static_text(app, "#hist-head")
        await select(app, pilot, "toy-layer")
        assert _columns(app, "#run-order")[1:] == ["layer 1", "layer 2"]  # no live-inputs choice: all inputs
        assert static_text(app, "#order-note") == "±: standard error over replicas"  # no family note of its own
