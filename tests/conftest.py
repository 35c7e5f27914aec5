"""Shared fixtures and the test markers (declared in pyproject.toml).

- ``slow``: long runs, deselected by default (``pytest -m slow`` runs them);
- ``gpu``: need CuPy on a working GPU; they are skipped, with the reason, when none works,
  so the default suite passes on a CPU-only machine and runs them where a GPU exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mfphys.backend import get_backend, gpu_status

REPO = Path(__file__).resolve().parents[1]


def mnist_path() -> Path:
    """Real MNIST for the tests: $MFPHYS_DATA_DIR, else ../shared/data/mnist beside the repo."""
    env = os.environ.get("MFPHYS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = mnist_path()
    if not (path / "train-images-idx3-ubyte.gz").exists() and not (path / "train-images-idx3-ubyte").exists():
        pytest.fail(f"real MNIST not found in {path}: set MFPHYS_DATA_DIR to the folder of the IDX files")
    return path


def pytest_collection_modifyitems(config, items):
    ok, why = gpu_status()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"no working GPU: {why}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


#: parametrize over backends: ``@pytest.mark.parametrize("backend", BACKENDS)``
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def backend64(name: str):
    return get_backend(name, "float64")
