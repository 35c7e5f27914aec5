"""Tests of the terminal UI (``mfphys tui``, docs/tui.md).

Fixture folders are made by the project's own code (``mfphys.train``, ``mfphys.scan.run_scan``,
``mfphys.perturb``) with tiny teacher-student networks; the stored dates are pinned so that
snapshots do not change from day to day. Pilot tests drive the app with ``App.run_test()``
and assert on what the widgets show; snapshot tests (pytest-textual-snapshot) guard the look.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from mfphys import scan, store
from mfphys.train import TrainConfig, load_data, train

CREATED = "2026-01-15T09:30:00+00:00"
SIZE = (120, 40)


# --- fixture builders (also used by the docs capture) ------------------------------------------


def tiny_config(**kw) -> TrainConfig:
    base = dict(dataset="teacher", layers=(20, 16, 10), n_train=300, n_test=300, epochs=3, batch_size=100,
                replicas=2, backend="numpy", eval_samples=2, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def write_run(path: Path, cfg: TrainConfig):
    """Train ``cfg`` and write its run file with a pinned creation date."""
    result = train(cfg)
    ds = store.run_to_dataset(result, command="tests")
    ds.attrs.update(created=CREATED, history=f"{CREATED} tests")
    store.write_atomic(ds, path)
    return result


def write_perturbation(path: Path, result, cfg: TrainConfig) -> None:
    from mfphys.perturb import perturbation, perturbation_dataset

    data = load_data(cfg)
    res = perturbation(result.params, 1, [0.0, 0.25, 0.5, 1.0], data.x_test, data.y_test, samples=2, seed=0)
    ds = perturbation_dataset(res, attrs={"source": "gbp.nc", "layer": 1, "created": CREATED,
                                          "dataset": "teacher", "architecture": store.architecture(cfg.layers)})
    store.write_atomic(ds, path)


SCAN_FIXED = dict(dataset="teacher", input_dim=20, width=16, epochs=2, batch_size=100, replicas=2, n_test=200,
                  backend="numpy", eval_samples=2)


class _Stop(Exception):
    pass


def _pin_created(folder: Path) -> None:
    meta = json.loads((folder / "scan.json").read_text())
    meta["created"] = CREATED
    (folder / "scan.json").write_text(json.dumps(meta, indent=1))


def write_scan(folder: Path, depth, n_train, *, stop_at_cell: int | None = None, **fixed) -> scan.ScanSpec:
    """``run_scan`` of tiny cells into ``folder``; ``stop_at_cell = k`` stops it as cell k starts."""
    spec = scan.ScanSpec.build({"depth": list(depth), "n_train": list(n_train)}, {**SCAN_FIXED, **fixed},
                               name=folder.name)
    started = []

    def stop(ev):
        if ev.kind == "cell_start":
            started.append(ev.cell)
            if stop_at_cell is not None and len(started) > stop_at_cell:
                raise _Stop
        if ev.kind == "begin" and stop_at_cell == 0:
            raise _Stop

    with contextlib.suppress(_Stop):
        scan.run_scan(spec, folder, callback=stop)
    _pin_created(folder)
    return spec


def mark_running(folder: Path, key: str) -> None:
    """A ``.running`` marker owned by this (live) process, as a scan in progress writes it."""
    boot = Path("/proc/sys/kernel/random/boot_id")
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": CREATED, "owner_pid": os.getpid(),
            "owner_host": socket.gethostname(), "boot_id": boot.read_text().strip() if boot.exists() else ""}
    (folder / "cells" / f"{key}.running").write_text(json.dumps(info))


def mark_failed(folder: Path, key: str, error: str) -> None:
    (folder / "cells" / f"{key}.failed.json").write_text(json.dumps({"error": error, "config_hash": "x"}))


def make_runs(root: Path) -> Path:
    """A healthy folder: a gBP run, its BP baseline, a perturbation file and a finished 2 x 2 scan."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config()
    result = write_run(root / "gbp.nc", cfg)
    write_run(root / "bp.nc", tiny_config(mode="bp"))
    write_perturbation(root / "pert.nc", result, cfg)
    write_scan(root / "scan", depth=(1, 2), n_train=(200, 400))
    return root


