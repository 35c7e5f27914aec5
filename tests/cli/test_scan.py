"""``mfphys scan`` and ``mfphys scan-plot``: a 3 x 3 scan, kill-and-resume, Dask, failures, bad input.

Cells are tiny teacher-student runs (no files needed). The kill test starts the real command
in a subprocess, kills it (SIGKILL, and Ctrl-C's SIGINT) once a cell file exists, and checks
that rerunning the same command completes the scan without touching the finished cells.
"""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mfphys import scan, store
from mfphys.cli.scan import EXIT_FAILED_CELLS
from tests.helpers import REPO, default_sigint, one_error_line, snapshot

ARGS = ["--depth", "1,2,3", "--n-train", "200,400,600", "--dataset", "teacher", "--input-dim", "20", "--width", "16",
        "--epochs", "3", "--batch-size", "100", "-R", "2", "--n-test", "200", "--backend", "numpy"]






@pytest.fixture(scope="module")
def cli_scan(tmp_path_factory, cli):
    folder = tmp_path_factory.mktemp("cli") / "tiny"
    result = cli("scan", *ARGS, "--out", str(folder))
    assert result.exit_code == 0, result.output
    return folder, result


def test_scan_command_writes_and_summarises(cli_scan, cli):
    folder, result = cli_scan
    assert "9/9 cells done (9 trained now, 0 kept), 0 failed" in result.stdout
    ds = scan.open_scan(folder)
    assert (ds.status == "done").all() and ds.sizes["replica"] == 2
    assert json.loads((folder / "scan.json").read_text())["command"].startswith("mfphys ")
    again = cli("scan", *ARGS, "--out", str(folder))  # nothing to do: every cell kept
    assert again.exit_code == 0 and "(0 trained now, 9 kept)" in again.stdout


