"""The run and perturbation views' models (cli/tui/models/run.py): tables and statistics over replicas."""

from __future__ import annotations

import pytest

from mfphys import store
from mfphys.cli.tui.models.run import (
    ORDER_COLUMNS,
    SHOWN_ORDER,
    curve_stats,
    hist_counts,
    layer_table,
    load_perturbation,
    load_run,
    order_stats,
    perturbation_table,
)
from mfphys.errors import MfphysError
from mfphys.stats import mean_err


def test_layer_table_and_curves(runs_dir):
    run = load_run(runs_dir / "gbp.nc", baseline=runs_dir / "bp.nc")
    header, rows = layer_table(run)
    assert header == ["order parameter", "layer 1 live", "layer 2"]
    assert [r[0] for r in rows] == ["sparsity = frac_uip"] + list(SHOWN_ORDER[1:])
    assert "frac_uip" not in SHOWN_ORDER and set(SHOWN_ORDER) < set(ORDER_COLUMNS)
    assert layer_table(run, "all")[0] == ["order parameter", "layer 1", "layer 2"]
    ds = store.open_run(runs_dir / "gbp.nc")
    mean, err = curve_stats(run.curves["test_acc"])
    assert mean == pytest.approx(ds["test_acc"].mean("replica").values)
    assert run.baseline_name == "bp" and run.baseline["train_loss"].shape == (2, 3)
    edges, counts = hist_counts(run, "pi", 0)
    assert counts.sum() == 2 * 16 * 20 and len(edges) == len(counts) + 1  # every connection, both replicas


def test_statistics_are_those_of_mfphys_stats(runs_dir):
    """Means and errors over replicas are mean_err's, number for number."""
    run = load_run(runs_dir / "gbp.nc")
    mean, err = curve_stats(run.curves["train_loss"])
    assert list(zip(mean, err)) == [mean_err(run.curves["train_loss"][:, e]) for e in range(run.epoch.size)]
    mean, err = order_stats(run, "frac_vip")
    assert list(zip(mean, err)) == [mean_err(run.order["frac_vip"][:, i]) for i in range(run.layers.size)]
    p = load_perturbation(runs_dir / "pert.nc")
    header, rows = perturbation_table(p)
    assert header[:3] == ["fraction", "error_vip_mean", "error_vip_sem"]
    assert [r[0] for r in rows] == p.fraction.tolist()
    assert [tuple(r[1:3]) for r in rows] == [mean_err(p.errors["error_vip"][i]) for i in range(p.fraction.size)]


def test_a_file_of_another_kind_is_one_clear_error(runs_dir):
    with pytest.raises(MfphysError, match="an mfphys perturbation file, not a run file"):
        load_run(runs_dir / "pert.nc")
    with pytest.raises(MfphysError, match="an mfphys run file, not a perturbation file"):
        load_perturbation(runs_dir / "gbp.nc")
