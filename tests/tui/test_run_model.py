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


def test_partial_run_files_from_epoch_0(tmp_path):
    """A run file written at the start (0 epochs) and after a checkpoint: curves, the accuracy
    so far (none at epoch 0), the trajectories recorded so far."""
    import numpy as np

    from mfphys.cli.tui.models.run import dyn_params, trajectory
    from tests.helpers import tiny_config, write_checkpoint

    for epochs, dyn in ((0, [0]), (2, [0, 1, 2])):
        write_checkpoint(tmp_path / f"r{epochs}.nc", tiny_config(epochs=4), epochs)
        run = load_run(tmp_path / f"r{epochs}.nc")
        assert run.epoch.size == epochs and run.curves["test_acc"].shape == (2, epochs)
        assert run.epochs_total == 4 and run.dyn_epoch.tolist() == dyn
        assert np.isnan(run.final["test_acc"]).all() == (epochs == 0)
        assert dyn_params(run)[:4] == ["frac_vip", "sparsity", "frac_variable", "entropy"]
        lines = trajectory(run, "frac_vip")
        assert [label for label, _ in lines] == ["L1 live", "L2"] and lines[0][1].shape == (2, len(dyn))
        assert [label for label, _ in trajectory(run, "frac_vip", "all")] == ["L1", "L2"]
        header, rows = layer_table(run)  # the order table of the parameters so far
        assert len(rows) == len(SHOWN_ORDER)


def test_trajectories_end_at_the_final_order_parameters(runs_dir):
    import numpy as np

    from mfphys.cli.tui.models.run import baseline_trajectory, trajectory

    run = load_run(runs_dir / "gbp.nc", baseline=runs_dir / "bp.nc")
    ds = store.open_run(runs_dir / "gbp.nc")
    assert run.dyn_epoch.tolist() == ds["dyn_epoch"].values.tolist() == [0, 1, 2, 3]
    (l1, v1), (l2, v2) = trajectory(run, "entropy")
    np.testing.assert_allclose(v1[:, -1], ds["entropy_live"].sel(layer=1).values)
    np.testing.assert_allclose(v2[:, -1], ds["entropy"].sel(layer=2).values)
    base = baseline_trajectory(run, "frac_vip")  # BP: pi = Xi = 0, every connection very important
    assert [label for label, _ in base] == ["BP L1", "BP L2"] and all(np.all(v == 1) for _, v in base)
