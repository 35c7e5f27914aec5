"""Run files: public schema, round trip, atomic writes, clear errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xarray as xr

from mfphys import MfphysError, open_run, run_to_dataset, save_run, store
from mfphys.data import TeacherConfig, load_dataset
from mfphys.order import SCALARS
from mfphys.train import TrainConfig, train


@pytest.fixture(scope="module", params=["gbp", "bp"])
def result(request):
    ds = load_dataset("teacher", n_train=200, n_test=100, teacher=TeacherConfig(n_in=12))
    return train(TrainConfig(dataset="teacher", layers=(12, 8, 6, 10), n_train=200, n_test=100, epochs=3,
                             batch_size=50, replicas=2, mode=request.param, backend="numpy"), dataset=ds)


def test_public_schema(result):
    ds = run_to_dataset(result)
    assert list(ds.epoch.values) == [1, 2, 3] and list(ds.replica.values) == [0, 1]
    assert list(ds.layer.values) == [1, 2, 3]
    for k in ("train_loss", "test_acc"):
        assert ds[k].dims == ("replica", "epoch")
    assert ds.test_acc_sampled.dims == ("replica",)
    for l, (n_out, n_in) in enumerate([(8, 12), (6, 8), (10, 6)], start=1):
        for k in ("pi", "m", "xi"):
            assert ds[f"{k}_{l}"].shape == (2, n_out, n_in)
    for k in SCALARS:
        assert ds[k].dims == ("replica", "layer")
        assert "long_name" in ds[k].attrs and "units" in ds[k].attrs
    np.testing.assert_allclose(ds.frac_vip + ds.frac_uip + ds.frac_variable, 1.0)
    assert float(ds.test_acc.min()) >= 0 and float(ds.test_acc.max()) <= 1
    assert TrainConfig.from_json(ds.attrs["config"]) == result.config
    for k in ("mfphys_version", "backend", "data_checksum", "history", "created", "timings"):
        assert ds.attrs[k]
    if result.config.mode == "bp":
        assert float(abs(ds.pi_1).max()) == 0 and float(ds.sparsity.max()) == 0


def test_round_trip_is_identical(result, tmp_path):
    path = save_run(result, tmp_path / "run.nc")
    back = open_run(path)
    xr.testing.assert_identical(back, run_to_dataset(result).assign_attrs(created=back.attrs["created"],
                                                                          history=back.attrs["history"]))
    assert store.config_from_dataset(back) == result.config
    for a, b in zip(store.params_from_dataset(back), result.params):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]  # no temp files left behind


def test_write_replaces_atomically_and_leaves_old_file_on_failure(result, tmp_path, monkeypatch):
    path = save_run(result, tmp_path / "run.nc")
    before = path.read_bytes()

    def boom(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(MfphysError, match="No space left"):
        save_run(result, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]


def test_unreadable_and_foreign_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"CDF\x01 truncated garbage")
    with pytest.raises(MfphysError, match="cannot read"):
        open_run(bad)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(foreign)
    with pytest.raises(MfphysError, match="not an mfphys file"):
        open_run(foreign)
    with pytest.raises(MfphysError, match="no such file"):
        open_run(tmp_path / "missing.nc")


def test_attributes_are_plain_json_not_pickles(result):
    ds = run_to_dataset(result)
    for k in ("config", "timings", "data_summary", "order_tolerances"):
        json.loads(ds.attrs[k])


def _damage(ds, how):
    ds = ds.copy()
    if how == "missing-layer-array":
        ds = ds.drop_vars("xi_1")
    elif how == "malformed-config":
        ds.attrs["config"] = "{not json"
    elif how == "config-not-an-object":
        ds.attrs["config"] = "[1, 2]"
    elif how == "unknown-activation":
        ds.attrs["config"] = ds.attrs["config"].replace('"relu"', '"swish"')
    elif how == "no-config":
        del ds.attrs["config"]
    elif how == "wrong-shape":
        ds = ds.drop_vars("m_1").assign(m_1=(("replica", "post_1", "other"), ds["m_1"].values[..., :3]))
    elif how == "bad-tolerances":
        ds.attrs["order_tolerances"] = '{"tol": "wide"}'
    return ds


@pytest.mark.parametrize("how, message", [
    ("missing-layer-array", "xi_1"),
    ("malformed-config", "'config' attribute is not a configuration"),
    ("config-not-an-object", "'config' attribute is not a configuration"),
    ("unknown-activation", "unknown --activation 'swish'"),
    ("no-config", "no 'config' attribute"),
    ("wrong-shape", "m_1 has shape"),
])
def test_damaged_run_files_are_refused_with_what_is_wrong(result, tmp_path, how, message):
    path = tmp_path / f"{how}.nc"
    store.write_atomic(_damage(run_to_dataset(result), how), path)
    with pytest.raises(MfphysError, match=message) as info:
        store.open_trained_run(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_hand_edited_tolerances_fall_back_to_the_defaults(result):
    ds = _damage(run_to_dataset(result), "bad-tolerances")
    from mfphys import order

    assert store.run_tolerances(ds)["tol"] == order.TOL


def test_file_kind_from_attributes():
    """One check of 'what kind of mfphys file is this', with or without the file's name in the message."""
    assert [store.file_kind({store.KIND_ATTR: k}) for k in store.KINDS] == list(store.KINDS)
    assert store.file_kind({store.KIND_ATTR: "run"}, expect="run") == "run"
    with pytest.raises(MfphysError, match=r"^not an mfphys file \(no 'mfphys_kind' attribute\)$"):
        store.file_kind({"title": "x"})
    with pytest.raises(MfphysError, match=r"^unknown mfphys_kind 'nope'$"):
        store.file_kind({store.KIND_ATTR: "nope"})
    with pytest.raises(MfphysError, match=r"^a\.nc: an mfphys scan file, not a run file$"):
        store.file_kind({store.KIND_ATTR: "scan"}, expect="run", where="a.nc")


