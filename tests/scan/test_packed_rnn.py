"""Packed cells of the recurrent family (mfphys.scan.runner ``pack``, docs/scans.md "Packed cells").

Oracles as in test_packed.py: the same recurrent scan trained cell by cell (``pack=False``),
bit for bit; the family's ``train`` of each configuration alone; a pack stopped mid-way against
an uninterrupted scan; with the stop rule (docs/model-rnn.md section 7), every configuration's
run file against the configuration trained alone into its own file.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mfphys import registry, runfile, scan, store
from mfphys.rnn.model import MatrixInit
from mfphys.runfile import CheckpointPolicy, Interrupted, Plan, StopAfterEpoch
from tests.helpers import assert_same_run, assert_same_scan_views
from tests.scan.test_packed import first_epochs, packs_seen, same_cells, stop_after

#: the tiniest recurrent cells of test_rnn.py: 20 units, 14 steps, 2 mini-batches of 128 images
FIXED = {"n": 20, "epochs": 1, "replicas": 2, "n_test": 200, "eval_samples": 2, "backend": "numpy"}
EVERY_EPOCH = CheckpointPolicy(every=1, seconds=0)


def rnn_spec(grid, **fixed):
    return scan.ScanSpec.build({"steps": [14], "n_train": [256], **grid}, {**FIXED, **fixed}, model="rnn")


def with_lr(config, lr):
    return dataclasses.replace(config, optimizer=dataclasses.replace(config.optimizer, lr_m=(lr,) * 3,
                                                                     lr_xi=(lr,) * 3, lr_pi=(lr,) * 3))


def assert_same_result(res, alone):
    assert res.config == alone.config and res.params.input.m.shape[0] == alone.config.replicas
    for la, lb in zip(res.params, alone.params):
        for u, v in zip(la, lb):
            np.testing.assert_array_equal(u, v)
    assert res.evaluation.keys() == alone.evaluation.keys()
    for k in alone.evaluation:
        np.testing.assert_array_equal(res.evaluation[k], alone.evaluation[k], err_msg=k)
    for k in ("train_loss", "test_acc"):
        np.testing.assert_array_equal(res.history[k], alone.history[k], err_msg=k)
    np.testing.assert_array_equal(res.stop_epoch, alone.stop_epoch)
    assert (res.dynamics.epochs, res.dynamics.snap_epochs) == (alone.dynamics.epochs, alone.dynamics.snap_epochs)
    for s1, s2 in [*zip(res.dynamics.samples, alone.dynamics.samples), *zip(res.dynamics.snaps, alone.dynamics.snaps)]:
        for k in s2:  # each configuration's own order parameters and histogram edges
            np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)


@pytest.mark.parametrize("grid", [{"seed": [0, 2, 5]}, {"lr": [0.001, 0.003, 0.01]}])
def test_packed_recurrent_cells_are_bit_identical_to_cells_trained_alone(tmp_path, monkeypatch, mnist_dir, grid):
    spec = rnn_spec({"n_train": [256, 512], **grid}, epochs=2)
    seen = packs_seen(monkeypatch)
    packed = scan.run_scan(spec, tmp_path / "packed", pack=True, data_dir=mnist_dir)
    assert seen == [3, 3] and packed.done == 6  # the three values of each n_train in one run
    alone = scan.run_scan(spec, tmp_path / "alone", pack=False, data_dir=mnist_dir)
    assert seen == [3, 3] and alone.done == 6
    same_cells(tmp_path / "packed", tmp_path / "alone", spec)
    assert_same_scan_views(tmp_path / "packed", tmp_path / "alone")


def test_cells_of_different_steps_or_presets_are_not_packed():
    family = registry.get("rnn")
    cells = rnn_spec({"steps": [7, 14], "seed": [0, 1]}).cells()
    keys = {(c.config.steps, c.config.seed): family.pack_key(c.config) for c in cells}
    assert keys[7, 0] == keys[7, 1] != keys[14, 0] == keys[14, 1]
    base = cells[0].config
    assert family.pack_key(with_lr(base, 0.5)) == family.pack_key(dataclasses.replace(base, replicas=5))
    assert family.pack_key(dataclasses.replace(base, mode="bp")) != family.pack_key(base)
    assert family.pack_key(dataclasses.replace(base, optimizer=dataclasses.replace(base.optimizer, b1=0.5))) != \
        family.pack_key(base)
    # the batched run's memory: its replicas side by side, and the states kept of configurations that stop
    one, three = family.packed_estimate([base]), family.packed_estimate([base] * 3)
    assert three.memory["weights and optimizer state"] == 3 * one.memory["weights and optimizer state"]
    stopping = family.packed_estimate([dataclasses.replace(base, stop_loss=0.1)] * 3)
    assert stopping.peak > three.peak and "states of stopped configurations" in stopping.memory


def test_a_recurrent_pack_gives_each_configuration_its_own_run(mnist_dir):
    family = registry.get("rnn")
    base = rnn_spec({}, epochs=2).cells()[0].config
    decay = dataclasses.replace(base.optimizer, weight_decay=1e-2)
    i, r, o = base.init
    init = (dataclasses.replace(i, m_std=2 * i.m_std), MatrixInit("normal", 0.3, 0.05), dataclasses.replace(o, xi=0.0))
    configs = [dataclasses.replace(base, seed=3, replicas=2), with_lr(dataclasses.replace(base, replicas=1), 0.01),
               dataclasses.replace(base, seed=9, replicas=3, optimizer=decay),
               dataclasses.replace(base, seed=4, init=init)]
    assert len({family.pack_key(c) for c in configs}) == 1
    results = family.train_packed(configs, data_dir=mnist_dir)
    for c, res in zip(configs, results):
        assert_same_result(res, family.train(c, data_dir=mnist_dir))


#: three seeds whose replicas all stop (loss <= 8) after epochs 5, 7 and 7 of 8
STOPPING = dict(epochs=8, lr=0.01)
STOP_SEEDS = (6, 0, 2)


def stopping_configs():
    base = dataclasses.replace(rnn_spec({}, **STOPPING).cells()[0].config, stop_loss=8.0)
    return [dataclasses.replace(base, seed=s) for s in STOP_SEEDS]


def test_a_configuration_that_stops_early_in_a_pack_ends_as_alone(mnist_dir):
    family = registry.get("rnn")
    configs = stopping_configs()
    results = family.train_packed(configs, data_dir=mnist_dir)
    assert [int(r.stop_epoch.max()) for r in results] == [5, 7, 7]  # the first one ends before the others
    for c, res in zip(configs, results):
        assert_same_result(res, family.train(c, data_dir=mnist_dir))


@pytest.fixture(scope="module")
def stopping_alone(tmp_path_factory, mnist_dir):
    """Each configuration of :func:`stopping_configs` trained alone into its own run file."""
    folder = tmp_path_factory.mktemp("alone")
    paths = []
    for c in stopping_configs():
        paths.append(folder / f"seed{c.seed}.nc")
        runfile.train_run(Plan("new", paths[-1], c), policy=CheckpointPolicy(every=0, seconds=0), data_dir=mnist_dir)
    return paths


@pytest.mark.parametrize(("stop_at", "done"), [(5, [5, 5, 5]), (6, [5, 6, 6])])
def test_a_stopped_pack_with_the_stop_rule_resumes_each_run_as_alone(tmp_path, mnist_dir, stopping_alone, stop_at,
                                                                     done):
    from mfphys import runlog

    configs = stopping_configs()
    paths = [tmp_path / f"seed{c.seed}.nc" for c in configs]

    def stop(record):
        if record.epoch == stop_at:
            raise StopAfterEpoch

    with pytest.raises(Interrupted):
        runfile.train_runs([Plan("new", p, c) for p, c in zip(paths, configs)], policy=EVERY_EPOCH,
                           data_dir=mnist_dir, callback=stop)
    # the first configuration's run ended after epoch 5: its file and its epoch log stay there
    assert [int(store.read_attrs(p)["epochs_done"]) for p in paths] == done
    assert [r["epoch"] for r in runlog.read_records(runlog.log_path(paths[0]))][-1] == 5
    plans = [runfile.plan_run(p, c, resume=True) for p, c in zip(paths, configs)]
    assert [pl.action for pl in plans] == ["resume"] * 3
    for e in sorted(set(done)):  # the runs after the same epoch go on together (as a scan groups them)
        runfile.train_runs([pl for pl, d in zip(plans, done) if d == e], policy=EVERY_EPOCH, data_dir=mnist_dir)
    for p, ref in zip(paths, stopping_alone):
        assert_same_run(store.open_run(p), store.open_run(ref))


def test_a_stopped_recurrent_pack_resumes_together_and_ends_as_if_never_stopped(tmp_path, monkeypatch, mnist_dir):
    spec = rnn_spec({"seed": [0, 2, 5]}, epochs=4)
    cells = spec.cells()
    with pytest.raises(Interrupted) as stopped:
        scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH, callback=stop_after(2), data_dir=mnist_dir)
    assert stopped.value.epoch == 2
    for cell in cells:  # every cell of the group keeps its own checkpoint after the same epoch
        attrs = store.read_attrs(tmp_path / "s" / "cells" / f"{cell.key}.partial.nc")
        assert (int(attrs["epochs_done"]), attrs["status"], attrs["config_hash"]) == (2, "interrupted",
                                                                                      cell.config_hash)
    seen = first_epochs(monkeypatch)
    report = scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH, data_dir=mnist_dir)
    assert report.done == 3 and seen == [(3, 2)]
    assert sorted(q.name for q in (tmp_path / "s" / "cells").iterdir()) == sorted(f"{c.key}.nc" for c in cells)
    scan.run_scan(spec, tmp_path / "ref", checkpoint=None, pack=False, data_dir=mnist_dir)
    same_cells(tmp_path / "s", tmp_path / "ref", spec)
