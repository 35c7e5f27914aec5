"""Adaptive scans (mfphys.scan.adaptive, adaptive_view): axes through the family protocol, the
spec and its hash, the learner rebuilt from finished cells, the view along ``cell``, and the
evidence that the cells go where the target changes (a teacher-student case small enough here).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mfphys import registry, scan
from mfphys.errors import MfphysError

pytest.importorskip("adaptive")

TEACHER = {"dataset": "teacher", "input_dim": 20, "width": 10, "epochs": 2, "replicas": 1, "backend": "numpy",
           "batch_size": 10, "n_test": 200}


def teacher_spec(target="test_error", axes=None, depth=(1,), **fixed):
    return scan.AdaptiveSpec.build(axes or {"alpha": (0.5, 50)}, discrete={"depth": list(depth)},
                                   fixed={**TEACHER, **fixed}, target=target)


# --- axes through the family protocol -------------------------------------------------------------


def test_family_axes_alpha_sets_n_train_and_steps_snap_to_divisors():
    ffn, rnn = registry.get("ffn").adaptive_axes(), registry.get("rnn").adaptive_axes()
    assert ffn["alpha"].sets == ("n_train",) and ffn["n_train"].scale == "log"
    assert ffn["alpha"].point(2.5, {"input_dim": 20}) == (2.5, {"n_train": 50})
    assert ffn["alpha"].point(0.01, {"input_dim": 20}) == (0.05, {"n_train": 1})  # at least one pattern
    assert ffn["width"].point(37.6, {}) == (38, {"width": 38})
    assert ffn["lr"].point(0.013, {}) == (0.013, {"lr": 0.013})
    assert "replicas" not in ffn and "depth" in ffn  # not scannable options are no axes
    assert [rnn["steps"].point(v, {})[0] for v in (1, 5, 10, 20, 30, 100, 800)] == [1, 4, 8, 16, 28, 98, 784]


def test_cell_of_an_alpha_point_is_an_ordinary_configuration():
    spec = teacher_spec(depth=(1, 2))
    cell = spec.cell((("depth", 2),), [3.01])
    assert cell.key == "depth=2,alpha=3.0" and cell.config.n_train == 60
    assert cell.config.layers == (20, 10, 10, 10)
    assert spec.dims == ("depth", "alpha") and spec.grid_dict == {"depth": [1, 2], "alpha": [0.5, 50.0]}
    assert "n_train" not in spec.fixed_dict


@pytest.mark.parametrize("text, expect", [
    ("n_train", "NAME=LOW:HIGH"),
    ("n_train=500", "NAME=LOW:HIGH"),
    ("n_train=5:x", "must be numbers"),
    ("n_train=500:100", "LOW < HIGH"),
    ("lr=0:0.1:log", "LOW > 0"),
    ("lr=0.1:0.2:cubic", "log or linear"),
    ("replicas=1:4", "not a continuous axis"),
])
def test_bad_axes_are_refused_in_one_line(text, expect):
    with pytest.raises(MfphysError, match=expect):
        scan.parse_axis(text)


def test_spec_refuses_clashes_and_corner_cells_that_cannot_run():
    with pytest.raises(MfphysError, match="set the same option twice"):
        teacher_spec(axes={"alpha": (1, 5), "n_train": (20, 100)})
    with pytest.raises(MfphysError, match="batch-size 10 is larger than n_train"):
        teacher_spec(axes={"n_train": (5, 100)})  # the lower corner cannot hold one batch
    with pytest.raises(MfphysError, match="set by the continuous axis"):
        scan.adaptive_spec_from_options({"depth": "1", "n_train": "100"}, ["alpha=1:5"])


def test_hash_covers_the_axes_not_the_target_and_differs_from_a_grid():
    a = teacher_spec()
    assert a.scan_hash() == teacher_spec(target="sparsity").scan_hash()
    assert a.scan_hash() != teacher_spec(axes={"alpha": (0.5, 40)}).scan_hash()
    assert a.scan_hash() != teacher_spec(axes={"alpha": (0.5, 50, "linear")}).scan_hash()
    assert a.scan_hash() != a.base.scan_hash()


# --- running, resuming, reading back --------------------------------------------------------------


def test_resumed_scan_asks_for_the_cells_an_uninterrupted_one_does(tmp_path):
    spec = teacher_spec()
    whole = scan.run_adaptive_scan(spec, tmp_path / "whole", cells=7)
    assert (whole.done, whole.trained, whole.failed) == (7, 7, 0)
    first = scan.run_adaptive_scan(spec, tmp_path / "parts", cells=4)
    again = scan.run_adaptive_scan(spec, tmp_path / "parts", cells=7)  # the learner is rebuilt from 4 cells
    assert (first.trained, again.skipped, again.trained) == (4, 4, 3)
    names = {p.name for p in (tmp_path / "whole" / "cells").glob("*.nc")}
    assert names == {p.name for p in (tmp_path / "parts" / "cells").glob("*.nc")}
    assert scan.run_adaptive_scan(spec, tmp_path / "parts", cells=7).trained == 0  # budget spent
    meta = json.loads((tmp_path / "whole" / "scan.json").read_text())
    assert meta["adaptive"]["axes"] == {"alpha": {"bounds": [0.5, 50.0], "scale": "log"}}
    status = scan.scan_status(tmp_path / "whole")
    assert (status["total"], status["done"], status["pending"]) == (7, 7, 0)

    ds = scan.open_scan(tmp_path / "whole")
    assert ds.sizes["cell"] == 7 and set(ds.status.values) == {"done"}
    assert (ds.n_train.values == np.round(ds.alpha.values * 20)).all()  # the option alpha sets, per cell
    assert np.allclose(ds.target.sel(target_name="test_error").values, ds.test_error.mean("replica").values)
    grid = scan.interpolate(ds, "test_error", points=9)
    assert grid.dims == ("alpha",) and math.isclose(grid.alpha.values[0], 0.5)
    assert np.allclose(grid.values[[0, -1]], ds.test_error.mean("replica").values[[0, -1]])


def test_a_folder_of_another_kind_is_refused(tmp_path, done_scan):
    with pytest.raises(MfphysError, match="different scan configuration"):
        scan.run_adaptive_scan(teacher_spec(), done_scan[0], cells=3)
    with pytest.raises(MfphysError, match="budget"):
        scan.run_adaptive_scan(teacher_spec(), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unknown_target_stops_with_one_line(tmp_path):
    with pytest.raises(MfphysError, match="--target no_such: the cells record no"):
        scan.run_adaptive_scan(teacher_spec(target="no_such"), tmp_path / "t", cells=3)


def test_targets_network_mean_layer_and_gap(tmp_path):
    folder = tmp_path / "t"
    scan.run_adaptive_scan(teacher_spec(target="sparsity,sparsity:1,sparsity:-1,gap,sampled_error"), folder,
                           cells=2)
    ds = scan.open_scan(folder)
    t = ds.target
    assert np.allclose(t.sel(target_name="sparsity"), scan.network_mean(ds, "sparsity", live=True).mean("replica"))
    assert np.allclose(t.sel(target_name="sparsity:-1"), ds.sparsity.sel(layer=2).mean("replica"))
    assert np.allclose(t.sel(target_name="gap"), (ds.test_acc.isel(epoch=-1) - ds.test_acc_sampled).mean("replica"))


def test_cells_concentrate_where_the_target_changes(tmp_path):
    """Teacher-student: the sparsity is 0 at small loads alpha = P/N0 and rises between about 4
    and 20 (measured: 0 up to alpha 3, 0.03 at 5, 0.2 at 16). Twelve adaptive cells on a log axis
    from 0.5 to 50 put more cells in the rise than in the flat part of the same log width, where a
    uniform grid puts the same number in each."""
    spec = teacher_spec(target="sparsity")
    scan.run_adaptive_scan(spec, tmp_path / "a", cells=12)
    ds = scan.open_scan(tmp_path / "a")
    alpha, y = ds.alpha.values, ds.target.values[:, 0]
    assert y[alpha < 3].max() < 0.01 and y[alpha > 15].min() > 0.1  # flat, then risen
    rise = ((alpha >= 4) & (alpha <= 20)).sum()  # log width 0.70
    flat = ((alpha >= 0.5) & (alpha <= 3)).sum()  # log width 0.78
    assert rise >= flat + 2, sorted(alpha)
    uniform = np.geomspace(0.5, 50, 12)
    assert rise > ((uniform >= 4) & (uniform <= 20)).sum()


def test_two_continuous_axes_learn_on_a_plane_and_interpolate_on_it(tmp_path):
    spec = teacher_spec(axes={"alpha": (1, 20), "lr": (0.01, 0.3)}, target="sparsity")
    scan.run_adaptive_scan(spec, tmp_path / "plane", cells=6)
    ds = scan.open_scan(tmp_path / "plane")
    corners = {(a, lr) for a, lr in zip(ds.alpha.values, ds.lr.values)}
    assert {(1.0, 0.01), (1.0, 0.3), (20.0, 0.01), (20.0, 0.3)} <= corners  # a Learner2D starts at the corners
    assert "lr_schedule" in ds  # the per-epoch learning rate, renamed as in a grid that scans lr
    grid = scan.interpolate(ds, ds.target.sel(target_name="sparsity", drop=True), points=5)
    assert grid.dims == ("alpha", "lr") and grid.shape == (5, 5) and np.isfinite(grid.values).all()
    assert grid.sel(alpha=1.0, lr=0.01).item() == pytest.approx(
        ds.target.values[(ds.alpha.values == 1.0) & (ds.lr.values == 0.01), 0].item())