def test_a_folder_is_refused_with_what_to_use(tmp_path):
    scan_folder = tmp_path / "my-scan"
    scan_folder.mkdir()
    (scan_folder / "scan.json").write_text("{}")
    with pytest.raises(MfphysError, match=r"my-scan is a scan folder, not a file: use mfphys scan-plot .*open_scan"):
        open_run(scan_folder)
    with pytest.raises(MfphysError, match=r"is a folder, not an mfphys file"):
        store.read_attrs(tmp_path)


def test_label_attributes(result):
    ds = run_to_dataset(result, name="baseline", tags=("paper", "R2"), note="first try")
    assert ds.attrs["name"] == "baseline" and json.loads(ds.attrs["tags"]) == ["paper", "R2"]
    assert ds.attrs["note"] == "first try"
    assert not {"name", "tags", "note"} & set(run_to_dataset(result).attrs)  # left out when not given
    with pytest.raises(MfphysError, match="tags must be a list of strings"):
        run_to_dataset(result, tags="paper")


# --- open_runs: several runs along a new dimension ---------------------------------------------


def _tiny(**kw):
    base = dict(dataset="teacher", layers=(12, 8, 10), n_train=200, n_test=100, epochs=3, batch_size=50,
                replicas=2, backend="numpy", eval_samples=2)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """Runs that differ in seed and learning rate (one of them shorter), a deeper one, a perturbation file."""
    d = tmp_path_factory.mktemp("runs")
    cfgs = {"a": _tiny(seed=0, lr=0.1), "b": _tiny(seed=3, lr=0.05, epochs=2), "c": _tiny(seed=7, lr=0.02)}
    for stem, cfg in cfgs.items():
        save_run(train(cfg), d / f"{stem}.nc", name=f"run-{stem}" if stem != "c" else None)
    save_run(train(_tiny(layers=(12, 6, 6, 10))), d / "deep.nc")
    store.write_atomic(open_run(d / "a.nc").assign_attrs({store.KIND_ATTR: "perturbation"}), d / "a.perturb.nc")
    return d, cfgs


