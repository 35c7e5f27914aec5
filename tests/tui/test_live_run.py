"""Pilot tests of runs and scans while they train: a run file rewritten under the app (docs/tui.md,
"Watching a run train"), the trajectories of the order parameters in the run view, and the scan
view's parameter against epoch per cell of a row or column."""

from __future__ import annotations

import numpy as np

from mfphys import store
from tests.helpers import (
    SIZE,
    app_for,
    pilot_test,
    select,
    settle,
    start_paced_run,
    static_text,
    wait_for_checkpoint,
    wait_until,
)

EPOCHS = 4


@pilot_test
async def test_a_run_file_rewritten_under_the_app(tmp_path, monkeypatch):
    """``mfphys.runfile.train_run`` writes a run file in another process (at the start, after each
    epoch, at the end) while the app shows it: the listing says running e/E, the curves grow, the
    view keeps its place, no error appears, and a half-written temporary file is never read."""
    from mfphys.cli.tui.views import RunView
    from mfphys.cli.tui.widgets import LinePlot

    root = tmp_path / "runs"
    root.mkdir()
    path = root / "live.nc"
    # what a writer killed in the middle of an atomic write leaves: a hidden temporary file, garbage
    (root / ".live.nc.999999.tmp").write_bytes(b"CDF\x01 half-written")
    read = []
    for name in ("read_attrs", "read_dataset"):
        real = getattr(store, name)
        monkeypatch.setattr(store, name, lambda p, real=real: read.append(str(p)) or real(p))
    proc = start_paced_run(path, tmp_path / "gate", EPOCHS)
    try:
        wait_for_checkpoint(path, 0, proc)  # the process starts and writes its file at epoch 0
        app = app_for(root, interval=0.1)
        async with app.run_test(size=SIZE) as pilot:

            def process_ok():
                assert proc.poll() in (None, 0), proc.stderr.read()

            async def wait_for(cond, what):
                await wait_until(pilot, cond, what, check=process_ok)

            def sidebar_status():
                return app.shown_entries[0].status_text if app.shown_entries else ""

            await settle(app, pilot)
            assert [e.name for e in app.shown_entries] == ["live"]  # the temporary file is not listed
            assert sidebar_status() == f"starting 0/{EPOCHS}" and app.view_kind == "run"
            assert f"epoch 0 of {EPOCHS}" in static_text(app, "#run-head")
            assert "no epoch done yet" in app.query_one("#plot-loss", LinePlot).title
            await pilot.press("l")  # the user's place: layer 2's histograms, the view scrolled down
            view = app.query_one(RunView)
            view.scroll_to(y=6, animate=False)
            await pilot.pause()
            for epoch in range(1, EPOCHS):
                (tmp_path / "gate" / f"go-{epoch}").touch()  # the run trains epoch `epoch` and checkpoints
                await wait_for(lambda e=epoch: sidebar_status().startswith(f"running {e}/{EPOCHS}"),
                               f"running {epoch}/{EPOCHS}")
                await wait_for(lambda e=epoch: app.loaded is not None and app.loaded.payload.epoch.size == e,
                               f"the curves of epoch {epoch}")
                await settle(app, pilot)
                loss = app.query_one("#plot-loss", LinePlot).series
                assert [s.x.tolist() for s in loss] == [list(range(1, epoch + 1))]  # the curve grows
                assert np.isfinite(loss[0].y).all()
                assert app.view_kind == "run" and f"epoch {epoch} of {EPOCHS}" in static_text(app, "#run-head")
                assert "histograms, layer 2" in static_text(app, "#hist-head") and view.scroll_y == 6
                dyn = app.query_one("#plot-dyn", LinePlot).series
                assert [s.label for s in dyn] == ["L1 live", "L2"] and dyn[0].x[-1] <= epoch
            (tmp_path / "gate" / f"go-{EPOCHS}").touch()
            await wait_for(lambda: app.shown_entries[0].status == "done", "the finished run")
            await wait_for(lambda: app.loaded is not None and app.loaded.payload.epoch.size == EPOCHS, "the end")
            await settle(app, pilot)
            assert f"{EPOCHS} epochs" in static_text(app, "#run-head") and "sampled" in static_text(app, "#run-head")
            assert app.view_kind == "run"
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert read and not any(".tmp" in p for p in read), [p for p in read if ".tmp" in p]


