"""``mfphys reproduce --quick``: every dataset and figure of the paper's experiments is produced."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import xarray as xr

from mfphys.reproduce import EXPERIMENTS, Protocol
from tests.helpers import one_error_line


@pytest.fixture(scope="module")
def quick(tmp_path_factory, mnist_dir, cli):
    out = tmp_path_factory.mktemp("paper")
    res = cli("reproduce", "all", "--quick", "--backend", "numpy", "--data-dir", mnist_dir, "--out", out,
              catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out, res


def test_every_dataset_and_figure_is_written(quick):
    out, res = quick
    for name in EXPERIMENTS:
        ds = xr.open_dataset(out / f"{name}.nc").load()
        assert ds.attrs["mfphys_kind"] in ("reproduction", "perturbation")
        img = matplotlib.image.imread(out / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
        assert img[..., :3].std() > 0.05  # not a blank canvas
    assert "expected duration about" in res.stderr and "calibrated on this machine now" in res.stderr  # announced first


def test_datasets_have_the_protocol_dimensions_and_no_nan(quick):
    out, _ = quick
    p = Protocol.quick()
    c = xr.open_dataset(out / "curves.nc").load()
    assert list(c.mode.values) == ["gbp", "bp"] and c.sizes["epoch"] == p.epochs and c.sizes["replica"] == p.seeds
    assert np.all(np.isfinite(c.test_error)) and float(c.test_error.max()) <= 100
    d = xr.open_dataset(out / "distributions.nc").load()
    assert d.sizes["layer"] == 3
    np.testing.assert_allclose(d.frac_vip + d.frac_uip + d.frac_variable, 1.0)
    per_layer = d.hist_pi_total.sum("pi_bin").values
    np.testing.assert_array_equal(per_layer, [784 * 100 * p.seeds, 100 * 100 * p.seeds, 100 * 10 * p.seeds])
    q = xr.open_dataset(out / "perturbation.nc").load()
    np.testing.assert_allclose(q.fraction, p.fractions)
    assert np.all(np.isfinite(q.error_vip)) and np.all(np.isfinite(q.error_variable))
    np.testing.assert_allclose(q.error_vip.isel(fraction=0), q.error_variable.isel(fraction=0))
    e = xr.open_dataset(out / "entropy.nc").load()
    assert list(e.n_train.values) == list(p.entropy_sizes) and e.sizes["layer"] == p.entropy_depth + 1
    assert np.all(np.isfinite(e.entropy))
    y = xr.open_dataset(out / "dynamics.nc").load()
    assert y.dyn_epoch.values.tolist() == [0, 1, 2, 5, 6] and y.sizes["replica"] == p.seeds and y.sizes["layer"] == 3
    assert y.frac_vip.dims == ("replica", "dyn_epoch", "layer") and np.all(np.isfinite(y.entropy))
    np.testing.assert_allclose(y.frac_vip + y.frac_uip + y.frac_variable, 1.0)
    # the last recorded epoch is the trained network of the distributions experiment (layer 1: live inputs)
    np.testing.assert_allclose(y.frac_vip.isel(dyn_epoch=-1), d.frac_vip_live)
    np.testing.assert_allclose(y.frac_vip_all_inputs.isel(dyn_epoch=-1), d.frac_vip)
    np.testing.assert_allclose(y.entropy_mean, y.entropy.mean("replica"))


def test_rerun_reuses_finished_work(quick, mnist_dir, cli):
    out, _ = quick
    before = {f.name: f.stat().st_mtime_ns for f in out.glob("run-*.nc")}
    res = cli("reproduce", "curves", "--quick", "--backend", "numpy", "--data-dir", mnist_dir, "--out", out,
              catch_exceptions=False)
    assert res.exit_code == 0
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("run-*.nc")} == before


def test_the_dynamics_experiment_reuses_the_gbp_run(quick, mnist_dir, cli):
    out, _ = quick
    before = (out / "run-gbp.nc").stat().st_mtime_ns
    res = cli("reproduce", "dynamics", "--quick", "--backend", "numpy", "--data-dir", mnist_dir, "--out", out,
              catch_exceptions=False)
    assert res.exit_code == 0 and "5. connection categories" in res.output
    assert (out / "run-gbp.nc").stat().st_mtime_ns == before


def test_a_run_without_dynamics_is_trained_again_for_them(tmp_path):
    """A run file of the same configuration written before the dynamics existed: reused for the
    other experiments, trained again (the same numbers) when the dynamics are asked for."""
    from mfphys import store
    from mfphys.reproduce import train_or_reuse
    from tests.helpers import tiny_config

    path = tmp_path / "run-gbp.nc"
    first = train_or_reuse(tiny_config(), path)
    old = first.drop_vars([k for k in first.data_vars if k.startswith(("dyn_", "snap_"))])
    old = old.drop_dims(["dyn_epoch", "snap_epoch"])
    store.write_atomic(old, path)
    assert "dyn_epoch" not in train_or_reuse(tiny_config(), path).coords  # reused as it is
    again = train_or_reuse(tiny_config(), path, dynamics=True)
    assert "dyn_epoch" in again.coords and "dyn_epoch" in store.open_run(path).coords
    np.testing.assert_array_equal(again.test_acc.values, first.test_acc.values)


def test_an_interrupted_run_file_is_continued_from_its_checkpoint(tmp_path):
    from mfphys import runfile, store
    from mfphys.reproduce import train_or_reuse
    from tests.helpers import assert_same_run, tiny_config

    cfg = tiny_config()
    whole = train_or_reuse(cfg, tmp_path / "whole.nc")
    path = tmp_path / "run-gbp.nc"
    with pytest.raises(runfile.Interrupted):
        runfile.train_run(runfile.Plan("new", path, cfg), stop=lambda: True)  # after epoch 1
    assert store.read_attrs(path)["epochs_done"] == 1
    seen = []
    ds = train_or_reuse(cfg, path, callback=lambda rec: seen.append(rec.epoch), dynamics=True)
    assert seen == list(range(2, cfg.epochs + 1))  # continued, not trained from the start
    assert_same_run(ds, whole)


def test_unknown_experiment_is_one_line(cli):
    res = cli("reproduce", "figure9")
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: unknown experiment")


def test_cli_choices_match_the_library():
    """The CLI spells the experiment names out (to start fast); they must be the library's."""
    from mfphys import reproduce as rep
    from mfphys.cli.reproduce import CHOICES

    assert CHOICES == (*rep.EXPERIMENTS, "all")


def test_missing_data_is_one_line_before_anything_else(tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("reproduce", "curves", "--quick", "--data-dir", empty, "--out", tmp_path / "out")
    one_error_line(res, f"--data-dir {empty} does not hold mnist")  # no duration estimate, no progress line
    assert not (tmp_path / "out").exists()
