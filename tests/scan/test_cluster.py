"""Oracles for ``mfphys scan --cluster`` (batch jobs through dask-jobqueue): the job scripts it
would submit, its refusals, and (slow) a real one-node SLURM cluster against a local run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mfphys.errors import MfphysError
from mfphys.scan import ClusterSpec, runner
from tests.helpers import tiny_spec

ROOT = Path(__file__).resolve().parents[2]


def _script(spec: ClusterSpec, monkeypatch) -> str:
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setattr(shutil, "which", lambda cmd: f"/usr/bin/{cmd}")  # as on a login node
    cls, kwargs = runner._batch_options(spec, memory=3 * 2**30)
    cluster = cls(**kwargs)  # no job is submitted before scale()
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@pytest.mark.parametrize("kind, lines", [
    ("slurm", ["#SBATCH -p short", "#SBATCH -A phys", "#SBATCH -t 01:30:00", "#SBATCH --qos=low",
               "#SBATCH --mem=8G", "#SBATCH --cpus-per-task=4"]),
    ("pbs", ["#PBS -q short", "#PBS -A phys", "#PBS -l walltime=01:30:00", "#PBS --qos=low"]),
    ("sge", ["#$ -q short", "#$ -P phys", "#$ -l h_rt=01:30:00", "#$ --qos=low"]),
])
def test_job_script_carries_every_option(kind, lines, monkeypatch):
    monkeypatch.setenv("MFPHYS_DATA_DIR", "/shared/mnist data")
    script = _script(ClusterSpec(kind, jobs=3, cores=4, memory="8GB", walltime="01:30:00", queue="short",
                                 account="phys", job_extra=("--qos=low",)), monkeypatch)
    for line in lines:
        assert line in script, (line, script)
    assert "--nworkers 4" in script and "--nthreads 1" in script  # one single-threaded worker per core
    assert "export MFPHYS_DATA_DIR='/shared/mnist data'" in script  # the jobs find the same data
    assert sys.executable in script  # the same Python (on the shared file system)


def test_memory_defaults_to_twice_the_largest_cell_per_core(monkeypatch):
    script = _script(ClusterSpec("slurm", cores=2), monkeypatch)
    assert "#SBATCH --mem=12G" in script  # 2 cores x 2 x 3 GiB


def test_refusals_before_anything_is_written(tmp_path, monkeypatch):
    folder = tmp_path / "s"
    with pytest.raises(MfphysError, match="choose one of slurm, pbs, sge"):
        runner.run_scan(tiny_spec(), folder, cluster=ClusterSpec("lsf"))
    monkeypatch.setattr(shutil, "which", lambda cmd: None)
    with pytest.raises(MfphysError, match="sbatch is not on this machine's PATH"):
        runner.run_scan(tiny_spec(), folder, cluster=ClusterSpec("slurm"))
    with pytest.raises(MfphysError, match="give one of --workers"):
        runner.run_scan(tiny_spec(), folder, workers=2, cluster=ClusterSpec("slurm"))
    monkeypatch.setattr(shutil, "which", lambda cmd: "/usr/bin/sbatch")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # not installed
    with pytest.raises(MfphysError, match=r"pip install 'mfphys\[cluster\]'"):
        runner.run_scan(tiny_spec(), folder, cluster=ClusterSpec("slurm"))
    assert not folder.exists()


def test_cli_cluster_options_need_cluster(tmp_path):
    from typer.testing import CliRunner

    from mfphys.cli.main import app

    out = CliRunner().invoke(app, ["scan", "--depth", "1", "--n-train", "200", "--batch-size", "100",
                                   "--dataset", "teacher", "--out", str(tmp_path / "s"), "--jobs", "2",
                                   "--queue", "q"])
    assert out.exit_code == 2 and "--jobs, --queue: give --cluster slurm|pbs|sge too" in out.output
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_scan_through_a_real_slurm_cluster(tmp_path):
    """bench/slurm_check.sh: a one-node SLURM cluster (munge, slurmctld, slurmd) started here, a small
    scan run locally and through SLURM jobs; the cells must be the same."""
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        pytest.skip("no SLURM here (sbatch, slurmctld): apt-get install slurm-wlm munge to run this test")
    if os.geteuid() != 0:
        pytest.skip("starting SLURM's daemons needs root")
    pytest.importorskip("dask_jobqueue")
    env = {**os.environ, "PYTHON": sys.executable, "MFPHYS": str(Path(sys.executable).with_name("mfphys"))}
    out = subprocess.run(["bash", str(ROOT / "bench" / "slurm_check.sh"), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "cells identical to the local run" in out.stdout and "slurm check passed" in out.stdout