def test_open_runs_stacks_runs_differing_in_seed_and_lr(run_files):
    import mfphys

    d, cfgs = run_files
    ds = mfphys.open_runs([d / "a.nc", d / "b.nc", d / "c.nc"])
    # the run's name where it has one, else the file name; the differing fields as coordinates
    assert list(ds.run.values) == ["run-a", "run-b", "c"] and list(ds.file.values) == [str(d / f"{s}.nc")
                                                                                       for s in "abc"]
    assert list(ds.seed.values) == [0, 3, 7] and list(ds.lr.values) == [0.1, 0.05, 0.02]
    assert list(ds.epochs.values) == [3, 2, 3] and "batch_size" not in ds.coords  # equal fields are no coordinates
    assert ds.test_acc.dims == ("run", "replica", "epoch") and ds.sizes["epoch"] == 3
    for stem, label in (("a", "run-a"), ("b", "run-b"), ("c", "c")):
        one = open_run(d / f"{stem}.nc")
        E = cfgs[stem].epochs
        np.testing.assert_array_equal(ds.test_acc.sel(run=label).values[:, :E], one.test_acc.values)
        np.testing.assert_array_equal(ds.pi_1.sel(run=label).values, one.pi_1.values)
        np.testing.assert_array_equal(ds.frac_vip_live.sel(run=label).values, one.frac_vip_live.values)
        np.testing.assert_array_equal(ds.m_edges.sel(run=label).values, one.m_edge.values)
        np.testing.assert_array_equal(ds.lr_schedule.sel(run=label).values[:E], one.lr.values)
    assert np.isnan(ds.test_acc.sel(run="run-b").values[:, 2]).all()  # the 2-epoch run, NaN-padded
    # every run's last value, the shorter one's included (docs/file-format.md "Several runs")
    assert list(ds.last_epoch.values) == [3, 2, 3]
    last = ds.test_acc.sel(epoch=ds.last_epoch)
    assert last.dims == ("run", "replica") and np.isfinite(last).all()
    np.testing.assert_array_equal(last.sel(run="run-b").values, open_run(d / "b.nc").test_acc.values[:, -1])
    assert ds.sel(run="run-b").seed == 3 and "lr" not in ds.data_vars  # lr is a coordinate now
    assert ds.attrs["architecture"] == "12-8-10" and "config" not in ds.attrs and store.KIND_ATTR not in ds.attrs
    assert ds.groupby("lr").mean().sizes["lr"] == 3  # ordinary xarray from here on


def test_open_runs_glob_architectures_and_params(run_files):
    import mfphys

    d, _ = run_files
    with pytest.raises(MfphysError, match=r"different architectures .*12-6-6-10 \(deep.nc\).*params=False"):
        mfphys.open_runs(str(d / "*.nc"))
    ds = mfphys.open_runs(str(d / "*.nc"), dim="trial", params=False)  # the perturbation file is skipped
    assert list(ds.trial.values) == ["run-a", "run-b", "c", "deep"]
    assert list(ds.layers.values) == ["12,8,10"] * 3 + ["12,6,6,10"] and ds.sizes["layer"] == 3
    assert not [k for k in ds.data_vars if re.fullmatch(r"(pi|m|xi)_\d+", k)] and "dead_inputs" not in ds
    assert ds.m_edges.dims == ("trial", "m_edge")  # the histograms stay, with their own edges
    assert np.isnan(ds.sparsity.sel(trial="c", layer=3)).all() and np.isfinite(ds.sparsity.sel(trial="deep")).all()
    with pytest.raises(MfphysError, match="no run files match"):
        mfphys.open_runs(str(d / "nothing-*.nc"))
    with pytest.raises(MfphysError, match="perturbation file, not a run file"):
        mfphys.open_runs([d / "a.nc", d / "a.perturb.nc"])  # named explicitly: refused


# --- dynamics, checkpoints ----------------------------------------------------------------------


