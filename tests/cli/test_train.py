"""``mfphys train`` and ``mfphys data`` from the command line: output files and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfphys import data as data_mod
from mfphys import open_run
from mfphys.train import TrainConfig
from tests.helpers import assert_same_run, one_error_line, snapshot, start_mfphys, wait_for_checkpoint

TINY = ["--dataset", "teacher", "--layers", "784,16,10", "--n-train", "200", "--n-test", "100", "--epochs", "2",
        "--batch-size", "50", "--backend", "numpy", "--quiet"]




def test_train_writes_a_run_file(tmp_path, cli):
    out = tmp_path / "runs" / "tiny.nc"
    res = cli("train", *TINY, "-R", "2", "--out", str(out), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ds = open_run(out)
    assert ds.sizes["replica"] == 2 and ds.sizes["epoch"] == 2 and ds.attrs["architecture"] == "784-16-10"
    assert "mfphys train" in ds.attrs["history"] or "mfphys" in ds.attrs["history"]


def test_train_shows_progress_and_summary(tmp_path, cli):
    res = cli("train", *[a for a in TINY if a != "--quiet"], "--out", str(tmp_path / "r.nc"), catch_exceptions=False)
    assert res.exit_code == 0
    assert "frac_vip" in res.stdout and "wrote" in res.stdout


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No MNIST anywhere and no network: an empty env dir, an empty cache, unreachable mirrors."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data_mod, "MIRRORS", {k: ("http://127.0.0.1:9/",) for k in data_mod.MIRRORS})
    monkeypatch.setattr(data_mod, "DOWNLOAD_TIMEOUT_S", 2.0)
    data_mod.clear_cache()


BAD = {
    "malformed layers": (["--layers", "784,abc,10"], "--layers"),
    "input width": (["--layers", "100,10", "--data-dir", "{mnist}"], "784 input features"),
    "n-train too large": (["--n-train", "70000", "--data-dir", "{mnist}"], "larger than"),
    "lr zero": (["--lr", "0"], "--lr"),
    "lr negative": (["--lr", "-0.1"], "--lr"),
    "batch zero": (["--batch-size", "0"], "--batch-size"),
    "epochs zero": (["--epochs", "0"], "--epochs"),
    "unknown backend": (["--backend", "tpu"], "backend"),
    "cupy without GPU": (["--backend", "cupy", "--dataset", "teacher"], "GPU"),
    "unknown dataset": (["--dataset", "cifar"], "cifar"),
    "weight decay negative": (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    "init xi negative": (["--init-xi", "-1"], "--init-xi must be a finite number >= 0"),
    "init m std negative": (["--init-m-std", "-1"], "--init-m-std must be a finite number >= 0"),
    "teacher seed with mnist": (["--teacher-seed", "3"], "--teacher-seed 3 is the teacher network's seed"),
    "name with a slash": (["--name", "a/b"], "--name 'a/b': give a plain file name"),
    "blas threads": (["--blas-threads", "0"], "--blas-threads must be >= 1"),
    "diverges": (["--dataset", "teacher", "--layers", "784,16,10", "--n-train", "200", "--batch-size", "50",
                  "--lr", "1e12", "--epochs", "4", "--backend", "numpy"], "diverged"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_no_file(case, tmp_path, mnist_dir, cli):
    args, expect = BAD[case]
    if case == "cupy without GPU":
        from mfphys.backend import gpu_status

        if gpu_status()[0]:
            pytest.skip("a GPU works here")
    args = [a.format(mnist=mnist_dir) for a in args]
    out = tmp_path / "r.nc"
    res = cli("train", "--epochs", "1", *args, "--out", str(out), "--quiet", catch_exceptions=False)
    assert res.exit_code != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr
    assert "Traceback" not in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing partial left behind


def test_missing_data_offline_says_where_to_put_files(offline, tmp_path, cli):
    res = cli("train", "--epochs", "1", "--out", str(tmp_path / "r.nc"), "--quiet", catch_exceptions=False)
    assert res.exit_code != 0
    (line,) = res.stderr.strip().splitlines()
    assert "MFPHYS_DATA_DIR" in line and "--data-dir" in line
    assert not (tmp_path / "r.nc").exists()


def test_unwritable_out_fails_before_training(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    res = cli("train", *TINY, "--out", str(blocker / "run.nc"), catch_exceptions=False)
    assert res.exit_code != 0 and "cannot write" in res.stderr
    assert blocker.read_text() == "keep me"


def test_entry_point_subprocess_error_exit_code(tmp_path):
    """The installed console script: one line on stderr, non-zero exit, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "mfphys", "train", "--layers", "7", "--out", str(tmp_path / "x.nc")],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --layers needs at least two positive widths, got 7"]


