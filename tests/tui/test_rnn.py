"""The TUI and the recurrent model (docs/tui.md "Recurrent runs"): listing, runs table, run view
(order table per matrix with and without the recurrent diagonal, histograms per matrix,
evaluation modes, psychometric curves), trajectories per matrix, perturbation files of a
matrix, recurrent scans (steps x n_train, per matrix) and the export, on tiny real runs
(tests/tui/rnn_files.py) and a synthetic scan dataset."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from mfphys import store
from tests.helpers import SIZE, app_for, pilot_test, select, settle, static_text
from tests.tui.rnn_files import DYN, MATRICES, recurrent_scan

# --- models ------------------------------------------------------------------------------------


def test_listing_says_which_entries_are_recurrent(rnn_dir):
    from mfphys.cli.tui.models.listing import filter_entries, find_baseline, list_entries
    from mfphys.cli.tui.views import entry_line

    entries = {e.name: e for e in list_entries(rnn_dir)}
    assert all(e.ok for e in entries.values()), [e.error for e in entries.values()]
    mnist, multi, ffn = entries["rnn-mnist"], entries["rnn-multi"], entries["ffn-teacher"]
    assert (mnist.model, mnist.task, mnist.preset, mnist.architecture) == ("rnn", "mnist", "row_mnist", "28-20-10 x28")
    assert (multi.task, multi.architecture) == ("multisensory", "5-20-2")
    assert ffn.model == "" and ffn.architecture == "20-16-10"
    line = entry_line(mnist)
    assert "rnn gbp" in line and "mnist (row_mnist)" in line and "28-20-10 x28" in line
    assert "rnn" not in entry_line(ffn)
    pert = entries["rnn-multi.perturb-recurrent-nodiag"]
    assert pert.kind == "perturbation" and pert.matrix == "recurrent nodiag"
    assert "recurrent matrix without its diagonal" in entry_line(pert)
    # the filter knows the model and the preset; the BP baseline is the recurrent BPTT twin
    assert {e.name for e in filter_entries(entries.values(), "rnn run")} == {"rnn-mnist", "rnn-dyn", "rnn-multi",
                                                                             "rnn-multi-bp"}
    assert [e.name for e in filter_entries(entries.values(), "row_mnist")] == ["rnn-dyn", "rnn-mnist"]
    assert find_baseline(multi, entries.values()).name == "rnn-multi-bp"
    assert find_baseline(mnist, entries.values()) is None


def test_runs_table_rows_of_a_mixed_folder(rnn_dir):
    from mfphys.cli.tui.models.listing import list_entries
    from mfphys.cli.tui.models.runs_table import row_cells, run_rows, sort_rows

    rows = {r.name: r for r in run_rows(list_entries(rnn_dir))}
    assert set(rows) == {"ffn-teacher", "rnn-dyn", "rnn-mnist", "rnn-multi", "rnn-multi-bp"}
    assert not any(r.error for r in rows.values())
    ds = store.open_run(rnn_dir / "rnn-mnist.nc")
    r = rows["rnn-mnist"]
    assert (r.mode, r.dataset, r.architecture, r.epochs) == ("rnn gbp", "mnist (row_mnist)", "28-20-10 x28", 2)
    assert r.accuracy == pytest.approx(float(ds["test_acc_mf"].mean()))
    # whole network: the matrices weighted by their connections (post x pre)
    conn = np.array([ds.sizes[f"post_{m}"] * ds.sizes[f"pre_{m}"] for m in MATRICES], dtype=float)
    for col, var in (("sparsity", "sparsity"), ("vip", "frac_vip")):
        per_replica = (ds[var].transpose("replica", "matrix").values * conn).sum(axis=1) / conn.sum()
        assert getattr(r, col) == pytest.approx(per_replica.mean())
    ms = store.open_run(rnn_dir / "rnn-multi.nc")
    assert rows["rnn-multi"].accuracy == pytest.approx(float(ms["psychometric_acc_mf"].mean()))
    assert np.isfinite(rows["ffn-teacher"].accuracy) and rows["ffn-teacher"].mode == "gbp"
    cells = row_cells(r)
    assert cells[1:4] == ["mnist (row_mnist)", "28-20-10 x28", "rnn gbp"]
    assert [x.name for x in sort_rows(rows.values(), "accuracy", reverse=True)][-1] in rows  # sorts, no crash


def test_run_model_per_matrix_with_and_without_the_diagonal(rnn_dir):
    from mfphys.cli.tui.models.run import hist_counts, layer_table, live_note, load_run, order_values

    run = load_run(rnn_dir / "rnn-mnist.nc")
    ds = store.open_run(rnn_dir / "rnn-mnist.nc")
    assert run.part_dim == "matrix" and list(run.layers) == list(MATRICES) and run.has_nodiag
    header, rows = layer_table(run)
    assert header == ["order parameter", "input", "recurrent", "output"] and len(rows) == 7
    assert layer_table(run, diagonal=False)[0] == ["order parameter", "input", "recurrent nodiag", "output"]
    for k in ("frac_vip", "sparsity", "entropy"):
        np.testing.assert_array_equal(order_values(run, k), ds[k].transpose("replica", "matrix").values)
        np.testing.assert_array_equal(order_values(run, k, diagonal=False),
                                      ds[k + "_nodiag"].transpose("replica", "matrix").values)
    assert "n: without its 20 self-connections" in live_note(run)
    assert "n: all connections" in live_note(run, diagonal=False)
    # histograms of one matrix: every connection of every replica
    for i, m in enumerate(MATRICES):
        _, counts = hist_counts(run, "pi", i)
        assert counts.sum() == 2 * ds.sizes[f"post_{m}"] * ds.sizes[f"pre_{m}"]


def test_evaluation_modes_and_psychometric_curves(rnn_dir):
    from mfphys.cli.tui.models.run import accuracy_table, load_run, psychometric, psychometric_modes

    run = load_run(rnn_dir / "rnn-mnist.nc")
    header, rows = accuracy_table(run)
    assert header == ["mode", "test acc"]
    assert [r[0] for r in rows] == ["mean-field", "noisy", "quenched", "annealed", "quenched vote"]
    assert not run.p_high and psychometric_modes(run) == []
    ms = load_run(rnn_dir / "rnn-multi.nc")
    ds = store.open_run(rnn_dir / "rnn-multi.nc")
    header, rows = accuracy_table(ms)
    assert header == ["mode", "acc v", "acc a", "acc va", "mean"]
    assert [r[0] for r in rows] == ["mean-field", "noisy", "quenched", "annealed"]
    assert psychometric_modes(ms) == ["mf", "quenched"]
    lines = psychometric(ms, "quenched")
    assert [m for m, _ in lines] == ["v", "a", "va"]
    want = ds["p_high_quenched"].mean("draw").transpose("replica", "modality", "rate").values
    for k, (_, values) in enumerate(lines):
        np.testing.assert_allclose(values, want[:, k, :])
    np.testing.assert_array_equal(ms.rates, ds["rate"].values)


@pytest.mark.parametrize("diagonal", [True, False])
def test_trajectories_per_matrix(rnn_dir, diagonal, tmp_path):
    from mfphys.cli.tui.models.run import dyn_params, load_run, trajectory

    run = load_run(rnn_dir / "rnn-dyn.nc")
    ds = store.open_run(rnn_dir / "rnn-dyn.nc")
    assert dyn_params(run) == list(DYN) and list(run.dyn_epoch) == [0, 1, 2]
    lines = trajectory(run, "frac_vip", diagonal=diagonal)
    assert [label for label, _ in lines] == ["input", "recurrent" if diagonal else "recurrent nodiag", "output"]
    for (_, values), m in zip(lines, MATRICES):
        name = "dyn_frac_vip" + ("_nodiag" if not diagonal and m == "recurrent" else "")
        np.testing.assert_array_equal(values, ds[name].sel(matrix=m).transpose("replica", "dyn_epoch").values)
    # a run trained in memory records its dynamics too; a file without them has no trajectory
    real = store.open_run(rnn_dir / "rnn-mnist.nc")
    assert real["dyn_frac_vip"].dims == ("replica", "dyn_epoch", "matrix")
    np.testing.assert_array_equal(trajectory(load_run(rnn_dir / "rnn-mnist.nc"), "frac_vip")[1][1],
                                  real["dyn_frac_vip"].sel(matrix="recurrent").values)
    bare = real.drop_vars([v for v in real.variables if str(v).startswith(("dyn_", "snap_"))])
    store.write_atomic(bare, tmp_path / "bare.nc")
    assert trajectory(load_run(tmp_path / "bare.nc"), "frac_vip") == []


def test_perturbation_of_a_matrix(rnn_dir):
    from mfphys.cli.tui.models.run import load_perturbation

    p = load_perturbation(rnn_dir / "rnn-multi.perturb-recurrent-nodiag.nc")
    assert p.attrs["matrix"] == "recurrent" and p.attrs["candidates"] == "off-diagonal connections"
    assert list(p.fraction) == [0.0, 0.5, 1.0] and "error_vip" in p.errors


# --- scans: the grid's own dimensions, per matrix ----------------------------------------------


def test_recurrent_scan_grid_is_steps_by_n_train_per_matrix():
    from mfphys.cli.tui.models.scan_grid import (
        has_nodiag,
        layer_label,
        part_dim,
        scan_dims,
        scan_grid,
        scan_layers,
        scan_params,
    )

    ds = recurrent_scan()
    assert scan_dims(ds) == ["steps", "n_train"] and part_dim(ds) == "matrix" and has_nodiag(ds)
    assert scan_layers(ds) == list(MATRICES) == scan_layers(ds, from_output=True)
    params = scan_params(ds)
    assert params[:3] == ["test_error", "sparsity", "frac_vip"] and "train_loss" in params
    assert not any(p.endswith("_nodiag") for p in params) and "frac_uip" not in params
    grid = scan_grid(ds, "frac_vip", "recurrent")
    assert (grid.row_dim, grid.col_dim) == ("steps", "n_train") and grid.mean.shape == (2, 3)
    assert list(grid.rows) == [7, 28] and list(grid.cols) == [256, 512, 1024]
    np.testing.assert_array_equal(grid.values[0, 1], ds["frac_vip"].sel(matrix="recurrent").values[0, 1])
    assert grid.diagonal is True and grid.inputs is None and layer_label(grid.layer) == "recurrent matrix"
    nodiag = scan_grid(ds, "frac_vip", "recurrent", diagonal=False)
    np.testing.assert_array_equal(nodiag.values[0, 1], ds["frac_vip_nodiag"].sel(matrix="recurrent").values[0, 1])
    assert nodiag.diagonal is False
    # other matrices: no diagonal choice, the same numbers either way
    out = scan_grid(ds, "frac_vip", "output", diagonal=False)
    assert out.diagonal is None
    np.testing.assert_array_equal(out.values[1, 0], ds["frac_vip"].sel(matrix="output").values[1, 0])
    assert scan_grid(ds, "frac_vip").layer == "input"  # the first matrix by default
    assert str(grid.status[-1, -1]) == "pending" and grid.n[-1, -1] == 0
    err = scan_grid(ds, "test_error")
    assert err.layer is None
    np.testing.assert_allclose(err.mean[0, 0], 1 - ds["test_acc"].isel(epoch=-1).values[0, 0].mean())


@pytest.mark.parametrize("along", ["row", "column"])
def test_recurrent_scan_trajectories(along):
    from mfphys.cli.tui.models.scan_grid import scan_trajectories

    ds = recurrent_scan()
    t = scan_trajectories(ds, "frac_vip", "recurrent", along=along, cursor=(0, 1), diagonal=False)
    assert list(t.x) == [0, 1, 2] and t.diagonal is False
    src = ds["dyn_frac_vip_nodiag"].sel(matrix="recurrent").mean("replica")
    if along == "row":  # steps = 7: one line per n_train
        assert t.fixed == ("steps", 7) and t.line_dim == "n_train" and t.labels == (256, 512, 1024)
        np.testing.assert_allclose(t.mean[1], src.isel(steps=0, n_train=1).values)
    else:  # n_train = 512: one line per steps
        assert t.fixed == ("n_train", 512) and t.line_dim == "steps" and t.labels == (7, 28)
        np.testing.assert_allclose(t.mean[0], src.isel(steps=0, n_train=1).values)


def test_recurrent_scan_export_names_the_matrix(tmp_path):
    from mfphys.cli.tui.export import export_scan
    from mfphys.cli.tui.models.scan_grid import scan_grid, scan_trajectories

    ds = recurrent_scan()
    grid = scan_grid(ds, "frac_vip", "recurrent", diagonal=False)
    t = scan_trajectories(ds, "frac_vip", "recurrent", diagonal=False)
    paths = export_scan("rscan", grid, tmp_path, trajectories=t)
    assert [p.name for p in paths] == ["rscan-scan-frac_vip-recurrent-nodiag.csv",
                                       "rscan-scan-frac_vip-recurrent-nodiag.png",
                                       "rscan-scan-frac_vip-recurrent-nodiag-dyn-steps7.csv",
                                       "rscan-scan-frac_vip-recurrent-nodiag-dyn-steps7.png"]
    rows = list(csv.reader(paths[0].open()))
    assert rows[0][:3] == ["steps", "n_train", "status"] and len(rows) == 1 + 6
    assert paths[1].read_bytes()[:4] == b"\x89PNG"


# --- export of a recurrent run view ------------------------------------------------------------


@pytest.mark.parametrize("name", ["rnn-mnist", "rnn-multi", "rnn-dyn"])
def test_export_of_a_recurrent_run(rnn_dir, tmp_path, name):
    from mfphys.cli.tui.export import export_run
    from mfphys.cli.tui.models.run import load_run

    run = load_run(rnn_dir / f"{name}.nc")
    paths = export_run(name, run, 1, tmp_path, dyn_param="frac_vip", diagonal=False)
    names = {p.name for p in paths}
    assert {f"{name}-run-curves.csv", f"{name}-run-curves.png", f"{name}-run-order.csv",
            f"{name}-run-hist-recurrent.csv", f"{name}-run-hist-recurrent.png", f"{name}-run-evaluation.csv"} <= names
    for p in paths:
        assert p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:4] == b"\x89PNG"
    order = list(csv.DictReader((tmp_path / f"{name}-run-order.csv").open()))
    assert [(r["matrix"], r["connections"]) for r in order] == [("input", "all"), ("recurrent", "all"),
                                                                ("output", "all"), ("recurrent", "nodiag")]
    evaluation = list(csv.reader((tmp_path / f"{name}-run-evaluation.csv").open()))
    assert evaluation[1][0] == "mf"
    if name == "rnn-multi":
        assert {f"{name}-run-psychometric.csv", f"{name}-run-psychometric.png"} <= names
        psych = list(csv.reader((tmp_path / f"{name}-run-psychometric.csv").open()))
        assert psych[0][:3] == ["rate", "mf_v_mean", "mf_v_sem"] and len(psych) == 1 + 8
    if name == "rnn-dyn":
        dyn = list(csv.DictReader((tmp_path / f"{name}-run-dynamics.csv").open()))
        assert [(r["matrix"], r["connections"]) for r in dyn[:4]] == [("input", "all"), ("recurrent", "all"),
                                                                      ("recurrent", "nodiag"), ("output", "all")]
        assert (tmp_path / f"{name}-run-dynamics-frac_vip.png").exists()


# --- the app -----------------------------------------------------------------------------------


def _columns(app, selector):
    from textual.widgets import DataTable

    return [str(c.label) for c in app.query_one(selector, DataTable).columns.values()]


@pilot_test
async def test_run_view_of_a_recurrent_run(rnn_dir, tmp_path):
    from textual.widgets import DataTable

    from mfphys.cli.tui.views import RunView

    app = app_for(rnn_dir, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "rnn-mnist")
        assert app.view_kind == "run"
        head = static_text(app, "#run-head")
        assert "rnn gbp" in head and "28-20-10 x28" in head and "mean-field" in head and "quenched" in head
        assert _columns(app, "#run-order") == ["order parameter", "input", "recurrent", "output"]
        assert app.query_one("#run-eval", DataTable).row_count == 5 and app.query_one("#run-eval").display
        assert not app.query_one("#run-psych").display
        assert "n: without its 20 self-connections" in static_text(app, "#order-note")
        assert "histograms, recurrent matrix" not in static_text(app, "#hist-head")
        assert app.shown_view.check_action("toggle_inputs", ()) is None  # no live inputs in a recurrent run
        await pilot.press("n")
        await settle(app, pilot)
        assert app.query_one(RunView).diagonal is False
        assert _columns(app, "#run-order") == ["order parameter", "input", "recurrent nodiag", "output"]
        await pilot.press("l")
        await settle(app, pilot)
        assert "histograms, recurrent matrix (2 of 3)" in static_text(app, "#hist-head")
        await pilot.press("e")
        await settle(app, pilot)
        assert (tmp_path / "rnn-mnist-run-hist-recurrent.png").exists()
        assert (tmp_path / "rnn-mnist-run-evaluation.csv").exists()
        # a feed-forward run has no diagonal to leave out: n does nothing there
        await select(app, pilot, "ffn-teacher")
        assert app.shown_view.check_action("toggle_diagonal", ()) is None
        assert _columns(app, "#run-order")[1:] == ["layer 1 live", "layer 2"]
        assert not app.query_one("#run-eval").display


@pilot_test
async def test_run_view_of_a_multisensory_run(rnn_dir):
    from mfphys.cli.tui.widgets import LinePlot

    app = app_for(rnn_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "rnn-multi")
        head = static_text(app, "#run-head")
        assert "psychometric acc" in head and "BP baseline: rnn-multi-bp" in head
        assert app.query_one("#run-psych").display
        assert _columns(app, "#run-eval") == ["mode", "acc v", "acc a", "acc va", "mean"]
        left, right = app.query_one("#plot-psych-1", LinePlot), app.query_one("#plot-psych-2", LinePlot)
        assert [s.label for s in left.series] == ["v", "a", "va"] and "mean-field" in left.title
        assert "quenched" in right.title and left.xlabel == "event rate (Hz)"
        assert list(left.series[0].x) == [9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]
        assert app.query_one("#plot-acc", LinePlot).series == []  # no per-epoch accuracy in this task
        await pilot.press("s")  # every replica's curve
        await settle(app, pilot)
        assert len(left.series) == 3 * 2


@pilot_test
async def test_trajectories_and_the_diagonal_key(rnn_dir):
    from mfphys.cli.tui.widgets import LinePlot

    app = app_for(rnn_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "rnn-dyn")
        plot = app.query_one("#plot-dyn", LinePlot)
        assert [s.label for s in plot.series] == ["input", "recurrent", "output"]
        assert plot.title.startswith("frac_vip vs epoch")
        await pilot.press("n", "p")
        await settle(app, pilot)
        assert [s.label for s in plot.series] == ["input", "recurrent nodiag", "output"]
        assert plot.title.startswith("sparsity = frac_uip vs epoch")


@pilot_test
async def test_runs_table_and_perturbation_view_in_a_mixed_folder(rnn_dir):
    from mfphys.cli.tui.views import RunsTableView

    app = app_for(rnn_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "rnn-multi.perturb-recurrent-nodiag")
        assert app.view_kind == "perturbation"
        head = static_text(app, "#pert-head")
        assert "matrix recurrent" in head and "off-diagonal connections" in head
        await pilot.press("t")
        await settle(app, pilot)
        rows = {r.name: r for r in app.query_one(RunsTableView).rows}
        assert set(rows) == {"ffn-teacher", "rnn-dyn", "rnn-mnist", "rnn-multi", "rnn-multi-bp"}
        assert rows["rnn-mnist"].mode == "rnn gbp" and np.isfinite(rows["rnn-mnist"].accuracy)
        assert "recurrent runs (rnn)" in static_text(app, "#table-note")


@pilot_test
async def test_scan_view_of_a_recurrent_scan(tmp_path):
    """The scan view draws a steps x n_train grid per matrix (the combined dataset given to the
    view as a loaded scan would be): l cycles the matrices, n the recurrent diagonal, d the
    trajectories of the cursor's row."""
    from mfphys.cli.tui.app import Loaded, ScanPayload
    from mfphys.cli.tui.models.listing import Entry
    from mfphys.cli.tui.widgets import Heatmap, LinePlot

    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        entry = Entry(tmp_path / "rscan", "rscan", "scan", "done", "mnist", "28-20-10 xT", model="rnn")
        app.current = entry
        app.loaded = Loaded(entry, ScanPayload(recurrent_scan()))
        app._draw()
        await settle(app, pilot)
        assert app.view_kind == "scan"
        grid = app.query_one(Heatmap).grid
        assert (grid.row_dim, grid.col_dim, grid.param, grid.layer) == ("steps", "n_train", "test_error", None)
        await pilot.press("p", "p", "l")  # frac_vip, the recurrent matrix
        await settle(app, pilot)
        grid = app.query_one(Heatmap).grid
        assert (grid.param, grid.layer, grid.diagonal) == ("frac_vip", "recurrent", True)
        head = static_text(app, "#scan-head")
        assert "recurrent matrix (2/3)" in head and "n: without it" in head and "depth + 1" not in head
        assert app.shown_view.check_action("toggle_diagonal", ()) is True
        assert app.shown_view.check_action("toggle_output", ()) is None  # matrices: no count from the output
        await pilot.press("n", "d")
        await settle(app, pilot)
        grid = app.query_one(Heatmap).grid
        assert grid.diagonal is False
        np.testing.assert_allclose(grid.mean, recurrent_scan()["frac_vip_nodiag"].sel(matrix="recurrent")
                                   .mean("replica").values)
        plot = app.query_one("#scan-dyn", LinePlot)
        assert [s.label for s in plot.series] == ["n_train=256", "512", "1024"]
        assert "recurrent matrix nodiag, steps = 7" in plot.title
        text = static_text(app, "#scan-cell")
        assert text.startswith("steps = 7, n_train = 256: done")


