"""``mfphys train --family rnn`` (alias ``--model rnn``; live run files: SIGKILL, Ctrl-C, resume, more epochs),
``mfphys order`` on a recurrent run and the refusals, one line each
(docs/model-rnn.md section 9)."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from mfphys import store
from tests.helpers import assert_same_run, one_error_line, snapshot, start_mfphys, wait_for_checkpoint

MS = ["train", "--model", "rnn", "--preset", "multisensory", "--epochs", "3", "-R", "2", "--backend", "numpy",
      "--eval-samples", "2"]
FFN = ["--dataset", "teacher", "--layers", "784,8,10", "--n-train", "100", "--n-test", "50", "--epochs", "1",
       "--batch-size", "50", "--backend", "numpy", "--quiet"]


@pytest.fixture(scope="module")
def ms_run(tmp_path_factory, cli):
    path = tmp_path_factory.mktemp("rnn") / "ms.nc"
    res = cli(*MS, "--out", path)
    assert res.exit_code == 0, res.output
    return path, res


def test_train_multisensory_writes_a_run_file_and_a_summary(ms_run):
    path, res = ms_run
    assert "psychometric accuracy (mf): v" in res.stdout and "recurrent" in res.stdout
    assert f"wrote {path}" in res.stdout
    ds = store.open_trained_run(path)
    assert ds.attrs["model"] == "rnn" and ds.attrs["preset"] == "multisensory" and ds.attrs["name"] == "ms"
    assert ds.sizes["replica"] == 2 and ds.sizes["epoch"] == 3 and ds.sizes["draw"] == 2


def test_train_row_mnist_tiny(tmp_path, cli, mnist_dir):
    out = tmp_path / "row.nc"
    res = cli("train", "--model", "rnn", "--preset", "row_mnist", "--n-train", "256", "--n-test", "128",
              "--epochs", "1", "--eval-samples", "2", "--backend", "numpy", "--data-dir", mnist_dir, "--out", out)
    assert res.exit_code == 0, res.output
    assert "test accuracy: mf" in res.stdout and "quenched vote" in res.stdout
    ds = store.open_trained_run(out)
    cfg = store.config_from_dataset(ds)
    assert (cfg.n_train, cfg.n_test, cfg.batches_per_epoch, cfg.epochs) == (256, 128, 2, 1)
    assert ds.test_acc.shape == (1, 1) and ds.test_acc_quenched_draw.shape == (1, 2)


@pytest.mark.parametrize("preset", ["row_mnist", "multisensory"])
def test_dry_run_prints_the_estimate_and_writes_nothing(preset, cli, tmp_path, mnist_dir):
    from mfphys import budget
    from mfphys.rnn import preset as rnn_preset

    out = tmp_path / "r.nc"
    data = ["--data-dir", mnist_dir] if preset != "multisensory" else []
    res = cli("train", "--model", "rnn", "--preset", preset, "--dry-run", *data, "--out", out, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    est = budget.rnn_estimate(rnn_preset(preset))
    assert "rnn gbp" in res.stdout and f"({preset})" in res.stdout and "total (peak)" in res.stdout
    assert f"run file: {out}, about" in res.stdout and est.peak > 0
    assert list(tmp_path.iterdir()) == []


def test_disk_estimate_is_close_to_the_file(ms_run):
    from mfphys import budget

    path, _ = ms_run
    cfg = store.config_from_dataset(store.open_run(path))
    est = budget.rnn_estimate(cfg).disk
    assert 0.5 < est / path.stat().st_size < 2.0, (est, path.stat().st_size)


def test_order_table_json_csv_equal_the_stored_values(ms_run, cli):
    path, _ = ms_run
    ds = store.open_trained_run(path)
    res = cli("order", path)
    assert res.exit_code == 0, res.output
    header = next(line for line in res.stdout.splitlines() if "order parameter" in line)
    assert header.split()[2:] == ["input", "recurrent", "output"]
    out = json.loads(cli("order", path, "--json").stdout)
    assert [c["matrix"] for c in out["columns"]] == ["input", "recurrent", "output"]
    for i, col in enumerate(out["columns"]):
        for k in ("frac_vip", "mean_xi", "entropy", "frac_uip_exact"):
            np.testing.assert_allclose(col["values"][k]["replicas"], ds[k].values[:, i], err_msg=k)
    nodiag = json.loads(cli("order", path, "--json", "--no-diagonal").stdout)
    assert nodiag["columns"][1]["connections"] == "nodiag"
    np.testing.assert_allclose(nodiag["columns"][1]["values"]["frac_vip"]["replicas"],
                               ds.frac_vip_nodiag.sel(matrix="recurrent").values)
    rows = cli("order", path, "--csv", "--no-diagonal").stdout.splitlines()
    assert rows[0].startswith("matrix,connections,replica,sparsity") and len(rows) == 1 + 3 * 2
    assert rows[3].startswith("recurrent,nodiag,0,")


@pytest.mark.parametrize("args, expect", [
    (["--layers", "784,10"], "--layers does not apply to --family rnn: it is an option of --family ffn"),
    (["--lr", "0.1", "--protocol", "2020"], "--lr, --protocol do not apply to --family rnn"),
    (["--resume", "x.nc"], "--resume writes to the file it continues (x.nc)"),
    (["--checkpoint-every", "-1"], "--checkpoint-every must be an integer >= 0"),
    (["--preset", "row_mnist", "--model", "ffn"], "--preset does not apply to --family ffn: it is an option of "
                                                  "--family rnn"),
    (["--preset", "row_mnist", "--family", "ffn"], "--preset does not apply to --family ffn"),
    (["--preset", "lstm"], "unknown preset 'lstm'"),
    (["--model", "gru"], "unknown --family 'gru'"),
    (["--family", "gru"], "unknown --family 'gru'"),
    (["--preset", "multisensory", "--n-train", "100"], "--n-train: the multisensory task generates its trials"),
    (["--n-train", "100"], "--n-train 100 is less than one mini-batch of 128"),
    (["-R", "100000"], "not enough memory: this run needs about"),
    (["--preset", "pixel_mnist", "-R", "2000", "--dry-run"], "not enough memory"),
])
def test_refusals_are_one_line(args, expect, cli, tmp_path):
    model = [] if "--model" in args or "--family" in args else ["--family", "rnn"]
    res = cli("train", *model, *args, "--out", tmp_path / "x.nc")
    one_error_line(res, expect)
    assert not (tmp_path / "x.nc").exists()


def test_a_done_file_is_left_alone_or_refused_in_one_line(ms_run, cli, tmp_path):
    path, _ = ms_run
    before = snapshot(path.parent)
    res = cli(*MS, "--out", path)
    assert res.exit_code == 0 and "is done (3 epochs): nothing to train" in res.stdout, res.output
    one_error_line(cli(*MS, "--seed", "5", "--out", path), "was made by another configuration (--seed 0 in the file")
    one_error_line(cli(*MS, "--epochs", "2", "--out", path), "has 3 epochs done already")
    one_error_line(cli("train", *FFN, "--resume", path), "do not apply to --family rnn")  # the file's family
    one_error_line(cli("train", "--model", "ffn", "--resume", path), "is a recurrent run file: continue it with "
                                                                     "--family rnn")
    one_error_line(cli("train", *FFN, "--out", path), "is a recurrent run file (model rnn)")
    one_error_line(cli("train", "--model", "rnn", "--preset", "row_mnist", "--resume", path),
                   "was made from --preset multisensory, not row_mnist")
    assert snapshot(path.parent) == before


def test_a_feed_forward_file_is_not_continued_as_a_recurrent_run(cli, tmp_path):
    out = tmp_path / "ffn.nc"
    assert cli("train", *FFN, "--out", out).exit_code == 0
    before = snapshot(tmp_path)
    one_error_line(cli(*MS, "--out", out), "is a feed-forward run file (model ffn): recurrent training")
    one_error_line(cli("train", "--family", "rnn", "--resume", out), "is a feed-forward run file: continue it "
                                                                     "with --family ffn")
    assert snapshot(tmp_path) == before


def test_more_epochs_continue_a_finished_run_as_one_longer_run(ms_run, cli, tmp_path):
    path, _ = ms_run
    short = tmp_path / "short.nc"
    short.write_bytes(path.read_bytes())
    res = cli("train", "--resume", short, "--epochs", "5", "--quiet")  # the model and preset from the file
    assert res.exit_code == 0, res.output
    longer = tmp_path / "long.nc"
    assert cli(*MS[:5], "--epochs", "5", *MS[7:], "--out", longer, "--quiet").exit_code == 0
    back = store.open_run(short)
    assert_same_run(back, store.open_run(longer), dynamics=False)  # the continued run also sampled epoch 3
    assert [s["action"] for s in json.loads(back.attrs["segments"])] == ["new", "extend"]
    assert back.attrs["preset"] == "multisensory" and back.attrs["name"] == "ms"


# --- live runs in a real process: SIGKILL and Ctrl-C ---------------------------------------------------

LONG = 40  # epochs: a few seconds with a checkpoint after every epoch
LIVE = ["train", "--family", "rnn", "--preset", "multisensory", "-R", "2", "--backend", "numpy", "--eval-samples", "2",
        "--quiet", "--epochs", LONG]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run the interrupted ones must end up equal to, trained in one go in its own process."""
    out = tmp_path_factory.mktemp("ref") / "ref.nc"
    proc = start_mfphys(*LIVE, "--out", out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return store.open_run(out)


def test_sigkill_then_the_same_command_resumes_bit_identically(uninterrupted, tmp_path):
    target = int(np.random.default_rng().integers(2, 30))
    out = tmp_path / "r.nc"
    args = [*LIVE, "--checkpoint-every", 1, "--out", out]
    proc = start_mfphys(*args)
    wait_for_checkpoint(out, target, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = store.open_run(out)  # the last checkpoint is whole, and readable
    n = int(killed.attrs["epochs_done"])
    assert killed.attrs["status"] == "running" and target <= n < LONG and killed.sizes["epoch"] == n, target
    assert killed.train_loss.shape == (2, n) and killed.attrs["model"] == "rnn"
    again = start_mfphys(*args)  # the same command again continues the run
    assert again.wait(timeout=300) == 0, again.stderr.read()
    done = store.open_run(out)
    assert_same_run(done, uninterrupted)
    assert done.attrs["status"] == "done"
    assert [(s["action"], s["from_epoch"]) for s in json.loads(done.attrs["segments"])] == [("new", 0), ("resume", n)]
    assert [p.name for p in tmp_path.iterdir()] == ["r.nc"]


def test_ctrl_c_saves_the_epoch_as_interrupted_and_resume_finishes_it(uninterrupted, tmp_path):
    out = tmp_path / "r.nc"
    proc = start_mfphys(*LIVE, "--checkpoint-every", 5, "--checkpoint-seconds", 0, "--out", out)
    wait_for_checkpoint(out, 5, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ds = store.open_run(out)
    n = int(ds.attrs["epochs_done"])
    assert ds.attrs["status"] == "interrupted" and 1 <= n < LONG and ds.sizes["epoch"] == n
    assert f"interrupted after epoch {n} of {LONG}" in err and f"--resume {out}" in err
    assert "p_high_mf" not in ds and ds.train_loss.shape == (2, n)
    assert cli_order_works(out)
    res = start_mfphys("train", "--resume", out)
    assert res.wait(timeout=300) == 0, res.stderr.read()
    assert_same_run(store.open_run(out), uninterrupted)


def cli_order_works(path) -> bool:
    """``mfphys order`` reads an unfinished recurrent file (the matrices so far)."""
    proc = start_mfphys("order", path, "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return [c["matrix"] for c in json.loads(out)["columns"]] == ["input", "recurrent", "output"]


def test_no_diagonal_refused_on_a_feed_forward_run(cli, tmp_path):
    out = tmp_path / "ffn.nc"
    assert cli("train", *FFN, "--out", out).exit_code == 0
    one_error_line(cli("order", out, "--no-diagonal"), "--no-diagonal is for recurrent runs")
    assert cli("order", out).exit_code == 0


def test_perturb_matrix_writes_a_perturbation_file_and_a_table(ms_run, cli, tmp_path):
    path, _ = ms_run
    out = tmp_path / "p.nc"
    res = cli("perturb", path, "--fractions", "0,1", "--samples", "2", "--no-diagonal", "--out", out)
    assert res.exit_code == 0, res.output
    assert "targeted perturbation of the recurrent matrix" in res.stdout and f"wrote {out}" in res.stdout
    pds = store.read_dataset(out)
    a = pds.attrs
    assert a["mfphys_kind"] == "perturbation" and a["model"] == "rnn" and a["matrix"] == "recurrent"
    assert a["candidates"] == "off-diagonal connections" and a["seed"] == 0 and a["source"] == str(path)
    assert pds.error_vip.dims == ("fraction", "replica") and pds.error_vip_sample.shape == (2, 2, 2)
    np.testing.assert_array_equal(pds.error_vip_mf.values[0], pds.error_base_mf.values)
    assert (pds.n_removed.values[1] == pds.n_vip.values).all()


@pytest.mark.parametrize("args, expect", [
    (["--matrix", "hidden"], "--matrix must be one of input, recurrent, output"),
    (["--layer", "1"], "--layer is for feed-forward runs"),
    (["--all-inputs"], "--all-inputs is for feed-forward runs"),
    (["--matrix", "output", "--no-diagonal"], "--no-diagonal leaves out the recurrent self-connections"),
])
def test_perturb_refusals_on_a_recurrent_run(ms_run, cli, tmp_path, args, expect):
    path, _ = ms_run
    out = tmp_path / "p.nc"
    one_error_line(cli("perturb", path, *args, "--out", out), expect)
    assert not out.exists()


def test_perturb_matrix_refused_on_a_feed_forward_run(cli, tmp_path):
    run = tmp_path / "ffn.nc"
    assert cli("train", *FFN, "--out", run).exit_code == 0
    for args, expect in ((["--matrix", "recurrent"], "--matrix is for recurrent runs"),
                         (["--no-diagonal"], "--no-diagonal is for recurrent runs")):
        one_error_line(cli("perturb", run, *args, "--out", tmp_path / "p.nc"), expect)
    assert not (tmp_path / "p.nc").exists()
