"""Helpers shared by the tests (imported as ``from tests.helpers import ...``, never from conftest)."""

from __future__ import annotations

import hashlib
import os
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
