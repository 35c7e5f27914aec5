"""Recurrent run files (docs/file-format.md "Recurrent runs"): the round trip, the order
parameters per matrix, the checks of mfphys.store, and feed-forward files unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr

from mfphys import order, store
from mfphys.data import load_dataset
from mfphys.errors import MfphysError
from mfphys.rnn import MATRICES, preset, train_rnn
from mfphys.rnn.order import matrix_order, matrix_reports, offdiagonal
from mfphys.rnn.store import rnn_run_to_dataset

TINY_MS = dict(n=15, epochs=3, eval_samples=2, test_repeats=1, dtype="float64", backend="numpy", replicas=2)


@pytest.fixture(scope="module")
def ms_result():
    return train_rnn(dataclasses.replace(preset("multisensory"), **TINY_MS))


@pytest.fixture(scope="module")
def mnist_result(mnist_dir):
    ds = load_dataset("mnist", n_train=256, n_test=100, data_dir=mnist_dir)
    cfg = dataclasses.replace(preset("row_mnist"), n=16, batches_per_epoch=2, epochs=2, eval_samples=3,
                              backend="numpy", dtype="float64", replicas=2)
    return train_rnn(cfg, dataset=ds)


def write_read(result, path, **kw):
    store.write_atomic(rnn_run_to_dataset(result, **kw), path)
    return store.open_trained_run(path)


def test_round_trip_multisensory(ms_result, tmp_path):
    ds = write_read(ms_result, tmp_path / "ms.nc", labels=store.label_attrs("ms", ["t"]), preset="multisensory")
    assert ds.attrs["mfphys_kind"] == "run" and ds.attrs["model"] == "rnn" and ds.attrs["status"] == "done"
    assert ds.attrs["name"] == "ms" and ds.attrs["preset"] == "multisensory"
    assert store.config_from_dataset(ds) == ms_result.config
    params = store.params_from_dataset(ds)
    for a, b in zip(params, ms_result.params):
        for u, w in zip(a, b):
            np.testing.assert_array_equal(u, w)
    assert ds["pi_recurrent"].dims == ("replica", "post_recurrent", "pre_recurrent")
    assert ds["m_input"].shape == (2, 15, 5) and ds["xi_output"].shape == (2, 2, 15)
    np.testing.assert_array_equal(ds.train_loss.values, ms_result.history["train_loss"])
    np.testing.assert_array_equal(ds.stop_epoch.values, ms_result.stop_epoch)
    ev = ms_result.evaluation
    np.testing.assert_array_equal(ds.p_high_mf.values, ev["p_high_mean"])
    np.testing.assert_array_equal(ds.p_high_quenched.values, ev["p_high_quenched"])
    assert ds.p_high_quenched.dims == ("replica", "draw", "modality", "rate")
    np.testing.assert_array_equal(ds.psychometric_acc_noisy.values, ev["psychometric_acc_noisy"])
    assert list(ds.modality.values) == ["v", "a", "va"] and list(ds.rate.values) == list(range(9, 17))


def test_round_trip_mnist_accuracies(mnist_result, tmp_path):
    ds = write_read(mnist_result, tmp_path / "row.nc")
    ev = mnist_result.evaluation
    np.testing.assert_array_equal(ds.test_acc.values, mnist_result.history["test_acc"])
    np.testing.assert_array_equal(ds.test_acc_mf.values, ev["acc_mean"])
    np.testing.assert_array_equal(ds.test_acc_mf.values, ds.test_acc.isel(epoch=-1).values)
    np.testing.assert_array_equal(ds.test_acc_noisy.values, ev["acc_noisy"])
    np.testing.assert_array_equal(ds.test_acc_quenched_draw.values, ev["acc_quenched"])
    np.testing.assert_allclose(ds.test_acc_quenched.values, ev["acc_quenched"].mean(axis=1))
    np.testing.assert_array_equal(ds.test_acc_annealed_draw.values, ev["acc_annealed"])
    np.testing.assert_array_equal(ds.test_acc_quenched_vote.values, ev["acc_quenched_vote"])
    assert ds.attrs["architecture"] == "28-16-10 x28" and ds.attrs["dataset"] == "mnist"
    assert "data_checksum" in ds.attrs


def test_order_parameters_per_matrix_are_the_feed_forward_formula(ms_result, tmp_path):
    ds = write_read(ms_result, tmp_path / "ms.nc")
    assert list(ds.matrix.values) == list(MATRICES)
    for i, layer in enumerate(ms_result.params):
        ref = order.layer_order(*layer)
        for k in order.SCALARS:
            np.testing.assert_allclose(ds[k].values[:, i], ref[k], err_msg=k)
    # _nodiag: the recurrent column over off-diagonal connections, the others unchanged
    rec = ms_result.params[1]
    ref = order.layer_order(*rec, mask=offdiagonal(15))
    np.testing.assert_allclose(ds.frac_vip_nodiag.values[:, 1], ref["frac_vip"])
    np.testing.assert_allclose(ds.mean_xi_nodiag.values[:, [0, 2]], ds.mean_xi.values[:, [0, 2]])
    assert ds.hist_pi.shape == (2, 3, order.N_BINS) and ds.hist_pi.values.sum(axis=-1)[0, 1] == 15 * 15


def test_identity_diagonal_is_left_out():
    """An identity-initialised recurrent matrix: the diagonal alone has m = 1 and Xi = 0."""
    from mfphys.model import Layer

    n, R = 6, 1
    m = np.broadcast_to(np.eye(n), (R, n, n)).copy()
    xi = np.where(m > 0, 0.0, 0.5)
    rec = Layer(np.zeros((R, n, n)), m, xi)
    other = Layer(np.zeros((R, 2, n)), np.ones((R, 2, n)), np.full((R, 2, n), 0.5))
    out = matrix_order((other, rec, other))
    assert out["frac_vip"][0, 1] == pytest.approx(1 / n) and out["frac_vip_nodiag"][0, 1] == 0
    reports = matrix_reports((other, rec, other))
    assert [(m_, c) for m_, c, _ in reports] == [("input", "all"), ("recurrent", "all"), ("output", "all"),
                                                 ("recurrent", "nodiag")]


def test_damaged_recurrent_files_are_refused(ms_result, tmp_path):
    ds = rnn_run_to_dataset(ms_result)
    bad = ds.drop_vars("xi_recurrent")
    store.write_atomic(bad, tmp_path / "a.nc")
    with pytest.raises(MfphysError, match="xi_recurrent is missing"):
        store.open_trained_run(tmp_path / "a.nc")
    bad = ds.isel(post_output=slice(0, 1))
    store.write_atomic(bad, tmp_path / "b.nc")
    with pytest.raises(MfphysError, match="pi_output has shape"):
        store.open_trained_run(tmp_path / "b.nc")
    store.write_atomic(ds.assign_attrs(model="lstm"), tmp_path / "c.nc")
    with pytest.raises(MfphysError, match="unknown model 'lstm'"):
        store.open_trained_run(tmp_path / "c.nc")


def test_feed_forward_files_unchanged_and_not_stacked_with_recurrent(ms_result, tmp_path):
    from mfphys.train import TrainConfig, train

    res = train(TrainConfig(dataset="teacher", layers=(784, 8, 10), n_train=100, n_test=50, epochs=1,
                            batch_size=50, backend="numpy", eval_samples=2))
    ffn = store.run_to_dataset(res)
    assert "model" not in ffn.attrs and store.model_of(ffn.attrs) == "ffn"
    store.write_atomic(ffn, tmp_path / "ffn.nc")
    assert isinstance(store.config_from_dataset(store.open_trained_run(tmp_path / "ffn.nc")), TrainConfig)
    store.write_atomic(rnn_run_to_dataset(ms_result), tmp_path / "rnn.nc")
    with pytest.raises(MfphysError, match="rnn.nc is a recurrent run"):
        store.open_runs([tmp_path / "ffn.nc", tmp_path / "rnn.nc"])
    with xr.open_dataset(tmp_path / "rnn.nc") as plain:  # an ordinary netCDF file for any reader
        assert plain.attrs["model"] == "rnn"
