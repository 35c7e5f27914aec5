"""Helpers shared by the tests (imported as ``from tests.helpers import ...``, never from conftest)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfphys.backend import get_backend

REPO = Path(__file__).resolve().parents[1]

#: parametrize over backends: ``@pytest.mark.parametrize("backend", BACKENDS)``
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


def mnist_path() -> Path:
    """Real MNIST for the tests: $MFPHYS_DATA_DIR, else the data folder CI keeps beside the repository."""
    env = os.environ.get("MFPHYS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "mnist"


def backend64(name: str):
    return get_backend(name, "float64")


def one_error_line(res, expect: str, code: int = 2) -> None:
    """A CLI result ended with exit ``code`` and exactly one ``error: ...`` line containing ``expect``."""
    assert res.exit_code == code, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr


def snapshot(folder: Path) -> dict:
    """Every file below ``folder``: relative path -> (SHA-256, mtime_ns), to prove nothing was touched."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- tiny scans (tests/scan, tests/cli/test_scan.py) --------------------------------------------------

#: options of a tiny teacher-student scan cell: 20 inputs, width 16, 3 epochs (a 3 x 3 scan takes ~1 s)
SCAN_TINY = dict(dataset="teacher", input_dim="20", width="16", epochs="3", batch_size="100", replicas="2",
                 n_test="200", backend="numpy")
SCAN_GRID = dict(depth="1,2,3", n_train="200,400,600")


def tiny_spec(**over):
    """The spec of the tiny 3 x 3 scan, options as command-line text (``over`` replaces some)."""
    from mfphys.scan import spec_from_options

    return spec_from_options({**SCAN_GRID, **SCAN_TINY, **over})


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): a marker's owner that is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
