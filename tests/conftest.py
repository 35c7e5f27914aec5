"""Fixtures and the test markers (declared in pyproject.toml). Helpers live in tests/helpers.py.

- ``slow``: long runs, deselected by default (``pytest -m slow`` runs them);
- ``gpu``: need CuPy on a working GPU; they are skipped, with the reason, when none works,
  so the default suite passes on a CPU-only machine and runs them where a GPU exists.
  ``MFPHYS_FAKE_CUPY=1 python -m pytest -m gpu`` (or ``--fake-cupy``) runs them on a CPU
  against the CuPy emulation of ``tests/fake_cupy`` (tests/README.md); never without asking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfphys.backend import gpu_status

from . import fake_cupy
from .helpers import mnist_path


def pytest_addoption(parser):
    parser.addoption("--fake-cupy", action="store_true", default=False,
                     help="run the gpu tests against the CuPy emulation of tests/fake_cupy (as MFPHYS_FAKE_CUPY=1)")


def pytest_configure(config):
    if config.getoption("--fake-cupy") or fake_cupy.requested():
        fake_cupy.activate()


def pytest_report_header(config):
    if fake_cupy.active():
        return "cupy: the CuPy emulation of tests/fake_cupy (NumPy on the CPU; tests/README.md)"
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = mnist_path()
    if not (path / "train-images-idx3-ubyte.gz").exists() and not (path / "train-images-idx3-ubyte").exists():
        pytest.fail(f"real MNIST not found in {path}: set MFPHYS_DATA_DIR to the folder of the IDX files")
    return path


@pytest.fixture(scope="session")
def cli():
    """The ``mfphys`` command in-process: ``cli("train", "--epochs", 2, ...)`` -> click's Result
    (``exit_code``, ``stdout``, ``stderr``, ``output``); arguments are turned into strings."""
    from typer.testing import CliRunner

    from mfphys.cli.main import app

    runner = CliRunner()

    def invoke(*args, **kwargs):
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke


def pytest_collection_modifyitems(config, items):
    ok, why = gpu_status()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"no working GPU: {why}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
