"""The recurrent model's reproduction (mfphys.rnn.reproduce) on tiny settings: datasets, reuse."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr

from mfphys import store
from mfphys.errors import MfphysError
from mfphys.rnn import preset
from mfphys.rnn import reproduce as rep

#: row-wise MNIST on 512 images (4 mini-batches an epoch), multisensory for a few epochs
TINY = dict(seeds=2, epochs=2, n_train=512, n_test=300, ms_seeds=2, ms_epochs=4, samples=2,
            fractions=(0.0, 0.5, 1.0), backend="numpy")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mnist_dir):
    folder = tmp_path_factory.mktemp("rnn-paper")
    p = rep.RnnProtocol(**TINY)
    runs = {role: rep.train_or_reuse(cfg, folder / rep.RUN_FILES[role], data_dir=mnist_dir)
            for role, cfg in p.configs(rep.EXPERIMENTS).items()}
    return p, folder, runs


def test_protocol_defaults_are_the_reference_presets():
    p = rep.RnnProtocol()
    gbp, bp, ms = p.mnist_config("gbp"), p.mnist_config("bp"), p.multisensory_config()
    assert gbp == dataclasses.replace(preset("row_mnist"), epochs=25, replicas=3, backend="auto")
    assert bp == dataclasses.replace(gbp, mode="bp")
    assert ms == dataclasses.replace(preset("multisensory"), replicas=3, backend="auto")
    assert ms.stop_loss is not None and ms.epochs == 500  # the stop rule decides
    assert set(p.configs(["psychometric"])) == {"multisensory"}
    assert set(p.configs(["rnn-perturbation"])) == {"gbp"}
    assert p.estimate_seconds() > p.estimate_seconds(["psychometric"]) > 0


@pytest.mark.parametrize("change, expect", [(dict(seeds=0), "--seeds"), (dict(epochs=0), "--epochs"),
                                            (dict(n_train=100), "less than one mini-batch")])
def test_bad_protocol_is_one_clear_error(change, expect):
    with pytest.raises(MfphysError, match=expect):
        rep.RnnProtocol(**change).validate()


def test_quick_reads_fewer_batches():
    cfg = rep.RnnProtocol.quick().mnist_config("gbp")
    assert cfg.n_train == 12800 and cfg.batches_per_epoch == 100 and cfg.epochs == 5


def test_curves_dataset(tiny):
    p, _, runs = tiny
    ds = rep.curves_dataset(runs["gbp"], runs["bp"], p)
    assert ds.attrs["experiment"] == "rnn-curves" and ds.attrs["mfphys_kind"] == "reproduction"
    assert ds.test_acc.dims == ("mode", "replica", "epoch") and list(ds.mode.values) == ["gbp", "bp"]
    assert ds.sizes["epoch"] == p.epochs and ds.sizes["replica"] == p.seeds
    assert list(ds.eval_mode.values) == list(rep.EVAL_MODES)
    assert ds.final_acc.dims == ("mode", "eval_mode", "replica")
    assert np.all(np.isfinite(ds.final_acc)) and np.all((ds.final_acc >= 0) & (ds.final_acc <= 1))
    # the final noise-free evaluation is the last epoch's test accuracy
    np.testing.assert_allclose(ds.final_acc.sel(eval_mode="mf"), ds.test_acc.isel(epoch=-1))
    np.testing.assert_allclose(ds.final_acc_mean, ds.final_acc.mean("replica"))
    np.testing.assert_allclose(ds.test_acc_std, ds.test_acc.std("replica", ddof=1))
    # the sampled modes are the mean over the run's draws
    np.testing.assert_allclose(ds.final_acc.sel(mode="gbp", eval_mode="quenched"),
                               runs["gbp"].test_acc_quenched_draw.mean("draw"))


def test_psychometric_dataset(tiny):
    p, _, runs = tiny
    ds = rep.psychometric_dataset(runs["multisensory"], p)
    assert ds.p_high.dims == ("eval_mode", "replica", "modality", "rate")
    assert list(ds.modality.values) == ["v", "a", "va"] and list(ds.rate.values) == list(range(9, 17))
    assert np.all((ds.p_high >= 0) & (ds.p_high <= 1))
    assert ds.stop_epoch.values.tolist() == [p.ms_epochs] * p.ms_seeds  # too short for the stop rule
    # the psychometric accuracy is P(high) above 12.5 Hz and P(low) below, averaged over rates
    high = ds.rate > 12.5
    expect = xr.where(high, ds.p_high, 1 - ds.p_high).mean("rate")
    np.testing.assert_allclose(ds.psychometric_acc, expect)
    assert ds.p_high_quenched_draw.sizes["draw"] == p.samples


def test_perturbation_dataset(tiny):
    p, folder, runs = tiny
    ds = rep.perturbation_dataset(folder / rep.RUN_FILES["gbp"], p)
    assert ds.attrs["experiment"] == "rnn-perturbation" and ds.attrs["matrix"] == "recurrent"
    np.testing.assert_allclose(ds.fraction, p.fractions)
    assert ds.error_vip.dims == ("fraction", "replica") and ds.sizes["sample"] == p.samples
    for v in ("error_vip", "error_variable", "error_vip_mf", "error_variable_mf"):
        assert np.all(np.isfinite(ds[v]))
        np.testing.assert_allclose(ds[f"{v}_mean"], ds[v].mean("replica"))
    np.testing.assert_array_equal(ds.error_vip.isel(fraction=0), ds.error_variable.isel(fraction=0))
    # f = 0 is the trained network: its mean-field error is the run's
    np.testing.assert_allclose(ds.error_vip_mf.isel(fraction=0), 100 * (1 - runs["gbp"].test_acc_mf.values))
    assert np.all(ds.n_removed.isel(fraction=-1) == ds.n_vip)


def test_finished_runs_are_reused_and_others_trained_again(tiny, mnist_dir):
    p, folder, _ = tiny
    cfg = p.multisensory_config()
    path = folder / rep.RUN_FILES["multisensory"]
    before = path.stat().st_mtime_ns
    rep.train_or_reuse(cfg, path)
    assert path.stat().st_mtime_ns == before
    other = dataclasses.replace(cfg, epochs=cfg.epochs + 1)
    assert rep.reusable(path, other) is None
    copy = folder / "copy.nc"
    copy.write_bytes(b"not a netCDF file")
    assert rep.reusable(copy, cfg) is None
    ds = rep.train_or_reuse(other, copy)
    assert store.open_run(copy).sizes["epoch"] == ds.sizes["epoch"] == cfg.epochs + 1


def test_an_interrupted_run_file_is_continued_not_trained_again(tiny, tmp_path, mnist_dir):
    from mfphys import runfile

    p, folder, runs = tiny
    cfg = p.multisensory_config()
    path = tmp_path / "ms.nc"
    calls = []
    with pytest.raises(runfile.Interrupted):
        runfile.train_run(runfile.Plan("new", path, cfg), stop=lambda: len(calls) >= 2,
                          callback=lambda rec: calls.append(rec.epoch))
    assert store.read_attrs(path)["status"] == "interrupted"
    seen = []
    ds = rep.train_or_reuse(cfg, path, callback=lambda rec: seen.append(rec.epoch))
    assert seen == list(range(3, cfg.epochs + 1))  # from the checkpoint on, not from epoch 1
    whole = runs["multisensory"]
    assert ds.attrs["status"] == "done"
    for name in ("train_loss", "pi_recurrent", "m_recurrent", "xi_recurrent", "psychometric_acc_mf"):
        np.testing.assert_array_equal(ds[name].values, whole[name].values)
