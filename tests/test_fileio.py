"""mfphys.fileio: atomic writes, refusals of destinations that are not files, stale temporaries, disk space."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mfphys import fileio
from mfphys.errors import MfphysError


def test_check_writable(tmp_path):
    assert fileio.check_writable(tmp_path / "new" / "dir" / "run.nc").parent.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MfphysError, match="Not a directory"):
        fileio.check_writable(blocker / "run.nc")
    with pytest.raises(MfphysError, match="is a directory"):
        fileio.check_writable(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["file", "new"]


def test_atomic_file_writes_whole_files_and_cleans_up(tmp_path):
    target = tmp_path / "a.txt"
    with fileio.atomic_file(target) as tmp:
        tmp.write_text("one")
    assert target.read_text() == "one"
    with pytest.raises(ZeroDivisionError), fileio.atomic_file(target) as tmp:
        tmp.write_text("half")
        1 / 0  # noqa: B018  (a writer that fails midway)
    assert target.read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_fifo_is_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for call in (lambda: fileio.check_writable(fifo), lambda: fileio.write_json_atomic({}, fifo)):
        with pytest.raises(MfphysError, match="not a regular file"):
            call()
    assert fifo.is_fifo()


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/null"), reason="needs root to be dangerous")
def test_dev_null_is_never_replaced():
    before = os.stat("/dev/null")
    with pytest.raises(MfphysError, match="not a regular file"):
        fileio.check_writable("/dev/null")
    with pytest.raises(MfphysError, match="not a regular file"), fileio.atomic_file("/dev/null") as tmp:
        tmp.write_text("x")
    after = os.stat("/dev/null")
    assert (after.st_rdev, after.st_ino) == (before.st_rdev, before.st_ino)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "run.nc"
    stale = tmp_path / f".run.nc.{dead.pid}.tmp"
    alive = tmp_path / f".run.nc.{os.getppid()}.tmp"  # our parent runs: its temporary stays
    other = tmp_path / f".other.nc.{dead.pid}.tmp"
    for p in (stale, alive, other):
        p.write_bytes(b"half")
    fileio.check_writable(target)
    assert not stale.exists() and alive.exists() and other.exists()


def test_free_space_is_checked_up_front(tmp_path):
    free = fileio.free_bytes(tmp_path)
    assert free and free > 0
    with pytest.raises(MfphysError, match=r"No space left on device .*needs about"):
        fileio.check_writable(tmp_path / "huge.nc", nbytes=free * 2)
    fileio.check_writable(tmp_path / "small.nc", nbytes=1000)


@pytest.mark.parametrize("exc, expect", [
    (OSError(28, "No space left on device"), "No space left on device"),
    (OSError(13, "Permission denied"), "Permission denied"),
    (RuntimeError("NetCDF: HDF error"), "NetCDF: HDF error"),
])
def test_write_errors_are_one_line(tmp_path, exc, expect):
    err = fileio.write_error(tmp_path / "x.nc", exc)
    assert isinstance(err, MfphysError) and expect in str(err) and "\n" not in str(err)
