"""Fixtures of the TUI tests: folders of runs, problem files and a big scan, made once per session.

The builders are in tests/helpers.py (shared with the tests that make files of their own).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_big_scan, make_broken, make_runs


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    # a fixed folder name: the app shows it in its title, and snapshots must not vary
    return make_runs(tmp_path_factory.mktemp("fixtures") / "runs")


@pytest.fixture(scope="session")
def broken_dir(tmp_path_factory) -> Path:
    return make_broken(tmp_path_factory.mktemp("fixtures-broken") / "broken")


@pytest.fixture(scope="session")
def big_scan(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fixtures-big") / "big"
    root.mkdir()
    make_big_scan(root / "scan120")
    return root


@pytest.fixture(autouse=True)
def _fresh_cache():
    from mfphys.cli.tui.models.cache import CACHE

    CACHE.clear()
    yield
    CACHE.clear()


@pytest.fixture(scope="session")
def rnn_dir(tmp_path_factory, mnist_dir) -> Path:
    """Tiny recurrent runs (MNIST and multisensory), a trajectory-carrying copy, a perturbation
    of the recurrent matrix, and one feed-forward run: tests/tui/rnn_files.py."""
    from tests.tui.rnn_files import make_rnn_runs

    return make_rnn_runs(tmp_path_factory.mktemp("fixtures-rnn") / "rnn", mnist_dir)
