"""``mfphys reproduce rnn-curves|psychometric|rnn-perturbation|rnn``: the recurrent model's
experiments end to end on tiny settings (the ``--quick`` protocol made smaller still)."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import xarray as xr

from mfphys.rnn import reproduce as rep
from tests.helpers import one_error_line

TINY = dict(seeds=2, epochs=2, n_train=512, n_test=300, ms_seeds=2, ms_epochs=4, samples=2,
            fractions=(0.0, 0.5, 1.0))


@pytest.fixture
def tiny_quick(monkeypatch):
    """``--quick`` with tiny settings, so that the command runs in seconds."""
    monkeypatch.setattr(rep.RnnProtocol, "quick", classmethod(lambda cls, **kw: cls(**{**TINY, **kw})))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("rnn-paper")


def run(cli, *args):
    return cli("reproduce", *args, catch_exceptions=False)


def test_the_rnn_group_writes_every_dataset_and_figure(tiny_quick, folder, mnist_dir, cli):
    res = run(cli, "rnn", "--quick", "--backend", "numpy", "--data-dir", mnist_dir, "--out", folder)
    assert res.exit_code == 0, res.output
    assert "on an idle 2-core CPU" in res.stderr
    for name in ("row-wise MNIST", "psychometric accuracy", "perturbation of the recurrent matrix"):
        assert name in res.stdout
    for name in rep.EXPERIMENTS:
        ds = xr.open_dataset(folder / f"{name}.nc").load()
        assert ds.attrs["experiment"] == name and ds.attrs["model"] == "rnn"
        img = matplotlib.image.imread(folder / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
        assert img[..., :3].std() > 0.05  # not a blank canvas
    assert sorted(p.name for p in folder.glob("rnn-*.nc")) == sorted(
        list(rep.RUN_FILES.values()) + ["rnn-curves.nc", "rnn-perturbation.nc"])
    c = xr.open_dataset(folder / "rnn-curves.nc")
    assert c.sizes["epoch"] == TINY["epochs"] and c.sizes["replica"] == TINY["seeds"]
    q = xr.open_dataset(folder / "psychometric.nc")
    assert q.sizes["replica"] == TINY["ms_seeds"] and q.sizes["rate"] == 8


def test_one_experiment_reuses_the_run_files(tiny_quick, folder, mnist_dir, cli):
    runs = {p.name: p.stat().st_mtime_ns for p in folder.glob("rnn-row-*.nc")}
    before = (folder / "psychometric.nc").stat().st_mtime_ns
    res = run(cli, "rnn-perturbation", "--quick", "--backend", "numpy", "--data-dir", mnist_dir, "--out", folder)
    assert res.exit_code == 0, res.output
    assert "reused the existing run file" in res.stderr
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("rnn-row-*.nc")} == runs
    assert (folder / "psychometric.nc").stat().st_mtime_ns == before  # not asked for: not rewritten


def test_other_settings_train_again(tiny_quick, folder, cli):
    """psychometric needs no MNIST; 3 seeds instead of 2 is another run (replaced atomically)."""
    res = run(cli, "psychometric", "--quick", "--seeds", 3, "--backend", "numpy", "--out", folder)
    assert res.exit_code == 0, res.output
    assert xr.open_dataset(folder / "psychometric.nc").sizes["replica"] == 3


def test_unknown_experiment_names_the_recurrent_ones(cli):
    res = cli("reproduce", "rnn-figure9")
    one_error_line(res, "unknown experiment 'rnn-figure9'")
    assert "rnn-perturbation" in res.stderr and "psychometric" in res.stderr


def test_workers_do_not_apply(cli, tmp_path):
    res = cli("reproduce", "rnn", "--workers", 2, "--out", tmp_path / "out")
    one_error_line(res, "--workers")
    assert not (tmp_path / "out").exists()


def test_missing_data_is_one_line_before_anything_else(tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("reproduce", "rnn-curves", "--quick", "--data-dir", empty, "--out", tmp_path / "out")
    one_error_line(res, f"--data-dir {empty} does not hold mnist")
    assert not (tmp_path / "out").exists()


def test_cli_choices_match_the_library():
    from mfphys.cli.reproduce import RNN_CHOICES

    assert RNN_CHOICES == (*rep.EXPERIMENTS, rep.GROUP)


@pytest.mark.slow
def test_the_quick_version_shows_the_results(tmp_path, mnist_dir, cli):
    """The real ``--quick`` (about 35 s on the 2-core CPU; the full-length trainings are the slow
    tests of tests/models/rnn/test_train.py): the orderings of docs/reproduction.md section 6 in small."""
    res = run(cli, "rnn", "--quick", "--backend", "numpy", "--data-dir", mnist_dir, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    c = xr.open_dataset(tmp_path / "rnn-curves.nc")
    assert float(c.final_acc_mean.sel(mode="gbp", eval_mode="mf")) > 0.65  # 0.73 measured
    assert float(c.final_acc_mean.sel(mode="bp", eval_mode="mf")) > 0.65
    q = xr.open_dataset(tmp_path / "psychometric.nc")
    assert float(q.psychometric_acc.sel(eval_mode="mf").mean()) > 0.95  # 0.99-1.0 measured
    p = xr.open_dataset(tmp_path / "rnn-perturbation.nc")
    full = p.isel(fraction=-1)
    assert np.all(full.error_vip_mf > full.error_variable_mf + 10)  # 72 % against 38 % measured
    assert np.all(full.error_vip > full.error_variable)
