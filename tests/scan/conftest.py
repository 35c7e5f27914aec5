"""Fixtures shared by the tests of mfphys.scan: one finished tiny 3 x 3 scan, and private copies of it."""

from __future__ import annotations

import shutil

import pytest

from mfphys import scan
from tests.helpers import tiny_spec


@pytest.fixture(scope="session")
def done_scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan") / "tiny"
    report = scan.run_scan(tiny_spec(), folder)
    return folder, report


@pytest.fixture
def fresh_scan(done_scan, tmp_path):
    """A private copy of the finished tiny scan, to damage."""
    folder = tmp_path / "tiny"
    shutil.copytree(done_scan[0], folder)
    return folder
