"""Live-input helpers (mfphys.live): the variable to read, connection counts, whole-network means."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys.live import layer_connections, live_name, network_mean


def test_live_name_prefers_the_live_variable_when_there_is_one():
    names = {"sparsity", "sparsity_live", "frac_vip_exact"}
    assert live_name("sparsity", names) == "sparsity_live"
    assert live_name("frac_vip_exact", names) == "frac_vip_exact"  # no live variant exists
    assert live_name("entropy", names) == "entropy"


def test_layer_connections_counts_live_inputs_in_layer_1_only():
    assert layer_connections((784, 100, 10)).tolist() == [78400, 1000]
    assert layer_connections((784, 100, 10), n_live_inputs=673).tolist() == [67300, 1000]
    assert layer_connections((5,)).size == 0


def test_network_mean_weights_by_connections_and_drops_missing_layers():
    values = np.array([[0.1, 0.5, np.nan], [0.3, 0.3, 0.3]])
    w = np.array([300.0, 100.0, 50.0])
    got = network_mean(values, w)
    assert got[0] == pytest.approx((0.1 * 300 + 0.5 * 100) / 400)  # layer 3 is NaN: it drops out
    assert got[1] == pytest.approx(0.3)
    assert np.isnan(network_mean(np.full((2, 3), np.nan), w)).all()
    # the layer axis need not be the last
    assert network_mean(values.T, w, axis=0) == pytest.approx(got)


def test_network_mean_is_the_scan_views(tmp_path):
    from mfphys import scan
    from tests.helpers import write_scan

    write_scan(tmp_path / "s", depth=(1, 2), n_train=(200,))
    ds = scan.open_scan(tmp_path / "s")
    want = scan.network_mean(ds, "entropy")
    for d in (1, 2):
        cell = ds.sel(depth=d, n_train=200)
        got = network_mean(cell["entropy"].transpose("replica", "layer").values, cell["n_connections"].values)
        assert got == pytest.approx(want.sel(depth=d, n_train=200).values)
