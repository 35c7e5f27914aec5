"""Short descriptions of scans (mfphys.describe): the architecture label and the one-word state."""

from __future__ import annotations

import pytest

from mfphys.describe import scan_architecture, scan_state
from mfphys.model import architecture
from mfphys.scan import ScanSpec, layers_of


@pytest.mark.parametrize("grid, fixed, label", [
    ({"depth": [1, 2], "n_train": [100]}, {"input_dim": 20, "width": 16}, "20-16xd-10"),
    ({"depth": [2], "n_train": [100]}, {"input_dim": 20, "width": 16}, "20-16-16-10"),
    ({"depth": [1, 2], "width": [10, 20]}, {"input_dim": 784}, "784-Wxd-10"),
    ({"depth": [1, 2], "input_dim": [10, 20]}, {"width": 16}, "N0-16xd-10"),
    ({"depth": [2], "width": [10, 20]}, {"input_dim": 5}, "5-W-W-10"),
    ({"depth": [0]}, {"width": 16, "input_dim": 5}, "5-10"),
    ({"depth": [3]}, {}, "784-100-100-100-10"),  # mfphys.scan.ARCH_DEFAULTS
    ({}, {}, ""),  # no depth: nothing to say
])
def test_scan_architecture(grid, fixed, label):
    assert scan_architecture({"grid": grid, "fixed": fixed}) == label


def test_scan_architecture_of_a_spec_is_its_cells_layers():
    spec = ScanSpec.build({"depth": [2], "n_train": [100, 200]}, {"dataset": "teacher", "input_dim": 12, "width": 8,
                                                                     "batch_size": 50})
    meta = {"grid": spec.grid_dict, "fixed": spec.fixed_dict}
    assert scan_architecture(meta) == architecture(layers_of({**spec.fixed_dict, "depth": 2})) == "12-8-8-10"
    assert scan_architecture({"grid": "not a table"}) == "" and scan_architecture({}) == ""


@pytest.mark.parametrize("counts, state", [
    ({"done": 4, "total": 4}, "done"),
    ({"done": 1, "running": 1, "pending": 2, "total": 4}, "running"),
    ({"done": 3, "failed": 1, "total": 4}, "failed"),
    ({"done": 1, "failed": 1, "pending": 2, "total": 4}, "pending"),
    ({"total": 0}, "pending"),
])
def test_scan_state(counts, state):
    assert scan_state(counts) == state


@pytest.mark.parametrize("grid, fixed, label", [
    ({"steps": [7, 14], "n_train": [256]}, {"n": 100}, "784/T-100-10 xT"),
    ({"steps": [28], "n_train": [256]}, {"n": 20}, "28-20-10 x28"),
    ({"steps": [7], "n": [20, 50]}, {}, "112-N-10 x7"),
    ({"steps": ["x"]}, {"n": 20}, ""),
])
def test_scan_architecture_of_a_recurrent_scan(grid, fixed, label):
    assert scan_architecture({"model": "rnn", "grid": grid, "fixed": fixed}) == label
