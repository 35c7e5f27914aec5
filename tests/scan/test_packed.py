"""Packed cells (mfphys.scan.runner ``pack``, docs/scans.md "Packed cells").

Oracles: the same scan trained cell by cell (``pack=False``): every cell file holds the same
numbers bit for bit (``assert_same_run``), ``open_scan`` the same values; the family's own
``train`` of each configuration alone; a diverging pack against the failure records of the
unpacked scan; a scan stopped in the middle of a pack against an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mfphys import registry, scan, store
from mfphys.scan import runner
from tests.helpers import TIMING_VARIABLES, assert_same_run, tiny_spec

SEEDS = dict(depth="1", n_train="200,400", seed="0,2,5")


def packs_seen(monkeypatch):
    """Record the sizes of the packs the runner trains."""
    seen = []
    real = runner._train_pack

    def spy(cells, *a, **k):
        seen.append(len(cells))
        return real(cells, *a, **k)

    monkeypatch.setattr(runner, "_train_pack", spy)
    return seen


def same_cells(a, b, spec):
    for cell in spec.cells():
        ra, rb = store.open_run(a / "cells" / f"{cell.key}.nc"), store.open_run(b / "cells" / f"{cell.key}.nc")
        assert_same_run(ra, rb)
        for k in ("config_hash", "scan_cell", "scan_hash", "status", "blas_threads"):
            assert ra.attrs.get(k) == rb.attrs.get(k), k


#: every packable axis of the feed-forward family (mfphys.train.PACKABLE; replicas is a fixed option)
AXES = {"seed": "0,2,5", "lr": "0.05,0.1,0.3", "weight_decay": "0,1e-4,1e-2", "init_m_std": "0.02,0.05,0.2",
        "init_xi": "0,0.01,0.05"}


@pytest.mark.parametrize(("axis", "dtype"), [("seed", "float32"), ("seed", "float64"), ("lr", "float32"),
                                             ("weight_decay", "float32"), ("init_m_std", "float64"),
                                             ("init_xi", "float32")])
def test_packed_cells_are_bit_identical_to_cells_trained_alone(tmp_path, monkeypatch, axis, dtype):
    spec = tiny_spec(depth="1", n_train="200,400", **{axis: AXES[axis]}, dtype=dtype, lr_halve_every="2")
    seen = packs_seen(monkeypatch)
    packed = scan.run_scan(spec, tmp_path / "packed", pack=True)
    assert seen == [3, 3] and packed.done == 6  # the values of the axis of each (depth, n_train) in one run
    alone = scan.run_scan(spec, tmp_path / "alone", pack=False)
    assert seen == [3, 3] and alone.done == 6
    same_cells(tmp_path / "packed", tmp_path / "alone", spec)
    a, b = scan.open_scan(tmp_path / "packed"), scan.open_scan(tmp_path / "alone")
    for k in a.data_vars:
        if k not in TIMING_VARIABLES and not k.endswith("seconds") and a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    assert sorted(p.name for p in (tmp_path / "packed" / "cells").iterdir()) == \
        sorted(p.name for p in (tmp_path / "alone" / "cells").iterdir())


def test_a_pack_gives_each_configuration_its_own_run():
    from mfphys.data import TeacherConfig, load_dataset

    family = registry.get("ffn")
    base = tiny_spec(depth="1", n_train="200").cells()[0].config
    configs = [dataclasses.replace(base, seed=s, replicas=r) for s, r in ((3, 2), (0, 1), (9, 3))]
    results = family.train_packed(configs)
    data = load_dataset("teacher", n_train=200, n_test=200, teacher=TeacherConfig(n_in=20))
    for c, res in zip(configs, results):
        alone = family.train(c, dataset=data)
        assert res.config == c and res.params[0].m.shape[0] == c.replicas
        for la, lb in zip(res.params, alone.params):
            for u, v in zip(la, lb):
                np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(res.sampled_acc, alone.sampled_acc)
        np.testing.assert_array_equal(res.history["test_loss"], alone.history["test_loss"])
        assert res.dynamics.epochs == alone.dynamics.epochs
        for s1, s2 in zip(res.dynamics.snaps, alone.dynamics.snaps):  # each cell's own histogram edges
            for k in s1:
                np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)


def test_groups_respect_the_replica_limit_and_skip_checkpointed_cells(tmp_path):
    spec = tiny_spec(depth="1", n_train="200", seed="0,2,5,7,9")  # 5 cells of 2 replicas
    cells = spec.cells()
    p = runner._Paths(tmp_path)
    (tmp_path / "cells").mkdir()
    assert [len(g) for g in runner._packed_groups(cells, p, 64)] == [5]
    assert [len(g) for g in runner._packed_groups(cells, p, 4)] == [2, 2]  # the fifth alone
    assert runner._packed_groups(cells, p, 2) == []
    p.partial(cells[0].key).write_bytes(b"")  # a stopped scan's checkpoint: resumed alone
    assert [[c.key for c in g] for g in runner._packed_groups(cells, p, 64)] == [[c.key for c in cells[1:]]]


def test_cells_of_different_shapes_are_not_packed(tmp_path, monkeypatch):
    seen = packs_seen(monkeypatch)
    report = scan.run_scan(tiny_spec(depth="1,2", n_train="200,400"), tmp_path / "s", pack=True)
    assert report.done == 4 and seen == []


def test_a_diverging_pack_ends_like_the_cells_trained_alone(tmp_path, monkeypatch):
    spec = tiny_spec(depth="1", n_train="200", lr="0.1,1e9", seed="0,2")
    seen = packs_seen(monkeypatch)
    packed = scan.run_scan(spec, tmp_path / "packed", pack=True)
    alone = scan.run_scan(spec, tmp_path / "alone")
    assert seen == [4] and (packed.done, packed.failed) == (alone.done, alone.failed) == (2, 2)
    for cell in spec.cells():
        if cell.config.lr > 1:
            rec = [json.loads((f / "cells" / f"{cell.key}.failed.json").read_text())
                   for f in (tmp_path / "packed", tmp_path / "alone")]
            assert rec[0]["error"] == rec[1]["error"] and rec[0]["error_type"] == "DivergenceError"
        else:
            assert_same_run(store.open_run(tmp_path / "packed" / "cells" / f"{cell.key}.nc"),
                            store.open_run(tmp_path / "alone" / "cells" / f"{cell.key}.nc"))


def test_a_scan_stopped_in_the_middle_of_a_pack_trains_it_again(tmp_path, monkeypatch):
    spec = tiny_spec(**SEEDS)
    family = type(registry.get("ffn"))

    def stopped(self, configs, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(family, "train_packed", stopped)
        with pytest.raises(KeyboardInterrupt):
            scan.run_scan(spec, tmp_path / "s", pack=True)
    status = scan.scan_status(tmp_path / "s")
    assert status["done"] == 0 and status["pending"] == 6  # no claim, no file left behind
    assert not list((tmp_path / "s" / "cells").glob("*.running*"))
    report = scan.run_scan(spec, tmp_path / "s", pack=True)
    assert report.done == 6
    scan.run_scan(spec, tmp_path / "ref")
    same_cells(tmp_path / "s", tmp_path / "ref", spec)


def test_packed_groups_on_a_dask_cluster_write_the_same_cells(tmp_path):
    pytest.importorskip("dask.distributed")
    spec = tiny_spec(depth="1", n_train="200", seed="0,2,5", lr="0.1,0.2")
    report = scan.run_scan(spec, tmp_path / "dask", pack=True, workers=1)
    assert (report.done, report.trained) == (6, 6)
    scan.run_scan(spec, tmp_path / "alone")
    same_cells(tmp_path / "dask", tmp_path / "alone", spec)
    assert not list((tmp_path / "dask" / "cells").glob("*.running*"))