def test_help_follows_typer_conventions(cli):
    """Flags without a type, defaults as values, required arguments marked, usage with their names."""
    res = cli("train", "--help", env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output and "(100)" not in res.output and "<int>" not in res.output
    assert "[default: 100]" in res.output and "[default: 784,100,100,10]" in res.output
    for flag in ("--quiet", "--dry-run", "--help"):
        (line,) = [x for x in res.output.splitlines() if f" {flag} " in x and "│" in x]
        assert "BOOL" not in line and "<" not in line, line
    res = cli("order", "--help", env={"COLUMNS": "200"})
    assert "Usage: mfphys order [OPTIONS] RUN" in res.output and "{run}" not in res.output
    assert "[required]" in res.output


def test_name_tags_and_note(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    res = cli("train", *TINY, "--name", "baseline", "--tag", "paper", "--tag", "R1", "--note", "first try",
              "--blas-threads", "1", catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ds = open_run(tmp_path / "runs" / "baseline.nc")
    assert ds.attrs["name"] == "baseline" and json.loads(ds.attrs["tags"]) == ["paper", "R1"]
    assert ds.attrs["note"] == "first try"
    res = cli("train", *TINY, "--out", tmp_path / "other.nc", catch_exceptions=False)
    assert open_run(tmp_path / "other.nc").attrs["name"] == "other"  # no --name: the file's name


def test_default_names_never_replace_a_file(tmp_path, monkeypatch):
    from mfphys.cli.families.ffn import default_out
    from mfphys.train import TrainConfig

    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(mode="bp", seed=4)
    first = default_out(cfg)
    assert first.parent == Path("runs") and first.name.startswith("mnist-784-100-100-10-bp-seed4-")
    first.parent.mkdir()
    first.write_text("an earlier run")
    second = default_out(cfg)
    assert second != first and (second.stem.endswith("-2") or second.stem[-6:] != first.stem[-6:])
    assert default_out(cfg, "mine") == Path("runs/mine.nc")


def test_an_existing_file_that_is_not_a_run_is_never_replaced(tmp_path, cli):
    """The same --out again resumes or continues a run (docs/cli.md); anything else there is refused."""
    out = tmp_path / "r.nc"
    out.write_text("old")
    res = cli("train", *TINY, "--out", out)
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and out.read_text() == "old"


def test_name_tags_and_note_survive_a_resume(tmp_path, cli):
    out = tmp_path / "r.nc"
    res = cli("train", *TINY, "--out", out, "--name", "first", "--tag", "a", "--tag", "b", "--note", "hi")
    assert res.exit_code == 0, res.output
    res = cli("train", *[a if a != "2" else "3" for a in TINY], "--out", out)  # continue to 3 epochs
    assert res.exit_code == 0, res.output
    ds = open_run(out)
    assert ds.sizes["epoch"] == 3 and ds.attrs["name"] == "first" and ds.attrs["note"] == "hi"
    assert ds.attrs["tags"] == '["a", "b"]'


ONE_LINE = {
    "env folder missing": ({"MFPHYS_DATA_DIR": "{tmp}/nowhere"}, [], "MFPHYS_DATA_DIR={tmp}/nowhere does not exist"),
    "data dir is a file": ({}, ["--data-dir", "{tmp}/f"], "is a file, not a folder"),
    "n-train too large": ({}, ["--n-train", "70000", "--data-dir", "{mnist}"], "larger than"),
    "batch larger than data": ({}, ["--n-train", "100", "--data-dir", "{mnist}"], "--batch-size 500 is larger"),
}


@pytest.mark.parametrize("case", list(ONE_LINE))
def test_a_one_line_error_has_nothing_else_on_stderr(case, tmp_path, mnist_dir, cli):
    """Without --quiet: no progress line (`0/1 loading data`) before the error."""
    env, args, expect = ONE_LINE[case]
    (tmp_path / "f").write_text("x")
    fmt = dict(tmp=tmp_path, mnist=mnist_dir)
    res = cli("train", "--epochs", "1", *(a.format(**fmt) for a in args), "--out", tmp_path / "r.nc",
              env={k: v.format(**fmt) for k, v in env.items()}, catch_exceptions=False)
    one_error_line(res, expect.format(**fmt))
    assert res.stdout == ""


def test_data_where_and_verify(mnist_dir, cli):
    res = cli("data", "where", "--data-dir", str(mnist_dir), catch_exceptions=False)
    assert res.exit_code == 0 and str(mnist_dir) in res.stdout
    res = cli("data", "verify", "--data-dir", str(mnist_dir), catch_exceptions=False)
    assert res.exit_code == 0 and res.stdout.count("yes") == 4


# --- live, resumable run files ----------------------------------------------------------------------

SMALL = ["--dataset", "teacher", "--layers", "20,16,10", "--n-train", "200", "--n-test", "100", "--batch-size", "50",
         "--backend", "numpy", "-R", "2", "--eval-samples", "3", "--quiet"]
LONG = 40  # epochs: a few seconds with a checkpoint after every epoch


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run the interrupted ones must end up equal to, trained in one go in its own process."""
    out = tmp_path_factory.mktemp("ref") / "ref.nc"
    proc = start_mfphys("train", *SMALL, "--epochs", LONG, "--out", out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return open_run(out)


def test_sigkill_at_a_random_epoch_then_the_same_command_resumes_bit_identically(uninterrupted, tmp_path):
    target = int(np.random.default_rng().integers(2, 30))
    out = tmp_path / "r.nc"
    args = ["train", *SMALL, "--epochs", LONG, "--checkpoint-every", 1, "--out", out]
    proc = start_mfphys(*args)
    wait_for_checkpoint(out, target, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = open_run(out, log=False)  # the last checkpoint is whole
    n = int(killed.attrs["epochs_done"])
    assert killed.attrs["status"] == "running" and target <= n < LONG and killed.sizes["epoch"] == n, target
    # the epoch log may hold the epoch in which the kill came (docs/file-format.md "The epoch log")
    assert n <= open_run(out).sizes["epoch"] <= n + 1
    again = start_mfphys(*args)  # the same command again continues the run
    assert again.wait(timeout=300) == 0, again.stderr.read()
    done = open_run(out)
    assert_same_run(done, uninterrupted)
    assert done.attrs["status"] == "done"
    assert [(s["action"], s["from_epoch"]) for s in json.loads(done.attrs["segments"])] == [("new", 0), ("resume", n)]
    assert [p.name for p in tmp_path.iterdir()] == ["r.nc"]  # the killed writer's temporary was removed


def test_ctrl_c_saves_the_epoch_as_interrupted_and_resume_finishes_it(uninterrupted, tmp_path):
    out = tmp_path / "r.nc"
    proc = start_mfphys("train", *SMALL, "--epochs", LONG, "--checkpoint-every", 5, "--checkpoint-seconds", 0,
                        "--out", out)
    wait_for_checkpoint(out, 5, proc)
    proc.send_signal(signal.SIGINT)  # in the middle of an epoch, most likely: that epoch is finished and saved
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ds = open_run(out)
    n = int(ds.attrs["epochs_done"])
    assert ds.attrs["status"] == "interrupted" and 1 <= n < LONG and ds.sizes["epoch"] == n
    assert f"interrupted after epoch {n} of {LONG}" in err and f"--resume {out}" in err
    assert "test_acc_sampled" not in ds and ds.test_acc.shape == (2, n)
    res = start_mfphys("train", "--resume", out)
    assert res.wait(timeout=300) == 0, res.stderr.read()
    assert_same_run(open_run(out), uninterrupted)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    from typer.testing import CliRunner

    from mfphys.cli.main import app

    out = tmp_path_factory.mktemp("done") / "run.nc"
    res = CliRunner().invoke(app, ["train", *SMALL, "--epochs", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def run_copy(done_run, tmp_path):
    out = tmp_path / "run.nc"
    shutil.copy2(done_run, out)
    return out


REFUSALS = {
    "another configuration": (["train", *SMALL, "--epochs", "3", "--lr", "0.05", "--out", "{run}"],
                              "--lr 0.1 in the file, 0.05 here"),
    "another mode": (["train", "--resume", "{run}", "--mode", "bp", "-q"], "was made by --mode gbp, not bp"),
    "resume with another option": (["train", "--resume", "{run}", "--seed", "4", "-q"],
                                   "--seed 0 in the file, 4 here"),
    "fewer epochs": (["train", "--resume", "{run}", "--epochs", "2", "-q"], "has 3 epochs done already"),
    "resume and another out": (["train", "--resume", "{run}", "--out", "{other}", "-q"], "leave out --out"),
    "not netCDF": (["train", "--resume", "{text}", "-q"], "not a readable netCDF file"),
    "not an mfphys file": (["train", *SMALL, "--out", "{foreign}"], "not an mfphys file"),
    "corrupt": (["train", "--resume", "{corrupt}", "-q"], "cannot read"),
    "unknown protocol": (["train", *SMALL, "--protocol", "1999", "--out", "{other}"], "unknown --protocol '1999'"),
    "unknown adam reset": (["train", *SMALL, "--adam-reset", "often", "--out", "{other}"], "--adam-reset"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_are_one_line_and_touch_nothing(case, run_copy, tmp_path, cli):
    import xarray as xr

    (tmp_path / "notes.nc").write_text("not a run")
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(tmp_path / "foreign.nc", engine="netcdf4")
    (tmp_path / "corrupt.nc").write_bytes(run_copy.read_bytes()[:4000])
    names = dict(run=run_copy, other=tmp_path / "other.nc", text=tmp_path / "notes.nc",
                 foreign=tmp_path / "foreign.nc", corrupt=tmp_path / "corrupt.nc")
    args, expect = REFUSALS[case]
    before = snapshot(tmp_path)
    one_error_line(cli(*[a.format(**names) for a in args]), expect)
    assert snapshot(tmp_path) == before


def test_a_done_run_is_left_alone_and_can_be_continued(run_copy, tmp_path, cli):
    before = snapshot(tmp_path)
    res = cli("train", *SMALL, "--epochs", 3, "--out", run_copy)
    assert res.exit_code == 0 and "is done (3 epochs): nothing to train" in res.stdout
    assert snapshot(tmp_path) == before
    res = cli("train", "--resume", run_copy, "--epochs", 5)
    assert res.exit_code == 0, res.output
    assert "continuing from epoch 3" in res.stdout and f"watch it: mfphys tui {tmp_path}" in res.stdout
    ds = open_run(run_copy)
    assert ds.sizes["epoch"] == 5 and json.loads(ds.attrs["segments"])[-1]["action"] == "extend"
    one = tmp_path / "one.nc"
    assert cli("train", *SMALL, "--epochs", 5, "--out", one).exit_code == 0
    assert_same_run(ds, open_run(one), dynamics=False)


def test_new_run_says_where_it_writes_and_how_to_watch(tmp_path, cli):
    out = tmp_path / "runs" / "r.nc"
    res = cli("train", *[a for a in SMALL if a != "--quiet"], "--epochs", 2, "--out", out)
    assert res.exit_code == 0, res.output
    assert f"writing {out}; watch it: mfphys tui {out.parent}" in res.stdout


def test_protocol_2020_preset_and_explicit_options_win(tmp_path, cli):
    res = cli("train", *SMALL, "--protocol", "2020", "--dry-run", "--out", tmp_path / "r.nc")
    assert res.exit_code == 0 and "200 epochs" in res.stdout and not (tmp_path / "r.nc").exists()
    res = cli("train", *SMALL, "--protocol", "2020", "--epochs", 2, "--decay-on", "pi,m,xi", "--out", tmp_path / "r.nc")
    assert res.exit_code == 0, res.output
    cfg = TrainConfig.from_json(open_run(tmp_path / "r.nc").attrs["config"])
    assert (cfg.epochs, cfg.lr_halve_every, cfg.adam_reset, cfg.decay_on) == (2, 20, "epoch", ("pi", "m", "xi"))


def test_checkpoint_defaults_shown_in_help_are_the_library_ones():
    """cli/train.py copies mfphys.runfile's defaults so that `mfphys train --help` need not import it."""
    from mfphys import runfile
    from mfphys.cli import train

    assert (train.CHECKPOINT_EVERY, train.CHECKPOINT_SECONDS) == (runfile.CHECKPOINT_EVERY, runfile.CHECKPOINT_SECONDS)


def test_a_default_map_value_is_not_an_option_given(run_copy, cli):
    """A value from a default map (a configuration file's defaults) is a default: on --resume the file's
    configuration wins over it, as over any default."""
    res = cli("train", "--resume", run_copy, "-q", default_map={"train": {"seed": 4, "lr": 0.5}})
    assert res.exit_code == 0 and "is done (3 epochs): nothing to train" in res.stdout, res.output


@pytest.mark.parametrize("selector", ["--family", "--model"])
def test_family_and_model_are_one_option(selector, cli, tmp_path):
    res = cli("train", selector, "rnn", "--preset", "multisensory", "--dry-run", "--out", tmp_path / "r.nc")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("rnn gbp") and "(multisensory)" in res.stdout
    one_error_line(cli("train", selector, "rnn", "--layers", "784,10"), "--layers does not apply to --family rnn")


@pytest.mark.parametrize("command", ["train", "scan"])
def test_each_family_has_its_help_panel(command, cli):
    res = cli(command, "--help", env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    panels = [line.strip("╭─ ").split(" ─")[0] for line in lines if line.startswith("╭─")]
    # scan: the batch-cluster options and those of an adaptive scan (docs/scans.md) in panels of their own, last
    assert panels == ["Options", "Feed-forward options", "Recurrent options"] + (
        ["Batch clusters (--cluster; docs/scans.md)", "Adaptive scans"] if command == "scan" else []), panels
    family = next(line for line in lines if line.startswith("│ --family"))
    assert "--model" in family, family  # the alias is the same option, on the same line
    preset = next(i for i, line in enumerate(lines) if " --preset " in line)
    assert preset > next(i for i, line in enumerate(lines) if "Recurrent options" in line)