def test_dynamics_variables(result):
    ds = run_to_dataset(result)
    dyn = result.dynamics
    assert list(ds.dyn_epoch.values) == list(dyn.epochs) == [0, 1, 2, 3]
    assert list(ds.snap_epoch.values) == [0, 1, 2, 3]
    for k in SCALARS:
        for name in (f"dyn_{k}", f"dyn_{k}_live"):
            assert ds[name].dims == ("replica", "dyn_epoch", "layer") and ds[name].shape == (2, 4, 3)
            assert "during training" in ds[name].attrs["long_name"]
        # at the last recorded epoch (the last epoch) they are the final order parameters
        np.testing.assert_array_equal(ds[f"dyn_{k}"].sel(dyn_epoch=3).values, ds[k].values)
        np.testing.assert_array_equal(ds[f"dyn_{k}_live"].sel(dyn_epoch=3).values, ds[f"{k}_live"].values)
    for k in ("pi", "m", "xi"):
        assert ds[f"snap_hist_{k}"].dims == ("replica", "snap_epoch", "layer", f"{k}_bin")
        assert ds[f"snap_{k}_edges"].dims == ("snap_epoch", "edge")
        np.testing.assert_array_equal(ds[f"snap_hist_{k}"].isel(snap_epoch=-1).values, ds[f"hist_{k}"].values)
        np.testing.assert_array_equal(ds[f"snap_{k}_edges"].isel(snap_epoch=-1).values, ds[f"{k}_edge"].values)
        # every connection counted in every snapshot
        np.testing.assert_array_equal(ds[f"snap_hist_{k}"].sum(f"{k}_bin").values,
                                      np.broadcast_to([12 * 8, 8 * 6, 6 * 10], (2, 4, 3)))
    back = store.dynamics_from_dataset(ds)
    assert back.epochs == dyn.epochs and back.snap_epochs == dyn.snap_epochs
    for a, b in zip(back.samples, dyn.samples):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_checkpoint_round_trips_its_state(result, tmp_path):
    from mfphys.train import current_result, init_state, prepare, train_epoch

    setup = prepare(result.config)
    state = init_state(setup)
    state, _ = train_epoch(setup, state)
    part = current_result(setup, state)
    assert not part.complete and part.history["train_loss"].shape == (2, 1)
    ds = store.checkpoint_to_dataset(part, status="running", writer={"pid": 1}, segments=[{"action": "new"}])
    assert ds.attrs["status"] == "running" and ds.attrs["epochs_done"] == 1 and "test_acc_sampled" not in ds
    path = store.write_atomic(ds, tmp_path / "part.nc")
    back = store.state_from_dataset(open_run(path), path)
    assert back.epoch == 1 and back.adam.count == state.adam.count and back.rng == state.rng
    for a, b in zip(back.adam.mu + back.adam.nu + back.params, state.adam.mu + state.adam.nu + state.params):
        for x, y in zip(a, b):
            assert (x is None and y is None) or np.array_equal(x, y)
    for k, v in back.history.items():
        np.testing.assert_array_equal(v, state.history[k][..., :1], err_msg=k)
    with pytest.raises(ValueError, match="status"):
        store.checkpoint_to_dataset(part, status="paused")


@pytest.mark.parametrize("how, message", [
    (lambda ds: ds.drop_vars("adam_nu_m_1"), "adam_nu_m_1 is missing"),
    (lambda ds: ds.assign_attrs(rng_state="[1]"), "rng_state does not hold"),
    (lambda ds: ds.assign_attrs(epochs_done=5), "epochs_done is 5 but it holds 3 epochs"),
    (lambda ds: ds.assign_attrs(adam_count="x"), "malformed"),
])
def test_damaged_checkpoints_are_refused(result, tmp_path, how, message):
    from mfphys.runfile import CheckpointPolicy, plan_run, train_run

    path = tmp_path / "r.nc"
    train_run(plan_run(path, result.config), policy=CheckpointPolicy(0, 0))
    with pytest.raises(MfphysError, match=message):
        store.state_from_dataset(how(open_run(path)), path)


def test_netcdf_reads_and_writes_wait_for_one_lock(result, tmp_path):
    """netCDF-C is not thread-safe (and netCDF4-python releases the GIL): every read and write of
    mfphys goes through store.NETCDF_LOCK, so threads of one process (the TUI's workers) take turns."""
    import threading

    path = save_run(result, tmp_path / "r.nc")
    for call in (lambda: store.read_attrs(path), lambda: store.read_dataset(path),
                 lambda: store.write_atomic(xr.Dataset({"t": ("x", np.arange(3.0))}), tmp_path / "w.nc")):
        done = threading.Event()
        with store.NETCDF_LOCK:
            worker = threading.Thread(target=lambda c=call, d=done: (c(), d.set()))
            worker.start()
            assert not done.wait(0.3)  # blocked while another thread holds the lock
        worker.join(10)
        assert done.is_set()
