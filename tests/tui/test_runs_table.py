"""The runs table's model (cli/tui/models/runs_table.py): rows against the run files, sorting, caching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfphys import store
from mfphys.cli.tui.models.listing import list_entries
from mfphys.cli.tui.models.runs_table import COLUMNS, RunRow, read_numbers, row_cells, run_rows, sort_rows
from mfphys.live import network_mean


def test_rows_are_the_runs_with_their_settings_and_results(runs_dir):
    rows = run_rows(list_entries(runs_dir))
    assert [r.name for r in rows] == ["bp", "gbp"]  # the perturbation file and the scan are not runs
    gbp = rows[1]
    ds = store.open_run(runs_dir / "gbp.nc")
    assert (gbp.dataset, gbp.architecture, gbp.mode, gbp.epochs) == ("teacher", "20-16-10", "gbp", 3)
    assert gbp.accuracy == pytest.approx(float(ds["test_acc"].isel(epoch=-1).mean()))
    n = np.array([20 * 16, 16 * 10])  # no dead inputs in teacher data: every connection counts
    assert gbp.vip == pytest.approx(float(network_mean(ds["frac_vip_live"].values, n).mean()))
    assert gbp.sparsity == pytest.approx(float(network_mean(ds["sparsity_live"].values, n).mean()))
    assert gbp.date == "2026-01-15 09:30" and not gbp.error
    assert rows[0].vip == pytest.approx(1.0)  # BP: every connection is very important
    assert len(row_cells(gbp)) == len(COLUMNS)


def test_whole_network_fractions_count_only_live_inputs_in_layer_1(runs_dir, tmp_path):
    ds = store.open_run(runs_dir / "gbp.nc")
    dead = np.zeros(20, dtype=np.int8)
    dead[:5] = 1  # 5 constant inputs: layer 1 has 15 x 16 live connections
    ds["dead_inputs"] = ("input", dead, ds["dead_inputs"].attrs)
    ds["sparsity_live"] = ds["sparsity_live"].copy(data=np.array([[0.5, 0.1], [0.3, 0.1]]))
    store.write_atomic(ds, tmp_path / "dead.nc")
    n = read_numbers(tmp_path / "dead.nc")
    assert n.live == (15, 20)
    want = (np.array([0.5, 0.3]) * 15 * 16 + 0.1 * 16 * 10) / (15 * 16 + 16 * 10)
    assert n.sparsity == pytest.approx(want)


def test_sorting_by_each_column_keeps_missing_numbers_last():
    rows = [RunRow(path=f"{c}.nc", name=c, dataset=d, accuracy=a, date=t)
            for c, d, a, t in (("b", "mnist", 0.9, "2026-01-02"), ("A", "teacher", math.nan, "2026-01-03"),
                               ("c", "Fashion", 0.5, "2026-01-01"))]
    assert [r.name for r in sort_rows(rows, "name")] == ["A", "b", "c"]  # case ignored
    assert [r.name for r in sort_rows(rows, "name", reverse=True)] == ["c", "b", "A"]
    assert [r.name for r in sort_rows(rows, "accuracy")] == ["c", "b", "A"]
    assert [r.name for r in sort_rows(rows, "accuracy", reverse=True)] == ["b", "c", "A"]  # NaN last both ways
    assert [r.name for r in sort_rows(rows, "dataset")] == ["c", "b", "A"]
    assert [r.name for r in sort_rows(rows, "date", reverse=True)] == ["A", "b", "c"]
    for column in COLUMNS:
        assert len(sort_rows(rows, column)) == 3
    with pytest.raises(ValueError):
        sort_rows(rows, "nope")


def test_rows_are_read_once_per_file_version_and_problem_files_are_rows_with_errors(runs_dir, tmp_path, monkeypatch):
    import shutil

    from mfphys.cli.tui.models import runs_table

    shutil.copy(runs_dir / "gbp.nc", tmp_path / "gbp.nc")
    calls = []
    real = runs_table._read_numbers
    monkeypatch.setattr(runs_table, "_read_numbers", lambda p: calls.append(p) or real(p))
    run_rows(list_entries(tmp_path))
    run_rows(list_entries(tmp_path))
    assert len(calls) == 1  # cached by (mtime, size)
    (tmp_path / "half.nc").write_bytes(b"CDF\x01 not really")
    rows = run_rows(list_entries(tmp_path))
    assert [r.name for r in rows] == ["gbp"]  # an unreadable file has no kind: it is not a run row
    monkeypatch.setattr(runs_table, "_read_numbers",
                        lambda p: (_ for _ in ()).throw(runs_table.MfphysError(f"cannot read {p}: gone")))
    runs_table.CACHE.clear()
    (row,) = run_rows(list_entries(tmp_path))
    assert "gone" in row.error and math.isnan(row.accuracy) and row_cells(row)[5] == "-"


def test_a_run_file_without_epochs_has_a_row(tmp_path):
    """The file ``mfphys train`` writes at the start of a run: 0 epochs, no accuracy yet."""
    from tests.helpers import tiny_config, write_checkpoint

    write_checkpoint(tmp_path / "new.nc", tiny_config(epochs=4), 0)
    (row,) = run_rows(list_entries(tmp_path))
    assert row.error == "" and row.epochs == 0 and math.isnan(row.accuracy) and 0 <= row.vip <= 1


def test_extra_columns_show_tags_and_the_settings_that_differ():
    from mfphys.cli.tui.models.runs_table import differing_columns

    rows = [RunRow(path=f"{n}.nc", name=n, tags=t, settings=(("lr", lr), ("seed", "0"), ("layers", "20,16,10")))
            for n, t, lr in (("a", ("demo",), "0.05"), ("b", (), "0.1"), ("c", ("x", "y"), "0.2"))]
    assert differing_columns(rows) == ("tags", "lr")  # seed and layers are the same in every run
    assert [r.name for r in sort_rows(rows, "lr", reverse=True)] == ["c", "b", "a"]  # as numbers
    assert [r.name for r in sort_rows(rows, "tags")] == ["b", "a", "c"]
    assert row_cells(rows[2], ("tags", "lr", "seed"))[-3:] == ["x,y", "0.2", "0"]
    assert differing_columns(rows[:1]) == ("tags",)