def make_broken(root: Path) -> Path:
    """A folder of problems: corrupt and foreign .nc files, an empty scan, a scan still being written."""
    import xarray as xr

    root.mkdir(parents=True, exist_ok=True)
    (root / "corrupt.nc").write_bytes(b"CDF\x01" + bytes(range(256)) * 4)
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(root / "foreign.nc", engine="netcdf4")
    write_scan(root / "empty-scan", depth=(1, 2), n_train=(200,), stop_at_cell=0)
    spec = write_scan(root / "writing-scan", depth=(1, 2), n_train=(200, 400), stop_at_cell=1)
    cells = spec.cells()
    mark_running(root / "writing-scan", cells[1].key)
    mark_failed(root / "writing-scan", cells[2].key, "training diverged at epoch 2: try a smaller --lr")
    (root / "not-a-scan").mkdir(exist_ok=True)
    (root / "not-a-scan" / "scan.json").write_text('{"grid": ')
    (root / ".gbp.nc.123.tmp").write_bytes(b"half")
    return root


def make_big_scan(folder: Path, depths=range(10), n_trains=tuple(range(100, 1300, 100))) -> scan.ScanSpec:
    """A scan of len(depths) x len(n_trains) cells (120 by default), written cheaply.

    ``run_scan`` writes scan.json (stopped before any cell); then one tiny run per depth is
    trained and written once per n_train with that cell's ``scan_cell`` and ``config_hash``
    attributes, as ``run_scan`` would write it.
    """
    import shutil

    import netCDF4

    spec = write_scan(folder, depth=tuple(depths), n_train=n_trains, stop_at_cell=0, epochs=1)
    templates = {}
    for cell in spec.cells():
        c = dict(cell.coords)
        if c["depth"] not in templates:
            templates[c["depth"]] = folder / f"template-{c['depth']}.nc"
            cfg = TrainConfig(**{**cell.config.__dict__, "n_train": 200})
            store.write_atomic(store.run_to_dataset(train(cfg)), templates[c["depth"]])
        path = folder / "cells" / f"{cell.key}.nc"
        shutil.copyfile(templates[c["depth"]], path)
        with netCDF4.Dataset(path, "a") as nc:  # the attributes run_scan adds to a cell file
            nc.setncatts({"scan_cell": json.dumps(c), "config_hash": cell.config_hash})
    for t in templates.values():
        t.unlink()
    return spec