@pilot_test
async def test_epochs_between_checkpoints_come_from_the_epoch_log(tmp_path):
    """A run with no checkpoint between its start and its end (docs/file-format.md "The epoch
    log"): the listing and the curves follow every epoch all the same, and the run view says the
    parameters are those of the last checkpoint."""
    from mfphys.cli.tui.widgets import LinePlot

    root = tmp_path / "runs"
    root.mkdir()
    path = root / "live.nc"
    proc = start_paced_run(path, tmp_path / "gate", EPOCHS, every=0)
    try:
        wait_for_checkpoint(path, 0, proc)
        app = app_for(root, interval=0.1)
        async with app.run_test(size=SIZE) as pilot:

            def process_ok():
                assert proc.poll() in (None, 0), proc.stderr.read()

            await settle(app, pilot)
            for epoch in range(1, EPOCHS):
                (tmp_path / "gate" / f"go-{epoch}").touch()
                await wait_until(pilot, lambda e=epoch: app.shown_entries[0].status_text.startswith(
                    f"running {e}/{EPOCHS}"), f"running {epoch}/{EPOCHS}", check=process_ok)
                await wait_until(pilot, lambda e=epoch: app.loaded is not None and app.loaded.payload.epoch.size == e,
                                 f"the curves of epoch {epoch}", check=process_ok)
                await settle(app, pilot)
                assert [s.x.tolist() for s in app.query_one("#plot-loss", LinePlot).series] == [
                    list(range(1, epoch + 1))]
                head = static_text(app, "#run-head")
                assert f"epoch {epoch} of {EPOCHS}" in head and "parameters as of epoch 0" in head
            assert store.read_attrs(path)["epochs_done"] == 0  # no checkpoint was written meanwhile
            (tmp_path / "gate" / f"go-{EPOCHS}").touch()
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pilot_test
async def test_the_run_views_trajectories_follow_p_and_the_inputs(runs_dir):
    from mfphys.cli.tui.views import RunView
    from mfphys.cli.tui.widgets import LinePlot

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        plot = app.query_one("#plot-dyn", LinePlot)
        assert app.query_one(RunView).dyn_param == "frac_vip" and plot.title.startswith("frac_vip vs epoch")
        # BP (pi = Xi = 0) has every connection very important: a constant, in the legend, not drawn
        assert [s.label for s in plot.series] == ["L1 live", "L2", "BP = 1"] and np.isnan(plot.series[2].y).all()
        await pilot.press("p")
        assert app.query_one(RunView).dyn_param == "sparsity" and "frac_uip" in plot.title
        await pilot.press("P", "P")
        assert app.query_one(RunView).dyn_param == "weight_var"
        await pilot.press("p", "p", "p", "p")  # -> entropy
        assert app.query_one(RunView).dyn_param == "entropy"
        await pilot.press("i")
        assert [s.label for s in plot.series][:2] == ["L1", "L2"]
        await pilot.press("s")  # every replica: two lines per layer
        assert len([s for s in plot.series if s.colour == plot.series[0].colour]) == 2


@pilot_test
async def test_scan_dynamics_view_of_a_row_or_column(runs_dir, tmp_path):
    from mfphys.cli.tui.widgets import Heatmap, LinePlot

    app = app_for(runs_dir, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        plot = app.query_one("#scan-dyn", LinePlot)
        assert not plot.display  # hidden until asked for
        await pilot.press("p", "p", "p", "l", "d")  # frac_vip: the whole network first, then layer 1
        assert plot.display
        assert [s.label for s in plot.series] == ["n_train=200", "400"]
        assert "frac_vip, layer 1 live, depth = 1" in plot.title
        assert [s.x.tolist() for s in plot.series] == [[0, 1, 2]] * 2
        heat = app.query_one(Heatmap)
        np.testing.assert_allclose([s.y[-1] for s in plot.series], heat.grid.mean[0, :])
        heat.focus()
        await pilot.press("down")  # the cursor's row follows
        assert "depth = 2" in plot.title
        np.testing.assert_allclose([s.y[-1] for s in plot.series], heat.grid.mean[1, :])
        await pilot.press("c")  # the cursor's column: one line per depth
        assert [s.label for s in plot.series] == ["depth=1", "2"] and "n_train = 200" in plot.title
        await pilot.press("L")  # the whole network
        assert "whole network" in plot.title
        np.testing.assert_allclose([s.y[-1] for s in plot.series], heat.grid.mean[:, 0])
        await pilot.press("P", "P", "P")  # test_error: the learning curves, epochs 1..E
        assert heat.grid.param == "test_error" and [s.x.tolist() for s in plot.series] == [[1, 2]] * 2
        await pilot.press("p")  # sampled_error: evaluated at the end only
        assert not plot.series and "no value per epoch" in plot.title
        await pilot.press("p", "p", "e")  # frac_vip again, exported with its trajectories
        await settle(app, pilot)
        names = sorted(p.name for p in app.last_export)
        assert names == ["scan-scan-frac_vip-layerall-live-dyn-n_train200.csv",
                         "scan-scan-frac_vip-layerall-live-dyn-n_train200.png",
                         "scan-scan-frac_vip-layerall-live.csv", "scan-scan-frac_vip-layerall-live.png"]
        rows = (tmp_path / names[0]).read_text().splitlines()
        assert rows[0] == "epoch,depth=1,depth=2" and len(rows) == 4
        await pilot.press("d")
        assert not plot.display
