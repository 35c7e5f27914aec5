"""Pilot tests of the app (cli/tui/app.py, views.py, screens.py): ``App.run_test()`` drives it with
keys, and the assertions read what the widgets show through Textual's public API."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from mfphys import scan, store
from tests.helpers import (
    SIZE,
    app_for,
    mark_running,
    pilot_test,
    screen_text,
    select,
    settle,
    static_text,
    wait_until,
    write_scan,
)


@pilot_test
async def test_navigation_shows_each_kind_of_view(runs_dir):
    from textual.widgets import DataTable

    from mfphys.cli.tui.views import RunView
    from mfphys.cli.tui.widgets import Heatmap, LinePlot

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["bp", "gbp", "pert", "scan"]
        assert app.current.name == "bp" and app.view_kind == "run"
        await pilot.press("down")
        await settle(app, pilot)
        assert app.current.name == "gbp" and app.view_kind == "run"
        head = static_text(app, "#run-head")
        assert "BP baseline: bp" in head and "test acc" in head
        loss = app.query_one("#plot-loss", LinePlot)
        assert [s.label for s in loss.series] == ["gbp", "BP"]
        table = app.query_one(RunView).query_one("#run-order", DataTable)
        # one row per quantity (sparsity and frac_uip are one set); layer 1 over live inputs
        assert table.row_count == 7 and [str(c.label) for c in table.columns.values()][1:] == ["layer 1 live",
                                                                                               "layer 2"]
        await pilot.press("down")
        await settle(app, pilot)
        assert app.view_kind == "perturbation"
        labels = [str(c.label) for c in app.query_one("#pert-table", DataTable).columns.values()]
        assert labels[:3] == ["fraction", "error_vip", "error_variable"]
        await pilot.press("down")
        await settle(app, pilot)
        assert app.view_kind == "scan"
        assert app.query_one(Heatmap).grid.mean.shape == (2, 2)
        text = screen_text(app)
        assert "n_train" in text and "depth" in text and "4 of 4 entries" in text


@pilot_test
async def test_typing_filters_the_sidebar(runs_dir):
    from textual.widgets import Input

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("g", "b")  # letters that are not keys start the filter
        await settle(app, pilot)
        assert app.query_one("#filter", Input).value == "gb"
        assert [e.name for e in app.shown_entries] == ["gbp"]
        assert app.current.name == "gbp"
        assert "1 of 4 entries" in static_text(app, "#count")
        await pilot.press("escape")
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["bp", "gbp", "pert", "scan"]
        await pilot.press("slash", "s", "c", "enter")
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["scan"] and app.view_kind == "scan"
        assert app.focused is app.query_one("#entries")


@pilot_test
async def test_scan_keys_cycle_parameter_layer_values_and_spread(runs_dir):
    from mfphys.cli.tui.models.format import short
    from mfphys.cli.tui.models.scan_grid import NETWORK, scan_grid, scan_params
    from mfphys.cli.tui.widgets import Heatmap

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        params = scan_params(app.loaded.payload.ds)
        heat = app.query_one(Heatmap)
        assert heat.grid.param == params[0] == "test_error"
        await pilot.press("p")
        assert heat.grid.param == params[1]
        await pilot.press("P", "P")
        assert heat.grid.param == params[-1]
        await pilot.press("p", "p", "p")  # -> sparsity, per layer: the whole network first, as scan-plot
        assert heat.grid.param == "sparsity" and heat.grid.layer == NETWORK
        assert "whole network" in static_text(app, "#scan-head")
        await pilot.press("l")
        assert heat.grid.layer == 1 and "layer 1" in static_text(app, "#scan-head")
        await pilot.press("l")
        assert heat.grid.layer == 2
        await pilot.press("L", "L")
        assert heat.grid.layer == NETWORK
        assert "whole network" in static_text(app, "#scan-head")
        await pilot.press("p", "p")  # frac_uip -> frac_vip ... : back to a clear parameter
        await pilot.press("P", "P", "P", "P")  # test_error: numbers are distinct
        assert heat.grid.param == "test_error"
        before = screen_text(app)
        await pilot.press("v")
        after = screen_text(app)
        value = scan_grid(app.loaded.payload.ds, "test_error").mean[1, 1]

        assert heat.show_values and short(value, heat.size.width) not in before
        assert any(short(value, w) in after for w in range(3, 9))
        await pilot.press("s")
        assert heat.stat == "spread" and "std over replicas" in static_text(app, "#scan-head")
        heat.focus()
        await pilot.press("down", "right")
        assert heat.cursor == (1, 1)
        cell = static_text(app, "#scan-cell")
        assert "depth = 2, n_train = 400: done" in cell and "test_error =" in cell


@pilot_test
async def test_run_keys_change_histogram_layer_and_curves(runs_dir):
    from mfphys.cli.tui.widgets import LinePlot

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        assert "layer 1" in static_text(app, "#hist-head")
        await pilot.press("l")
        assert "layer 2" in static_text(app, "#hist-head")
        await pilot.press("l")
        assert "layer 1" in static_text(app, "#hist-head")
        await pilot.press("s")  # one curve per replica
        assert len(app.query_one("#plot-acc", LinePlot).series) == 4  # 2 gbp + 2 BP replicas
        await pilot.press("p")  # not a run key: nothing happens, nothing breaks
        assert app.view_kind == "run"


@pilot_test
async def test_export_key_writes_csv_and_png(runs_dir, tmp_path):
    app = app_for(runs_dir, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        await pilot.press("p", "p", "l", "l", "e")  # sparsity: the whole network, layer 1, layer 2
        await settle(app, pilot)
        assert sorted(p.name for p in app.last_export) == ["scan-scan-sparsity-layer2.csv",
                                                           "scan-scan-sparsity-layer2.png"]
        rows = list(csv.DictReader((tmp_path / "scan-scan-sparsity-layer2.csv").open()))
        assert [r["status"] for r in rows] == ["done"] * 4
        await select(app, pilot, "gbp")
        await pilot.press("l", "e")
        await settle(app, pilot)
        names = sorted(p.name for p in app.last_export)
        assert names == ["gbp-run-curves.csv", "gbp-run-curves.png", "gbp-run-dynamics-frac_vip.png",
                         "gbp-run-dynamics.csv", "gbp-run-hist-layer2.csv", "gbp-run-hist-layer2.png",
                         "gbp-run-order.csv"]
        curves = list(csv.DictReader((tmp_path / "gbp-run-curves.csv").open()))
        ds = store.open_run(runs_dir / "gbp.nc")
        assert [float(r["test_acc_mean"]) for r in curves] == pytest.approx(ds["test_acc"].mean("replica").values)
        assert "bp_train_loss_mean" in curves[0]
        dyn = list(csv.DictReader((tmp_path / "gbp-run-dynamics.csv").open()))  # epochs 0..3, layers 1, 1 live, 2
        assert [(r["epoch"], r["layer"], r["inputs"]) for r in dyn[:3]] == [("0", "1", "all"), ("0", "1", "live"),
                                                                            ("0", "2", "all")]
        assert len(dyn) == 4 * 3 and float(dyn[-1]["frac_vip_mean"]) == pytest.approx(
            ds["frac_vip"].sel(layer=2).mean().item())
        await select(app, pilot, "pert")
        await pilot.press("e")
        await settle(app, pilot)
        assert [p.name for p in app.last_export] == ["pert-perturbation-error.csv", "pert-perturbation-error.png"]


@pilot_test
async def test_export_to_an_unwritable_place_is_a_notice_not_a_crash(runs_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = app_for(runs_dir, export_dir=blocker / "exports")
    notes = []
    app.notify = lambda message, **kw: notes.append((kw.get("title"), message))
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        await pilot.press("e")
        await settle(app, pilot)
        assert app.last_export == [] and app.is_running
        assert notes and notes[0][0] == "export failed" and "cannot write" in notes[0][1]


@pilot_test
async def test_help_screen_lists_every_key(runs_dir):
    from mfphys.cli.tui.app import MfphysTUI
    from mfphys.cli.tui.screens import HelpScreen, key_rows

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = [k for k, _ in app.screen.rows]
        assert keys[: len(MfphysTUI.BINDINGS)] == ["q", "?", "/", "esc", "t", "space", "M", "p", "P", "l", "L", "o",
                                                   "i", "n", "v", "d", "c", "s", "e", "r"]
        tab = dict(app.screen.rows)["tab / shift+tab"]  # the tab order is written out, not found by trial
        assert tab.index("filter box") < tab.index("sidebar list") < tab.index("view")
        assert len(key_rows(MfphysTUI.BINDINGS)) == len(MfphysTUI.BINDINGS)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


@pilot_test
async def test_reproduction_files_are_not_counted_as_errors(tmp_path):
    import numpy as np
    import xarray as xr

    from mfphys import store

    for name, kind in (("curves", "reproduction"), ("dynamics", "reproduction"), ("odd", "someday")):
        xr.Dataset({"t": ("x", np.arange(3.0))}, attrs={store.KIND_ATTR: kind}).to_netcdf(tmp_path / f"{name}.nc")
    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "3 of 3 entries, 1 with errors, 2 other mfphys files" in static_text(app, "#count")


@pilot_test
async def test_problem_folder_opens_and_shows_each_error(broken_dir):
    from mfphys.cli.tui.widgets import Heatmap

    app = app_for(broken_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "5 of 5 entries, 3 with errors" in static_text(app, "#count")
        for name, expect in (("corrupt", "not a readable netCDF file"), ("foreign", "not an mfphys file"),
                             ("not-a-scan", "scan.json")):
            await select(app, pilot, name)
            assert app.view_kind is None and expect in static_text(app, "#message-text")
            await pilot.press("p", "l", "v", "s", "e")  # no view keys apply: nothing breaks
        await select(app, pilot, "empty-scan")
        assert app.view_kind == "scan" and set(app.query_one(Heatmap).grid.status.ravel()) == {"pending"}
        await select(app, pilot, "writing-scan")
        grid = app.query_one(Heatmap).grid
        assert grid.status.tolist() == [["done", "running"], ["failed", "pending"]]
        app.query_one(Heatmap).focus()
        await pilot.press("down")
        assert "training diverged" in static_text(app, "#scan-cell")


@pilot_test
async def test_live_refresh_follows_new_changed_and_vanished_files(runs_dir, tmp_path):
    import shutil

    from mfphys.cli.tui.widgets import Heatmap

    root = tmp_path / "live"
    root.mkdir()
    shutil.copy(runs_dir / "gbp.nc", root / "gbp.nc")
    app = app_for(root, interval=0.2)

    async def wait_for(cond):
        await wait_until(pilot, cond, "the refreshed folder")

    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["gbp"]
        store.write_atomic(store.open_run(runs_dir / "bp.nc"), root / "bp.nc")  # a run appears
        await wait_for(lambda: [e.name for e in app.shown_entries] == ["bp", "gbp"])
        assert app.current.name == "gbp"  # the cursor stays on what the user looks at
        await wait_for(lambda: "BP baseline: bp" in static_text(app, "#run-head"))
        (root / "gbp.nc").unlink()  # the open run vanishes
        await wait_for(lambda: [e.name for e in app.shown_entries] == ["bp"])
        await settle(app, pilot)
        assert app.current.name == "bp" or "gone" in static_text(app, "#message-text")
        # a scan being written: cells finish while the app shows it
        spec = write_scan(root / "scan", depth=(1,), n_train=(200, 400), stop_at_cell=1)
        await wait_for(lambda: any(e.name == "scan" for e in app.shown_entries))
        await select(app, pilot, "scan")

        assert app.query_one(Heatmap).grid.status.tolist() == [["done", "pending"]]
        mark_running(root / "scan", spec.cells()[1].key)
        await wait_for(lambda: app.query_one(Heatmap).grid.status.tolist() == [["done", "running"]])
        scan.run_scan(spec, root / "scan")
        await wait_for(lambda: app.query_one(Heatmap).grid.status.tolist() == [["done", "done"]])
        assert np.isfinite(app.query_one(Heatmap).grid.mean).all()


def test_scan_rereads_are_throttled_by_their_own_duration(runs_dir):
    from mfphys.cli.tui.app import MfphysTUI, ScanPayload
    from mfphys.cli.tui.models.scan_grid import load_scan

    app = MfphysTUI(runs_dir, interval=2.5)
    ds, now = load_scan(runs_dir / "scan"), time.monotonic()

    def read(age, took):  # a combined dataset read `age` s ago that took `took` s (synthetic clock)
        return ScanPayload(ds, loaded_at=now - age, seconds=took)

    assert not app.scan_read_due(read(2.0, 0.1))  # within the interval
    assert app.scan_read_due(read(3.0, 0.1))
    assert not app.scan_read_due(read(30.0, 10.0))  # 4 x 10 s
    assert app.scan_read_due(read(41.0, 10.0))


@pytest.mark.slow
@pilot_test
async def test_big_scan_loads_once_and_redraws_from_memory(big_scan, monkeypatch):
    """120 cells: one read of the combined dataset; parameter and layer keys do not read files."""
    from mfphys.cli.tui.widgets import Heatmap

    calls = []
    real = scan.open_scan
    monkeypatch.setattr(scan, "open_scan", lambda f: calls.append(f) or real(f))
    app = app_for(big_scan)
    async with app.run_test(size=SIZE) as pilot:
        t0 = time.perf_counter()
        await select(app, pilot, "scan120")
        print(f"opening a 120-cell scan took {time.perf_counter() - t0:.2f} s")
        heat = app.query_one(Heatmap)
        assert heat.grid.mean.shape == (10, 12) and np.isfinite(heat.grid.mean).all()
        for key in ("p", "p", "p", "l", "l", "v", "s", "L", "P"):
            await pilot.press(key)
        await settle(app, pilot)
        assert len(calls) == 1
        assert "done 120/120 cells" in screen_text(app)


@pilot_test
async def test_live_inputs_by_default_and_layers_counted_from_the_output(runs_dir):
    """Layer 1 over live inputs (the header says so; `i` switches), the whole-network entropy is the
    live one, and `o` lines the layers up at the output."""
    from textual.widgets import DataTable

    from mfphys.cli.tui.models.scan_grid import NETWORK
    from mfphys.cli.tui.widgets import Heatmap

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        table = app.query_one("#run-order", DataTable)
        assert [str(c.label) for c in table.columns.values()][1] == "layer 1 live"
        assert "inputs that vary" in static_text(app, "#order-note")
        await pilot.press("i")
        assert [str(c.label) for c in table.columns.values()][1] == "layer 1"
        assert "all inputs" in static_text(app, "#order-note")
        await pilot.press("i")
        await select(app, pilot, "scan")
        heat = app.query_one(Heatmap)
        while heat.grid.param != "entropy":
            await pilot.press("p")
        assert heat.grid.layer == NETWORK and heat.grid.inputs == "live"  # the whole network first
        head = static_text(app, "#scan-head")
        assert "whole network" in head and "layer 1 over the inputs that vary" in head
        await pilot.press("i")
        assert heat.grid.inputs == "all" and "layer 1 over all inputs" in static_text(app, "#scan-head")
        await pilot.press("i", "l", "o")  # layer 1, then counted from the output: the output layer first
        assert heat.grid.layer == -1 and "output layer" in static_text(app, "#scan-head")
        await pilot.press("l")
        assert heat.grid.layer == -2 and "output-1" in static_text(app, "#scan-head")
        await pilot.press("o")
        assert heat.grid.layer == 1


@pilot_test
async def test_an_adaptive_scan_opens_in_the_scan_view(tmp_path):
    from mfphys.cli.tui.widgets import Heatmap

    pytest.importorskip("adaptive")
    spec = scan.AdaptiveSpec.build({"n_train": (20, 200)}, discrete={"depth": [1]},
                                   fixed={"dataset": "teacher", "input_dim": 20, "width": 8, "epochs": 1,
                                          "replicas": 1, "batch_size": 10, "n_test": 100, "backend": "numpy"})
    scan.run_adaptive_scan(spec, tmp_path / "adaptive", cells=3)
    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await select(app, pilot, "adaptive")
        assert app.view_kind == "scan"
        grid = app.query_one(Heatmap).grid
        assert grid.mean.shape == (1, 3) and grid.cols.tolist() == [20, 63, 200]
        assert "n_train" in screen_text(app)