def test_default_folder_is_named_by_the_configuration(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    result = cli("scan", *ARGS, "--depth", "1", "--n-train", "200", "-q")
    assert result.exit_code == 0, result.output
    spec = scan.spec_from_options({"depth": "1", "n_train": "200", "dataset": "teacher", "input_dim": "20",
                                   "width": "16", "epochs": "3", "batch_size": "100", "replicas": "2",
                                   "n_test": "200", "backend": "numpy"})
    assert (tmp_path / "runs" / spec.default_name() / "cells" / "depth=1,n_train=200.nc").exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_scan_resumes_without_touching_finished_cells(tmp_path, sig, cli):
    folder = tmp_path / "killed"
    # 200 epochs: about 0.4 s a cell, so the 8 cells after the first leave seconds for the signal
    # to land part-way even when this process is starved of CPU (at 10 epochs, under a loaded
    # suite, the scan sometimes finished first)
    cmd = [sys.executable, "-m", "mfphys", "scan", *ARGS, "--epochs", "200", "--out", str(folder), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    cells = folder / "cells"
    deadline = time.monotonic() + 120

    def finished_cells():  # a cell's checkpoint (<key>.partial.nc) is not a finished cell
        return [c for c in cells.glob("*.nc") if not c.name.endswith(".partial.nc")]

    while not finished_cells() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err.decode()
    finished = snapshot(cells)
    finished = {k: v for k, v in finished.items()
                if k.endswith(".nc") and not k.startswith(".") and not k.endswith(".partial.nc")}
    assert 1 <= len(finished) < 9, "the scan must be killed part-way for this test to mean anything"
    for name in finished:  # no corrupt file: whatever exists opens
        store.open_run(cells / name)
    if sig == signal.SIGINT:
        assert b"interrupted" in err and not list(cells.glob("*.running"))  # Ctrl-C cleans up its marker
        text = err.decode()
        assert f"{len(finished)} of 9 cells done" in text and "continue with: mfphys scan " in text, text
        if "keeps its checkpoint" in text:  # (unless the signal landed between two cells)
            partial = list(cells.glob("*.partial.nc"))
            assert len(partial) == 1 and store.read_attrs(partial[0])["status"] == "interrupted"

    result = cli("scan", *ARGS, "--epochs", "200", "--out", str(folder), "-q")  # the same command again
    assert result.exit_code == 0, result.output
    after = snapshot(cells)
    assert {k: after[k] for k in finished} == finished  # same bytes, same mtime
    assert sorted(after) == sorted(f"{c}.nc" for c in scan.scan_status(folder)["cells"])  # no markers, no temps
    ds = scan.open_scan(folder)
    assert (ds.status == "done").all() and np.isfinite(ds.test_error).all()


def test_workers_give_the_same_numbers_as_sequential(tmp_path, cli):
    # 100 inputs, width 50, batches of 500: big enough for OpenBLAS's results to depend on its
    # thread count (measured: all cells differ between 1 and 2 threads), which cells therefore
    # fix (--blas-threads 1) wherever they run
    wider = ("--input-dim", "100", "--width", "50", "--batch-size", "500", "--n-train", "500,1000,1500",
             "--epochs", "2", "-q")
    assert cli("scan", *ARGS, "--out", str(tmp_path / "seq"), *wider).exit_code == 0
    result = cli("scan", *ARGS, "--out", str(tmp_path / "dask"), "--workers", "2", *wider)
    assert result.exit_code == 0, result.output
    seq, par = scan.open_scan(tmp_path / "seq"), scan.open_scan(tmp_path / "dask")
    assert set(seq.data_vars) == set(par.data_vars) and (par.status == "done").all()
    for name in seq.data_vars:
        if name.endswith("seconds"):  # timings differ, nothing else may
            continue
        np.testing.assert_array_equal(par[name].values, seq[name].values, err_msg=name)
    for cell in scan.scan_status(tmp_path / "dask")["cells"]:
        a = store.open_run(tmp_path / "seq" / "cells" / f"{cell}.nc")
        b = store.open_run(tmp_path / "dask" / "cells" / f"{cell}.nc")
        for name in ("pi_1", "m_1", "xi_1", "hist_m"):
            np.testing.assert_array_equal(a[name].values, b[name].values)
        assert a.attrs["config_hash"] == b.attrs["config_hash"]


def test_failed_cells_exit_code(tmp_path, cli):
    folder = tmp_path / "div"
    result = cli("scan", *ARGS, "--depth", "1", "--n-train", "200", "--lr", "0.1,1e9", "--out", str(folder), "-q")
    assert result.exit_code == EXIT_FAILED_CELLS == 4
    assert "cell depth=1,n_train=200,lr=1000000000.0 failed: training diverged" in result.stderr
    assert (folder / "cells" / "depth=1,n_train=200,lr=0.1.nc").exists()


def _malformed_toml(tmp, cli):
    (tmp / "s.toml").write_text("[grid]\ndepth = [1, 2")
    return ["--config", str(tmp / "s.toml")]


def _unknown_toml(tmp, cli):
    (tmp / "s.toml").write_text("[grid]\ndepth = [1]\n[fixed]\nlearning_rate = 0.1\n")
    return ["--config", str(tmp / "s.toml")]


def _foreign_folder(tmp, cli):
    (tmp / "out").mkdir()
    (tmp / "out" / "thesis.tex").write_text("mine")
    return []


def _other_scan(tmp, cli):
    assert cli("scan", *ARGS, "--depth", "1", "--n-train", "200", "--out", str(tmp / "out"), "-q").exit_code == 0
    return []


@pytest.mark.parametrize("make, message", [
    (lambda t, c: ["--depth", "1,,3"], "malformed --depth '1,,3'"),
    (lambda t, c: ["--n-train", "200,lots"], "n_train takes int values"),
    (lambda t, c: ["--replicas", "0"], "--replicas must be positive"),
    (_malformed_toml, "is not valid TOML"),
    (_unknown_toml, "unknown parameter 'learning_rate'"),
    (lambda t, c: ["--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "0.5"], "cannot reach the Dask scheduler"),
    (lambda t, c: ["--workers", "0"], "--workers must be >= 1"),
    (_foreign_folder, "holds no scan.json: it is not an mfphys scan folder"),
    (_other_scan, "was made by a different scan configuration (depth differs: 1 there, 1,2,3 here; "
                  "n_train differs: 200 there, 200,400,600 here)"),
    (lambda t, c: ["--name", "mine"], "give --name (the folder runs/<name>) or --out (any folder), not both"),
    (lambda t, c: ["--dataset", "mnist", "--input-dim", "784", "--teacher-seed", "2"],
     "--teacher-seed 2 is the teacher network's seed: it needs --dataset teacher, not mnist"),
], ids=["grid", "type", "replicas", "toml", "toml-key", "scheduler", "workers", "foreign", "other-scan", "name-out",
        "teacher-seed"])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, make, message, cli):
    extra = make(tmp_path, cli)
    before = snapshot(tmp_path)
    result = cli("scan", *ARGS, "--out", str(tmp_path / "out"), *extra)
    one_error_line(result, message)
    assert snapshot(tmp_path) == before


def test_summary_table_columns(cli_scan):
    folder, result = cli_scan
    header = next(line for line in result.stdout.splitlines() if "status" in line)
    # errors side by side (same kind of quantity), one name for sparsity = frac_uip
    assert "test error" in header and "sampled error" in header and "sampled acc" not in header
    assert "frac_uip (= sparsity)" in header and header.count("sparsity") == 1
    assert "layer 1 over live inputs" in result.stdout.replace("\n", " ")


def test_help_shows_defaults_as_values(cli):
    from mfphys.cli.scan import SCAN_OPTIONS
    from mfphys.cli.scan import scan as scan_command
    from mfphys.scan import DEFAULTS

    res = cli("scan", "--help", env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "(100)" not in res.output and "<bool>" not in res.output
    assert "[default: 100]" in res.output and "[default: mnist]" in res.output
    # what help shows is what a scan uses when the option is not given
    params = inspect.signature(scan_command).parameters
    for name in SCAN_OPTIONS:
        shown = params[name].default.default
        if name in ("depth", "n_train", "init_m_std"):
            continue
        want = DEFAULTS.get(name)
        assert shown == ("all" if want is None else ",".join(want) if isinstance(want, tuple) else want) or \
            str(shown) == str(want), name


def test_counts_add_up():
    from mfphys.cli.common import counts_text

    # a scan event's "pending" includes the running cells
    text = counts_text({"total": 4, "done": 2, "failed": 0, "running": 1, "pending": 2})
    assert text == "cells: 2 done, 1 running, 1 pending, 0 failed"


def test_scan_plot(cli_scan, tmp_path, cli):
    out = tmp_path / "phase.png"
    result = cli("scan-plot", str(cli_scan[0]), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "9 cell(s) done" in result.stdout
    result = cli("scan-plot", str(cli_scan[0]), "--out", str(out), "--vars", "test_error,mean_xi", "--layer", "2")
    assert result.exit_code == 0, result.output
    for extra in (["--layer", "-1"], ["--layer", "-2", "--all-inputs"], ["--all-inputs"]):
        result = cli("scan-plot", str(cli_scan[0]), "--out", str(out), *extra)
        assert result.exit_code == 0, (extra, result.output)


def test_phase_figure_titles_say_what_is_shown(cli_scan):
    from mfphys.cli.figures import phase_figure

    ds = scan.open_scan(cli_scan[0])
    titles = [ax.get_title() for ax in phase_figure(ds, ["frac_uip", "entropy"]).axes if ax.get_title()]
    assert titles == ["frac_uip (= sparsity) (whole network, layer 1 over live inputs)",
                      "entropy (whole network, layer 1 over live inputs)"]
    titles = [ax.get_title() for ax in phase_figure(ds, ["entropy"], layer=-1, live=False).axes if ax.get_title()]
    assert titles == ["entropy (output layer)"]


@pytest.mark.parametrize("args, message", [
    (["--vars", "nonsense"], "unknown variable(s) nonsense"),
    (["--layer", "9"], "--layer must be in 1..4 (from the inputs) or -4..-1"),
    (["--layer", "0"], "--layer must be in 1..4"),
    (["--layer", "-5"], "--layer must be in 1..4"),
    (["--out", "fig.pdf"], "ending in .png"),
    (["--sel", "lr=0.1"], "'lr' is not another scanned option"),
])
def test_scan_plot_bad_input(cli_scan, args, message, cli):
    result = cli("scan-plot", str(cli_scan[0]), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_scan_plot_not_a_scan(tmp_path, cli):
    result = cli("scan-plot", str(tmp_path))
    assert result.exit_code == 2 and "not an mfphys scan folder" in result.stderr


def test_scan_plot_sel_reads_a_bool_option_as_the_scan_does(tmp_path, cli):
    """``--sel host_noise=false`` picks the False cells (``bool("false")`` would be True)."""
    (tmp_path / "s.toml").write_text("[grid]\nhost_noise = [false, true]\n")
    folder = tmp_path / "bool"
    result = cli("scan", "--config", tmp_path / "s.toml", "--depth", "1", "--n-train", "200,400", "--dataset",
                 "teacher", "--input-dim", "20", "--width", "16", "--epochs", "2", "--batch-size", "100", "-R", "1",
                 "--n-test", "200", "--backend", "numpy", "--out", folder, "-q")
    assert result.exit_code == 0, result.output
    assert scan.open_scan(folder).status.dims == ("depth", "n_train", "host_noise")
    # the two values give the same numbers on NumPy: tell the halves apart by a missing cell
    (folder / "cells" / "depth=1,n_train=400,host_noise=true.nc").unlink()
    for value, done in (("false", "2 cell(s) done, 0 not yet"), ("0", "2 cell(s) done, 0 not yet"),
                        ("true", "1 cell(s) done, 1 not yet"), ("True", "1 cell(s) done, 1 not yet")):
        result = cli("scan-plot", folder, "--sel", f"host_noise={value}", "--out", tmp_path / f"{value}.png")
        assert result.exit_code == 0 and done in result.stdout, (value, result.output)
    one_error_line(cli("scan-plot", folder, "--sel", "host_noise=maybe"), "host_noise takes one of False, True")


# --- recurrent scans (--family rnn, alias --model rnn) ---------------------------------------------------------------

RNN_ARGS = ["--family", "rnn", "--steps", "7,14", "--n-train", "256,512", "--n", "20", "--epochs", "1", "-R", "2",
            "--n-test", "200", "--eval-samples", "2", "--backend", "numpy"]


@pytest.fixture(scope="module")
def rnn_cli_scan(tmp_path_factory, cli, mnist_dir):
    folder = tmp_path_factory.mktemp("rnncli") / "rnn"
    result = cli("scan", *RNN_ARGS, "--data-dir", mnist_dir, "--out", str(folder))
    assert result.exit_code == 0, result.output
    return folder, result


def test_rnn_scan_command(rnn_cli_scan, cli, mnist_dir):
    folder, result = rnn_cli_scan
    out = result.stdout
    assert "4/4 cells done (4 trained now, 0 kept), 0 failed" in out
    header = next(line for line in out.splitlines() if "status" in line)
    assert "steps" in header and "frac_uip (= sparsity)" in header and "entropy" in header
    assert "sampled error" in header and "order parameters: recurrent matrix" in out.replace("\n", " ")
    ds = scan.open_scan(folder)
    assert ds.attrs["model"] == "rnn" and (ds.status == "done").all()
    assert json.loads((folder / "scan.json").read_text())["model"] == "rnn"
    again = cli("scan", *RNN_ARGS, "--data-dir", mnist_dir, "--out", str(folder))
    assert again.exit_code == 0 and "(0 trained now, 4 kept)" in again.stdout


def test_rnn_scan_toml_is_the_same_scan(rnn_cli_scan, tmp_path, cli, mnist_dir):
    path = tmp_path / "rnn.toml"
    path.write_text('model = "rnn"\n[grid]\nsteps = [7, 14]\nn_train = [256, 512]\n[fixed]\nn = 20\nepochs = 1\n'
                    'replicas = 2\nn_test = 200\neval_samples = 2\nbackend = "numpy"\n')
    result = cli("scan", "--config", path, "--data-dir", mnist_dir, "--out", str(rnn_cli_scan[0]))
    assert result.exit_code == 0, result.output
    assert "(0 trained now, 4 kept)" in result.stdout


def test_rnn_scan_plot(rnn_cli_scan, tmp_path, cli):
    folder = rnn_cli_scan[0]
    for extra in ([], ["--no-diagonal"], ["--matrix", "input", "--vars", "test_acc_quenched,frac_vip"]):
        out = tmp_path / "phase.png"
        result = cli("scan-plot", str(folder), "--out", str(out), *extra)
        assert result.exit_code == 0, (extra, result.output)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "4 cell(s) done" in result.stdout
        out.unlink()


def test_rnn_phase_figure_shows_the_matrix(rnn_cli_scan):
    from mfphys.cli.figures import phase_figure

    ds = scan.open_scan(rnn_cli_scan[0])
    fig = phase_figure(ds, ["test_error", "frac_uip"], matrix="recurrent", diagonal=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["test_error", "frac_uip (= sparsity) (recurrent matrix, no diagonal)"]
    assert fig.axes[0].get_ylabel() == "steps T (temporal depth)"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["7", "14"]


@pytest.mark.parametrize("extra, message", [
    (["--matrix", "input"], "--matrix: only a recurrent scan"),
    (["--no-diagonal"], "--no-diagonal: only a recurrent scan"),
])
def test_scan_plot_refuses_matrix_options_on_a_feed_forward_scan(cli_scan, tmp_path, cli, extra, message):
    one_error_line(cli("scan-plot", str(cli_scan[0]), "--out", str(tmp_path / "x.png"), *extra), message)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("extra, message", [
    (["--layer", "1"], "--layer: "),
    (["--all-inputs"], "--all-inputs: "),
    (["--matrix", "hidden"], "--matrix 'hidden': choose one of input, recurrent, output"),
])
def test_scan_plot_refusals_on_a_recurrent_scan(rnn_cli_scan, tmp_path, cli, extra, message):
    one_error_line(cli("scan-plot", str(rnn_cli_scan[0]), "--out", str(tmp_path / "x.png"), *extra), message)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--model", "rnn", "--steps", "7", "--n-train", "256", "--depth", "1"], "--depth does not apply to --family rnn"),
    (["--steps", "7", "--depth", "1", "--n-train", "256"], "--steps does not apply to --family ffn"),
    (["--model", "rnn", "--steps", "7", "--n-train", "256", "--preset", "multisensory"],
     "the multisensory task generates its trials"),
    (["--model", "rnn", "--steps", "9", "--n-train", "256"], "steps must divide the 784 pixels"),
    (["--model", "rnn", "--steps", "7", "--n-train", "100"], "less than one mini-batch of 128"),
    (["--model", "rnn", "--n-train", "256"], "give the steps values to scan"),
    (["--model", "lstm", "--steps", "7", "--n-train", "256"], "unknown --family 'lstm'"),
    (["--family", "lstm", "--steps", "7", "--n-train", "256"], "unknown --family 'lstm'"),
])
def test_rnn_scan_refusals(tmp_path, cli, args, message):
    one_error_line(cli("scan", *args, "--out", str(tmp_path / "out")), message)
    assert not (tmp_path / "out").exists()


def test_dry_run_packs_the_sizes_and_seeds_of_a_depth(tmp_path, cli):
    # the 3 x 3 grid with 2 seeds: one group per depth (its 3 sizes x 2 seeds), docs/scans.md "Packed cells"
    result = cli("scan", *ARGS, "--seed", "0,3", "--out", str(tmp_path / "out"), "--dry-run",
                 env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "18 (0 done, 18 to train)" in result.stdout and "3 (18 cells, each group one run)" in result.stdout
    result = cli("scan", *ARGS, "--seed", "0,3", "--no-pack", "--out", str(tmp_path / "out"), "--dry-run",
                 env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "packed groups" not in result.stdout
    assert not (tmp_path / "out").exists()


def test_rnn_dry_run_writes_nothing(tmp_path, cli):
    result = cli("scan", *RNN_ARGS, "--out", str(tmp_path / "out"), "--dry-run", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "4 (0 done, 4 to train)" in result.stdout and "estimated time" in result.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_of_a_dask_scan_is_quiet_and_prompt(tmp_path):
    """A terminal's Ctrl-C reaches the scan and its Dask workers alike: the workers go quietly,
    the scan exits 130 promptly, and the same command finishes the scan (docs/guarantees.md)."""
    import os

    from mfphys.fileio import read_json

    folder = tmp_path / "s"
    cmd = [sys.executable, "-m", "mfphys", "scan", *ARGS, "--epochs", "200", "--workers", "2", "--out", str(folder),
           "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not any(
            "started" in (read_json(m) or {}) for m in (folder / "cells").glob("*.running")):
        time.sleep(0.05)
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()


def test_scan_plot_averages_a_seed_axis_as_replicas(tmp_path, cli):
    """Seeds are independent copies of a cell: the picture shows their mean (a pending seed: "—")."""
    from mfphys.cli.scan import mean_over_seeds

    folder = tmp_path / "seeds"
    result = cli("scan", "--depth", "1", "--n-train", "200,400", "--seed", "0,3", "--dataset", "teacher",
                 "--input-dim", "20", "--width", "16", "--epochs", "2", "--batch-size", "100", "-R", "2",
                 "--n-test", "100", "--backend", "numpy", "-q", "--out", folder)
    assert result.exit_code == 0, result.output
    out = tmp_path / "p.png"
    result = cli("scan-plot", folder, "--out", out)
    assert result.exit_code == 0 and "4 cell(s) done" in result.stdout, result.output
    ds = scan.open_scan(folder)
    mean = mean_over_seeds(ds)
    np.testing.assert_array_equal(mean.test_error.values, ds.test_error.mean("seed").values)
    assert "seed" not in mean.dims and (mean.status == "done").all() and mean.attrs["seeds_averaged"] == 2
    ds["status"][dict(seed=1, n_train=0)] = "pending"  # one seed of one cell not done: that cell is not
    assert list(mean_over_seeds(ds).status.values.ravel()) == ["pending", "done"]