def screen_text(app) -> str:
    """The app's screen as plain text (what a terminal shows), for assertions and docs/tui.md."""
    import io

    from rich.console import Console

    w, h = app.size
    console = Console(width=w, height=h, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


async def settle(app, pilot, rounds: int = 3) -> None:
    """Wait until the app's worker threads are done and their results are drawn."""
    from textual.worker import WorkerCancelled

    for _ in range(rounds):
        for worker in list(app.workers):
            with contextlib.suppress(WorkerCancelled):  # replaced by a newer one (live refresh): fine
                await worker.wait()
        await pilot.pause()


async def select(app, pilot, name: str) -> None:
    """Highlight the sidebar entry called ``name`` and wait for its view."""
    from mfphys.cli.tui.app import EntryList

    await settle(app, pilot)
    olist = app.query_one("#entries", EntryList)
    names = [e.name for e in app.shown_entries]
    olist.highlighted = names.index(name)
    await settle(app, pilot)
    assert app.current is not None and app.current.name == name


def pilot_test(fn):
    """Run an ``async def`` test in its own event loop (no async pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    # a fixed folder name: the app shows it in its title, and snapshots must not vary
    return make_runs(tmp_path_factory.mktemp("fixtures") / "runs")


@pytest.fixture(scope="session")
def broken_dir(tmp_path_factory) -> Path:
    return make_broken(tmp_path_factory.mktemp("fixtures-broken") / "broken")


@pytest.fixture(scope="session")
def big_scan(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fixtures-big") / "big"
    root.mkdir()
    make_big_scan(root / "scan120")
    return root


@pytest.fixture(autouse=True)
def _fresh_cache():
    from mfphys.cli.tui import data as D

    D.CACHE.clear()
    yield
    D.CACHE.clear()


def app_for(root, **kw):
    from mfphys.cli.tui.app import MfphysTUI

    return MfphysTUI(root, interval=kw.pop("interval", 0), **kw)


# --- data: listing, caching, problem files -------------------------------------------------------


def test_list_entries_describes_runs_scans_and_perturbations(runs_dir):
    from mfphys.cli.tui import data as D

    entries = {e.name: e for e in D.list_entries(runs_dir)}
    assert sorted(entries) == ["bp", "gbp", "pert", "scan"]
    gbp, bp, pert, sc = entries["gbp"], entries["bp"], entries["pert"], entries["scan"]
    assert (gbp.kind, gbp.status, gbp.mode, gbp.dataset, gbp.architecture, gbp.date) == \
        ("run", "done", "gbp", "teacher", "20-16-10", "2026-01-15 09:30")
    assert (bp.kind, bp.mode) == ("run", "bp")
    assert (pert.kind, pert.architecture) == ("perturbation", "20-16-10")
    assert (sc.kind, sc.status, sc.cells, sc.status_text) == ("scan", "done", (4, 0, 0, 0, 4), "done 4/4 cells")
    assert sc.dataset == "teacher" and sc.architecture == "20-16xd-10"
    assert all(e.ok for e in entries.values())
    assert D.find_baseline(gbp, entries.values()) == bp
    assert D.find_baseline(bp, entries.values()) is None


def test_problem_files_are_listed_with_their_error(broken_dir):
    from mfphys.cli.tui import data as D

    entries = {e.name: e for e in D.list_entries(broken_dir)}
    assert sorted(entries) == ["corrupt", "empty-scan", "foreign", "not-a-scan", "writing-scan"]  # no temp file
    assert entries["corrupt"].status == "error" and "not a readable netCDF file" in entries["corrupt"].error
    assert "not an mfphys file" in entries["foreign"].error
    assert entries["not-a-scan"].status == "error" and "scan.json" in entries["not-a-scan"].error
    assert entries["empty-scan"].cells == (0, 0, 0, 2, 2) and entries["empty-scan"].ok
    writing = entries["writing-scan"]
    assert writing.cells == (1, 1, 1, 1, 4) and writing.status == "running"
    assert writing.status_text == "running 1/4 cells, 1 failed"


def test_half_written_or_vanished_files_never_raise_from_listing(tmp_path, runs_dir):
    from mfphys.cli.tui import data as D
    from mfphys.errors import MfphysError

    raw = (runs_dir / "gbp.nc").read_bytes()
    (tmp_path / "half.nc").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "gone.nc").write_bytes(raw)
    entries = {e.name: e for e in D.list_entries(tmp_path)}
    assert entries["half"].status == "error"
    (tmp_path / "gone.nc").unlink()
    with pytest.raises(MfphysError, match="no such file"):
        D.load_run(entries["gone"].path)
    with pytest.raises(MfphysError):
        D.load_run(entries["half"].path)


def test_listing_rereads_only_changed_files(tmp_path, runs_dir, monkeypatch):
    from mfphys.cli.tui import data as D

    for name in ("gbp.nc", "bp.nc"):
        (tmp_path / name).write_bytes((runs_dir / name).read_bytes())
    reads = []
    real = D.read_attrs
    monkeypatch.setattr(D, "read_attrs", lambda p: reads.append(p.name) or real(p))
    D.list_entries(tmp_path)
    D.list_entries(tmp_path)
    assert sorted(reads) == ["bp.nc", "gbp.nc"]
    st = (tmp_path / "bp.nc").stat()
    os.utime(tmp_path / "bp.nc", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    D.list_entries(tmp_path)
    assert sorted(reads) == ["bp.nc", "bp.nc", "gbp.nc"]


@pytest.mark.parametrize("text, expected", [
    ("", ["bp", "gbp", "pert", "scan"]),
    ("scan", ["scan"]),
    ("run bp", ["bp", "gbp"]),  # every word must match: gbp's mode contains "bp"
    ("perturbation", ["pert"]),
    ("GBP", ["gbp"]),
    ("nothing-matches", []),
])
def test_filter_entries(runs_dir, text, expected):
    from mfphys.cli.tui import data as D

    assert [e.name for e in D.filter_entries(D.list_entries(runs_dir), text)] == expected


# --- data: the numbers of the views --------------------------------------------------------------


def test_scan_grid_matches_the_cell_files(runs_dir):
    """The heatmap's numbers are the replica mean and std of each cell file's own values."""
    from mfphys.cli.tui import data as D

    ds = D.load_scan(runs_dir / "scan")
    grid = D.scan_grid(ds, "sparsity", 2)
    assert (grid.row_dim, grid.col_dim) == ("depth", "n_train")
    assert grid.rows.tolist() == [1, 2] and grid.cols.tolist() == [200, 400]
    err = D.scan_grid(ds, "test_error")
    assert err.layer is None
    for i, depth in enumerate((1, 2)):
        for j, n in enumerate((200, 400)):
            cell = store.open_run(scan.cell_path(runs_dir / "scan", depth=depth, n_train=n))
            frac = cell["frac_vip"].sel(layer=1).values
            g = D.scan_grid(ds, "frac_vip", 1)
            assert g.mean[i, j] == pytest.approx(frac.mean())
            assert g.spread[i, j] == pytest.approx(frac.std(ddof=1))
            assert g.values[i, j].tolist() == pytest.approx(frac.tolist())
            assert err.mean[i, j] == pytest.approx(1 - cell["test_acc"].isel(epoch=-1).values.mean())
            # layer 2 is the output layer at depth 1 and a hidden layer at depth 2; layer 3 only at depth 2
            g3 = D.scan_grid(ds, "frac_vip", 3)
            assert np.isfinite(g3.mean[i, j]) == (depth == 2)
            assert grid.status[i, j] == "done"


def test_scan_grid_whole_network_is_connection_weighted(runs_dir):
    from mfphys.cli.tui import data as D

    ds = D.load_scan(runs_dir / "scan")
    assert D.scan_layers(ds) == [1, 2, 3, D.NETWORK]
    g = D.scan_grid(ds, "frac_vip", D.NETWORK)
    cell = store.open_run(scan.cell_path(runs_dir / "scan", depth=2, n_train=400))
    widths = (20, 16, 16, 10)
    n = np.array([a * b for a, b in zip(widths[:-1], widths[1:])])
    expected = (cell["frac_vip"].values * n).sum(axis=1) / n.sum()
    assert g.values[1, 1].tolist() == pytest.approx(expected.tolist())


def test_overlay_status_marks_cells_finished_since_the_last_read(broken_dir):
    from mfphys.cli.tui import data as D

    ds = D.load_scan(broken_dir / "writing-scan")
    entry = next(e for e in D.list_entries(broken_dir) if e.name == "writing-scan")
    keys = D.cell_keys(ds)
    assert keys[0, 0] == "depth=1,n_train=200"
    fresh = dict(entry.cell_status)
    assert D.overlay_status(ds, entry.cell_status).tolist() == [["done", "running"], ["failed", "pending"]]
    fresh[keys[1, 1]] = "done"  # finished after ds was read
    over = D.overlay_status(ds, tuple(fresh.items()))
    assert over[1, 1] == "unread"
    grid = D.scan_grid(ds, "test_error", overlay=over)
    assert grid.status[1, 1] == "unread" and grid.error[1, 0].startswith("training diverged")


def test_layer_table_and_curves(runs_dir):
    from mfphys.cli.tui import data as D

    run = D.load_run(runs_dir / "gbp.nc", baseline=runs_dir / "bp.nc")
    header, rows = D.layer_table(run)
    assert header == ["order parameter", "layer 1", "layer 2"]
    assert [r[0] for r in rows] == list(D.ORDER_COLUMNS)
    ds = store.open_run(runs_dir / "gbp.nc")
    mean, err = D.curve_stats(run.curves["test_acc"])
    assert mean == pytest.approx(ds["test_acc"].mean("replica").values)
    assert run.baseline_name == "bp" and run.baseline["train_loss"].shape == (2, 3)
    edges, counts = D.hist_counts(run, "pi", 0)
    assert counts.sum() == 2 * 16 * 20 and len(edges) == len(counts) + 1  # every connection, both replicas


# --- widgets: pure drawing functions -------------------------------------------------------------


def test_colour_scale_runs_from_dark_to_bright():
    from mfphys.cli.tui.widgets import VIRIDIS, colour_at, ink_for

    assert colour_at(0) == VIRIDIS[0] and colour_at(1) == VIRIDIS[-1]
    assert colour_at(-3) == VIRIDIS[0] and colour_at(7) == VIRIDIS[-1]
    lum = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in (colour_at(t) for t in np.linspace(0, 1, 50))]
    assert np.all(np.diff(lum) > 0)
    assert (ink_for(colour_at(0)), ink_for(colour_at(1))) == ("white", "black")


def test_braille_canvas_draws_a_diagonal_corner_to_corner():
    from mfphys.cli.tui.widgets import Series, braille_canvas

    bits, owner = braille_canvas([Series("", np.array([0.0, 1.0]), np.array([0.0, 1.0]), "red")], 10, 5,
                                 (0, 1), (0, 1))
    assert bits[4, 0] & 0x40  # bottom-left dot (x=0, y=3 of the last row)
    assert bits[0, 9] & 0x08  # top-right dot (x=1, y=0 of the first row)
    assert (owner >= 0).sum() == (bits > 0).sum() and np.all(bits.any(axis=0))  # one unbroken line


@pytest.mark.parametrize("n, width, total_cols", [(40, 80, 80), (40, 30, 20), (40, 40, 40), (7, 3, 3)])
def test_bar_columns_keep_every_count(n, width, total_cols):
    from mfphys.cli.tui.widgets import bar_columns

    counts = np.arange(n, dtype=float)
    cols = bar_columns(counts, width)
    assert len(cols) == total_cols <= width
    assert cols.sum() == pytest.approx(counts.sum() * (width // n if width >= n else 1))


@pytest.mark.parametrize("v, width, text", [(0.123456, 6, "0.1235"), (2.0, 6, "2"), (1e-5, 6, "1.0e-5"),
                                            (123456.7, 6, "123457"), (float("nan"), 6, "nan"), (0.0, 4, "0")])
def test_short_numbers_fit(v, width, text):
    from mfphys.cli.tui.widgets import short

    assert short(v, width) == text and len(text) <= width


# --- export ----------------------------------------------------------------------------------------


def test_export_scan_writes_csv_of_the_grid_and_png(runs_dir, tmp_path):
    from mfphys.cli.tui import data as D
    from mfphys.cli.tui import export as X

    grid = D.scan_grid(D.load_scan(runs_dir / "scan"), "sparsity", 1)
    paths = X.export_scan("scan", grid, tmp_path)
    assert [p.name for p in paths] == ["scan-scan-sparsity-layer1.csv", "scan-scan-sparsity-layer1.png"]
    rows = list(csv.DictReader(paths[0].open()))
    assert len(rows) == 4 and rows[0]["depth"] == "1" and rows[0]["n_train"] == "200"
    assert [float(r["sparsity_mean"]) for r in rows] == pytest.approx(grid.mean.ravel().tolist())
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


# --- the app: pilot tests --------------------------------------------------------------------------


@pilot_test
async def test_navigation_shows_each_kind_of_view(runs_dir):
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
        head = str(app.query_one("#run-head").render())
        assert "BP baseline: bp" in head and "test acc" in head
        loss = app.query_one("#plot-loss", LinePlot)
        assert [s.label for s in loss.series] == ["gbp", "BP"]
        table = app.query_one(RunView).query_one("#run-order")
        assert table.row_count == 8 and [str(c.label) for c in table.columns.values()][1:] == ["layer 1", "layer 2"]
        await pilot.press("down")
        await settle(app, pilot)
        assert app.view_kind == "perturbation"
        labels = [str(c.label) for c in app.query_one("#pert-table").columns.values()]
        assert labels[:3] == ["fraction", "error_vip", "error_variable"]
        await pilot.press("down")
        await settle(app, pilot)
        assert app.view_kind == "scan"
        assert app.query_one(Heatmap).grid.mean.shape == (2, 2)
        text = screen_text(app)
        assert "n_train" in text and "depth" in text and "4 of 4 entries" in text


@pilot_test
async def test_typing_filters_the_sidebar(runs_dir):
    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("g", "b")  # letters that are not keys start the filter
        await settle(app, pilot)
        assert app.query_one("#filter").value == "gb"
        assert [e.name for e in app.shown_entries] == ["gbp"]
        assert app.current.name == "gbp"
        assert "1 of 4 entries" in str(app.query_one("#count").render())
        await pilot.press("escape")
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["bp", "gbp", "pert", "scan"]
        await pilot.press("slash", "s", "c", "enter")
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["scan"] and app.view_kind == "scan"
        assert app.focused is app.query_one("#entries")


@pilot_test
async def test_scan_keys_cycle_parameter_layer_values_and_spread(runs_dir):
    from mfphys.cli.tui import data as D
    from mfphys.cli.tui.widgets import Heatmap

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        params = D.scan_params(app.loaded[1].ds)
        heat = app.query_one(Heatmap)
        assert heat.grid.param == params[0] == "test_error"
        await pilot.press("p")
        assert heat.grid.param == params[1]
        await pilot.press("P", "P")
        assert heat.grid.param == params[-1]
        await pilot.press("p", "p", "p")  # -> sparsity, per layer
        assert heat.grid.param == "sparsity" and heat.grid.layer == 1
        assert "layer 1" in str(app.query_one("#scan-head").render())
        await pilot.press("l")
        assert heat.grid.layer == 2
        await pilot.press("L", "L")
        assert heat.grid.layer == D.NETWORK
        assert "whole network" in str(app.query_one("#scan-head").render())
        await pilot.press("p", "p")  # frac_uip -> frac_vip ... : back to a clear parameter
        await pilot.press("P", "P", "P", "P")  # test_error: numbers are distinct
        assert heat.grid.param == "test_error"
        before = screen_text(app)
        await pilot.press("v")
        after = screen_text(app)
        value = D.scan_grid(app.loaded[1].ds, "test_error").mean[1, 1]
        from mfphys.cli.tui.widgets import short

        assert heat.show_values and short(value, heat.size.width) not in before
        assert any(short(value, w) in after for w in range(3, 9))
        await pilot.press("s")
        assert heat.stat == "spread" and "std over replicas" in str(app.query_one("#scan-head").render())
        heat.focus()
        await pilot.press("down", "right")
        assert heat.cursor == (1, 1)
        cell = str(app.query_one("#scan-cell").render())
        assert "depth = 2, n_train = 400: done" in cell and "test_error =" in cell


@pilot_test
async def test_run_keys_change_histogram_layer_and_curves(runs_dir):
    from mfphys.cli.tui.widgets import LinePlot

    app = app_for(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "gbp")
        assert "layer 1" in str(app.query_one("#hist-head").render())
        await pilot.press("l")
        assert "layer 2" in str(app.query_one("#hist-head").render())
        await pilot.press("l")
        assert "layer 1" in str(app.query_one("#hist-head").render())
        await pilot.press("s")  # one curve per replica
        assert len(app.query_one("#plot-acc", LinePlot).series) == 4  # 2 gbp + 2 BP replicas
        await pilot.press("p")  # not a run key: nothing happens, nothing breaks
        assert app.view_kind == "run"


@pilot_test
async def test_export_key_writes_csv_and_png(runs_dir, tmp_path):
    app = app_for(runs_dir, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, "scan")
        await pilot.press("p", "p", "l", "e")  # sparsity, layer 2
        await settle(app, pilot)
        assert sorted(p.name for p in app.last_export) == ["scan-scan-sparsity-layer2.csv",
                                                           "scan-scan-sparsity-layer2.png"]
        rows = list(csv.DictReader((tmp_path / "scan-scan-sparsity-layer2.csv").open()))
        assert [r["status"] for r in rows] == ["done"] * 4
        await select(app, pilot, "gbp")
        await pilot.press("l", "e")
        await settle(app, pilot)
        names = sorted(p.name for p in app.last_export)
        assert names == ["gbp-run-curves.csv", "gbp-run-curves.png", "gbp-run-hist-layer2.csv",
                         "gbp-run-hist-layer2.png", "gbp-run-order.csv"]
        curves = list(csv.DictReader((tmp_path / "gbp-run-curves.csv").open()))
        ds = store.open_run(runs_dir / "gbp.nc")
        assert [float(r["test_acc_mean"]) for r in curves] == pytest.approx(ds["test_acc"].mean("replica").values)
        assert "bp_train_loss_mean" in curves[0]
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
        assert keys[: len(MfphysTUI.BINDINGS)] == ["q", "?", "/", "p", "P", "l", "L", "v", "s", "e", "r"]
        assert len(key_rows(MfphysTUI.BINDINGS)) == len(MfphysTUI.BINDINGS)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


@pilot_test
async def test_problem_folder_opens_and_shows_each_error(broken_dir):
    from mfphys.cli.tui.widgets import Heatmap

    app = app_for(broken_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "5 of 5 entries, 3 with errors" in str(app.query_one("#count").render())
        for name, expect in (("corrupt", "not a readable netCDF file"), ("foreign", "not an mfphys file"),
                             ("not-a-scan", "scan.json")):
            await select(app, pilot, name)
            assert app.view_kind is None and expect in str(app.query_one("#message-text").render())
            await pilot.press("p", "l", "v", "s", "e")  # no view keys apply: nothing breaks
        await select(app, pilot, "empty-scan")
        assert app.view_kind == "scan" and set(app.query_one(Heatmap).grid.status.ravel()) == {"pending"}
        await select(app, pilot, "writing-scan")
        grid = app.query_one(Heatmap).grid
        assert grid.status.tolist() == [["done", "running"], ["failed", "pending"]]
        app.query_one(Heatmap).focus()
        await pilot.press("down")
        assert "training diverged" in str(app.query_one("#scan-cell").render())


@pilot_test
async def test_live_refresh_follows_new_changed_and_vanished_files(runs_dir, tmp_path):
    import shutil

    root = tmp_path / "live"
    root.mkdir()
    shutil.copy(runs_dir / "gbp.nc", root / "gbp.nc")
    app = app_for(root, interval=0.2)

    async def wait_for(cond, timeout=10.0):
        t0 = time.monotonic()
        while not cond():
            assert time.monotonic() - t0 < timeout, "the app did not refresh"
            await pilot.pause(0.1)

    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert [e.name for e in app.shown_entries] == ["gbp"]
        store.write_atomic(store.open_run(runs_dir / "bp.nc"), root / "bp.nc")  # a run appears
        await wait_for(lambda: [e.name for e in app.shown_entries] == ["bp", "gbp"])
        assert app.current.name == "gbp"  # the cursor stays on what the user looks at
        await wait_for(lambda: "BP baseline: bp" in str(app.query_one("#run-head").render()))
        (root / "gbp.nc").unlink()  # the open run vanishes
        await wait_for(lambda: [e.name for e in app.shown_entries] == ["bp"])
        await settle(app, pilot)
        assert app.current.name == "bp" or "gone" in str(app.query_one("#message-text").render())
        # a scan being written: cells finish while the app shows it
        spec = write_scan(root / "scan", depth=(1,), n_train=(200, 400), stop_at_cell=1)
        await wait_for(lambda: any(e.name == "scan" for e in app.shown_entries))
        await select(app, pilot, "scan")
        from mfphys.cli.tui.widgets import Heatmap

        assert app.query_one(Heatmap).grid.status.tolist() == [["done", "pending"]]
        mark_running(root / "scan", spec.cells()[1].key)
        await wait_for(lambda: app.query_one(Heatmap).grid.status.tolist() == [["done", "running"]])
        scan.run_scan(spec, root / "scan")
        await wait_for(lambda: app.query_one(Heatmap).grid.status.tolist() == [["done", "done"]])
        assert np.isfinite(app.query_one(Heatmap).grid.mean).all()


def test_scan_rereads_are_throttled_by_their_own_duration(runs_dir):
    from mfphys.cli.tui import data as D
    from mfphys.cli.tui.app import MfphysTUI, ScanPayload

    app = MfphysTUI(runs_dir, interval=2.5)
    ds, now = D.load_scan(runs_dir / "scan"), time.monotonic()

    def read(age, took):  # a combined dataset read `age` s ago that took `took` s (synthetic clock)
        return ScanPayload(ds, loaded_at=now - age, seconds=took)

    assert not app._scan_read_due(read(2.0, 0.1))  # within the interval
    assert app._scan_read_due(read(3.0, 0.1))
    assert not app._scan_read_due(read(30.0, 10.0))  # 4 x 10 s
    assert app._scan_read_due(read(41.0, 10.0))


@pytest.mark.slow
@pilot_test
async def test_big_scan_loads_once_and_redraws_from_memory(big_scan, monkeypatch):
    """120 cells: one read of the combined dataset; parameter and layer keys do not read files."""
    from mfphys.cli.tui import data as D
    from mfphys.cli.tui.widgets import Heatmap

    calls = []
    real = D._open_scan
    monkeypatch.setattr(D, "_open_scan", lambda f: calls.append(f) or real(f))
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


# --- snapshots ---------------------------------------------------------------------------------------


def test_snapshot_run_view(runs_dir, snap_compare):
    async def show(pilot):
        await select(pilot.app, pilot, "gbp")

    assert snap_compare(app_for(runs_dir), terminal_size=SIZE, run_before=show)


def test_snapshot_scan_view(runs_dir, snap_compare):
    async def show(pilot):
        await select(pilot.app, pilot, "scan")
        await pilot.press("p", "p", "p", "v")  # frac_vip, layer 1, values on

    assert snap_compare(app_for(runs_dir), terminal_size=SIZE, run_before=show)


# --- the command ---------------------------------------------------------------------------------------


def test_cli_refuses_a_missing_folder_in_one_line(tmp_path, cli):
    result = cli("tui", tmp_path / "nope")
    assert result.exit_code != 0
    assert "no such folder" in result.output and "Traceback" not in result.output