@pytest.mark.parametrize(("meta", "label"), [
    ({"model": "rnn", "fixed": {"preset": "row_mnist", "n": 50}, "grid": {"steps": [7, 28], "n_train": [256, 512]}},
     "784/T-50-10 xT"),
    ({"model": "rnn", "fixed": {"preset": "row_mnist", "steps": 28}, "grid": {"n_train": [256, 512]}},
     "28-100-10 x28"),
    ({"model": "rnn", "fixed": {"preset": "multisensory"}, "grid": {"n": [20, 50]}}, "5-N-2"),
    ({"model": "rnn", "fixed": {"preset": "no-such-preset"}, "grid": {"n": [20, 50]}}, ""),
])
def test_recurrent_scan_architecture_label(meta, label):
    from mfphys.describe import scan_architecture

    assert scan_architecture(meta) == label


def test_a_recurrent_scan_folder_is_listed_as_one(tmp_path):
    """A scan folder whose scan.json says model rnn (or scans the steps): "rnn" and its label in the sidebar."""
    import json

    from mfphys.cli.tui.models.listing import filter_entries, list_entries
    from mfphys.cli.tui.sidebar import entry_prompt

    folder = tmp_path / "rscan"
    folder.mkdir()
    (folder / "scan.json").write_text(json.dumps({
        "mfphys_kind": "scan", "model": "rnn", "dims": ["steps", "n_train"], "scan_hash": "0",
        "grid": {"steps": [7, 28], "n_train": [256, 512]},
        "fixed": {"preset": "row_mnist", "n": 20}}))
    entries = list_entries(tmp_path)
    assert len(entries) == 1
    e = entries[0]
    assert (e.kind, e.model, e.preset, e.architecture) == ("scan", "rnn", "row_mnist", "784/T-20-10 xT")
    assert "rnn mnist 784/T-20-10 xT" in entry_prompt(e, width=80).plain
    assert filter_entries(entries, "rnn row_mnist") == entries
