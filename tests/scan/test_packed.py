"""Packed cells (mfphys.scan.runner ``pack``, docs/scans.md "Packed cells").

Oracles: the same scan trained cell by cell (``pack=False``): every cell file holds the same
numbers bit for bit (``assert_same_run``), ``open_scan`` the same values; the family's own
``train`` of each configuration alone; a diverging pack against the failure records of the
unpacked scan; a scan stopped in the middle of a pack against an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import signal

import numpy as np
import pytest

from mfphys import registry, runfile, runlog, scan, store
from mfphys.errors import MfphysError
from mfphys.runfile import CheckpointPolicy, Interrupted, StopAfterEpoch
from mfphys.scan import runner
from tests.helpers import (
    assert_same_run,
    assert_same_scan_views,
    start_python,
    tiny_spec,
    wait_for_checkpoint,
)

SEEDS = dict(depth="1", n_train="200,400", seed="0,2,5")


def packs_seen(monkeypatch):
    """Record the sizes of the packed groups the runner trains."""
    seen = []
    real = runner._train_pack

    def spy(cells, *a, **k):
        if len(cells) > 1:  # a cell alone is a group of one
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


#: every scannable packable axis of the feed-forward family (mfphys.train.PACKABLE; replicas is a
#: fixed option, decay_on cannot be scanned)
AXES = {"seed": "0,2,5", "lr": "0.05,0.1,0.3", "weight_decay": "0,1e-4,1e-2", "init_m_std": "0.02,0.05,0.2",
        "init_xi": "0,0.01,0.05", "lr_halve_every": "0,1,2", "adam_b1": "0.5,0.9,0.95",
        "adam_b2": "0.9,0.99,0.999", "adam_eps": "1e-8,1e-4,1e-2"}


@pytest.mark.parametrize(("axis", "dtype"), [("seed", "float32"), ("seed", "float64"), ("lr", "float32"),
                                             ("weight_decay", "float32"), ("init_m_std", "float64"),
                                             ("init_xi", "float32"), ("lr_halve_every", "float32"),
                                             ("adam_b1", "float64"), ("adam_b2", "float32"),
                                             ("adam_eps", "float32")])
def test_packed_cells_are_bit_identical_to_cells_trained_alone(tmp_path, monkeypatch, axis, dtype):
    spec = tiny_spec(**{"depth": "1", "n_train": "200,400", "lr_halve_every": "2", axis: AXES[axis], "dtype": dtype})
    seen = packs_seen(monkeypatch)
    packed = scan.run_scan(spec, tmp_path / "packed", pack=True)
    assert seen == [6] and packed.done == 6  # the values of the axis and both n_train of the depth in one run
    alone = scan.run_scan(spec, tmp_path / "alone", pack=False)
    assert seen == [6] and alone.done == 6
    same_cells(tmp_path / "packed", tmp_path / "alone", spec)
    assert_same_scan_views(tmp_path / "packed", tmp_path / "alone")
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


def test_groups_respect_the_replica_limit_memory_and_checkpoint_epochs(tmp_path, monkeypatch):
    spec = tiny_spec(depth="1", n_train="200", seed="0,2,5,7,9")  # 5 cells of 2 replicas
    cells = spec.cells()
    p = runner._Paths(tmp_path)
    (tmp_path / "cells").mkdir()
    assert [len(g) for g in runner._packed_groups(cells, p, 64)] == [5]
    assert [len(g) for g in runner._packed_groups(cells, p, 4)] == [2, 2]  # the fifth alone
    assert runner._packed_groups(cells, p, 2) == []
    assert runner._packed_groups(cells, p, 64, device_free=1) == []  # nothing fits on a full GPU
    # memory for one run of the 5 cells: two runs at once (--workers 2) share it, so each gets half
    # (a process's own memory is most of these tiny runs' estimate: half fits no group at all)
    from mfphys import budget

    five = registry.get("ffn").packed_estimate([c.config for c in cells]).peak
    with monkeypatch.context() as m:
        m.setattr(budget, "available_memory", lambda: int(five / budget.MARGIN) + 1)
        assert [len(g) for g in runner._packed_groups(cells, p, 64)] == [5]
        assert runner._packed_groups(cells, p, 64, parallel=2) == []
        m.setattr(budget, "available_memory", lambda: 2 * (int(five / budget.MARGIN) + 1))
        assert [len(g) for g in runner._packed_groups(cells, p, 64, parallel=2)] == [5]
    # checkpoints after different epochs (a scan stopped mid-group, one cell trained alone since):
    # cells go together only with cells after the same epoch
    epochs = {cells[0].key: 3, cells[1].key: 2, cells[2].key: 2}
    monkeypatch.setattr(runner, "_checkpoint_epoch", lambda p, cell: epochs.get(cell.key, 0))
    assert [[c.key for c in g] for g in runner._packed_groups(cells, p, 64)] == \
        [[cells[1].key, cells[2].key], [cells[3].key, cells[4].key]]


def test_a_damaged_or_foreign_checkpoint_counts_as_none(tmp_path):
    (cell,) = tiny_spec(depth="1", n_train="200").cells()
    p = runner._Paths(tmp_path)
    (tmp_path / "cells").mkdir()
    assert runner._checkpoint_epoch(p, cell) == 0
    p.partial(cell.key).write_bytes(b"")
    assert runner._checkpoint_epoch(p, cell) == 0


def test_cells_of_different_shapes_or_data_are_not_packed(tmp_path, monkeypatch):
    seen = packs_seen(monkeypatch)
    report = scan.run_scan(tiny_spec(depth="1,2", n_train="200"), tmp_path / "s", pack=True)
    assert report.done == 2 and seen == []
    report = scan.run_scan(tiny_spec(depth="1", n_train="200", teacher_seed="0,1"), tmp_path / "t", pack=True)
    assert report.done == 2 and seen == []  # another teacher: other data


# --- packed across n_train: each cell its own first n_train patterns and steps per epoch ---------


def test_cells_of_one_depth_pack_across_n_train(tmp_path):
    cells = tiny_spec(depth="1,2", n_train="200,400,600", seed="0,2").cells()
    p = runner._Paths(tmp_path)
    (tmp_path / "cells").mkdir()
    groups = runner._packed_groups(cells, p, 64)
    assert sorted(len(g) for g in groups) == [6, 6]
    for g in groups:
        assert len({c.config.layers for c in g}) == 1 and {c.config.n_train for c in g} == {200, 400, 600}
    # the estimate of a group counts its largest training set
    family = registry.get("ffn")
    small = [c.config for c in cells if c.config.layers == groups[0][0].config.layers and c.config.n_train == 200]
    assert family.packed_estimate(small).peak < family.packed_estimate([c.config for c in groups[0]]).peak


def test_every_group_of_several_sizes_fits_in_the_memory(tmp_path, monkeypatch):
    from mfphys import budget

    cells = tiny_spec(depth="1", n_train="200,20000", seed="0,2,5").cells()  # the small ones first
    p = runner._Paths(tmp_path)
    (tmp_path / "cells").mkdir()
    family = registry.get("ffn")
    small = [c for c in cells if c.config.n_train == 200]
    room = family.packed_estimate([c.config for c in small]).peak
    assert family.packed_estimate([c.config for c in cells[2:4]]).peak > room  # a large one with a small one
    monkeypatch.setattr(budget, "available_memory", lambda: int(room / budget.MARGIN) + 1)
    groups = runner._packed_groups(cells, p, 64)
    assert [c.key for c in groups[0]] == [c.key for c in small]
    for g in groups:
        assert family.packed_estimate([c.config for c in g]).peak <= budget.MARGIN * (int(room / budget.MARGIN) + 1)


#: sizes that are not multiples of the batch (a last, partial batch), in no particular order
SIZES = dict(depth="1", n_train="150,400,230,100", seed="0,2", batch_size="100", lr_halve_every="2")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cells_packed_across_n_train_are_bit_identical_to_cells_trained_alone(tmp_path, monkeypatch, dtype):
    spec = tiny_spec(**SIZES, dtype=dtype)
    seen = packs_seen(monkeypatch)
    packed = scan.run_scan(spec, tmp_path / "packed", pack=True)
    assert seen == [8] and packed.done == 8
    alone = scan.run_scan(spec, tmp_path / "alone", pack=False)
    assert seen == [8] and alone.done == 8
    same_cells(tmp_path / "packed", tmp_path / "alone", spec)
    assert_same_scan_views(tmp_path / "packed", tmp_path / "alone")


def test_a_pack_across_n_train_keeps_each_cells_data_steps_and_adam_state():
    from mfphys.data import Dataset, TeacherConfig, load_dataset
    from mfphys.models.ffn import train as ffn_train

    family = registry.get("ffn")
    base = dataclasses.replace(tiny_spec(depth="1", n_train="200").cells()[0].config, batch_size=50, epochs=2)
    full = load_dataset("teacher", n_train=230, n_test=200, teacher=TeacherConfig(n_in=20))
    x = np.array(full.x_train)
    x[:100, 3] = 0.5  # an input constant over the first 100 patterns only: dead in the small cells
    data = Dataset(full.name, x, full.y_train, full.x_test, full.y_test, full.n_classes, full.checksum, full.source)

    def cut(n):
        return Dataset(data.name, x[:n], data.y_train[:n], data.x_test, data.y_test, data.n_classes, data.checksum,
                       data.source)

    configs = [dataclasses.replace(base, seed=s, n_train=n, replicas=r)
               for s, n, r in ((3, 100, 2), (0, 230, 1), (9, 200, 2), (1, 100, 1))]
    setup = ffn_train.prepare_packed(configs, dataset=data)
    assert [c.n_train for c in setup.packed] == [230, 200, 100, 100]  # largest first
    state = ffn_train.init_state(setup)
    while state.epoch < 2:
        state, _ = ffn_train.train_epoch(setup, state)
    assert state.adam.count == (2 * 5, 2 * 4, 2 * 2, 2 * 2)  # ceil(n / 50) steps an epoch each
    results = ffn_train.unpack(setup, ffn_train.finish(setup, state, keep_state=True))
    for c, res in zip(configs, results):  # in the given order
        alone = family.train(c, dataset=cut(c.n_train))
        assert res.config == c and res.data == alone.data and res.data["P"] == c.n_train
        np.testing.assert_array_equal(res.dead_inputs, alone.dead_inputs)
        assert bool(res.dead_inputs[3]) == (c.n_train == 100)
        for la, lb in zip(res.params, alone.params):
            for u, v in zip(la, lb):
                np.testing.assert_array_equal(u, v)
        for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            np.testing.assert_array_equal(res.history[k], alone.history[k], err_msg=k)
        np.testing.assert_array_equal(res.sampled_acc, alone.sampled_acc)
        for s1, s2 in zip(res.dynamics.samples, alone.dynamics.samples):
            for k in s1:
                np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)
        assert res.state.adam.count == 2 * -(-c.n_train // 50)
    # a cell whose batch is larger than its training set (refused when it starts) packs with no other size
    small = dataclasses.replace(base, n_train=40)
    assert len({ffn_train.pack_key(c) for c in configs}) == 1 and ffn_train.pack_key(small) != ffn_train.pack_key(base)
    with pytest.raises(MfphysError, match="packed configurations must differ only in"):
        ffn_train.prepare_packed([configs[0], small], dataset=data)


def test_a_diverging_pack_ends_like_the_cells_trained_alone(tmp_path, monkeypatch):
    spec = tiny_spec(depth="1", n_train="200", lr="0.1,1e9", seed="0,2")
    seen = packs_seen(monkeypatch)
    packed = scan.run_scan(spec, tmp_path / "packed", pack=True)
    alone = scan.run_scan(spec, tmp_path / "alone", pack=False)
    assert seen == [4] and (packed.done, packed.failed) == (alone.done, alone.failed) == (2, 2)
    for cell in spec.cells():
        if cell.config.lr > 1:
            rec = [json.loads((f / "cells" / f"{cell.key}.failed.json").read_text())
                   for f in (tmp_path / "packed", tmp_path / "alone")]
            assert rec[0]["error"] == rec[1]["error"] and rec[0]["error_type"] == "DivergenceError"
        else:
            assert_same_run(store.open_run(tmp_path / "packed" / "cells" / f"{cell.key}.nc"),
                            store.open_run(tmp_path / "alone" / "cells" / f"{cell.key}.nc"))


def test_a_scan_interrupted_before_a_pack_trains_it_again(tmp_path, monkeypatch):
    spec = tiny_spec(**SEEDS)

    def stopped(plans, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(runner, "train_runs", stopped)
        with pytest.raises(KeyboardInterrupt):
            scan.run_scan(spec, tmp_path / "s", pack=True)
    status = scan.scan_status(tmp_path / "s")
    assert status["done"] == 0 and status["pending"] == 6  # no claim, no file left behind
    assert not list((tmp_path / "s" / "cells").glob("*.running*"))
    report = scan.run_scan(spec, tmp_path / "s", pack=True)
    assert report.done == 6
    scan.run_scan(spec, tmp_path / "ref")
    same_cells(tmp_path / "s", tmp_path / "ref", spec)


#: three cells of one pack, long enough to be stopped or killed in the middle
LONG_PACK = dict(depth="1", n_train="200", seed="0,2,5", epochs="30", batch_size="50")
EVERY_EPOCH = CheckpointPolicy(every=1, seconds=0)


def stop_after(epoch: int):
    """A scan callback that stops the cells in progress after ``epoch``, as the first Ctrl-C does."""

    def callback(ev):
        if ev.kind == "epoch" and ev.record.epoch == epoch:
            raise StopAfterEpoch

    return callback


def first_epochs(monkeypatch):
    """The first epoch each packed run (or cell trained alone) starts from, with its size."""
    seen = []
    real = runner.train_runs

    def spy(plans, **kw):
        plans = list(plans)
        seen.append((len(plans), plans[0].state.epoch if plans[0].state is not None else 0))
        return real(plans, **kw)

    monkeypatch.setattr(runner, "train_runs", spy)
    monkeypatch.setattr(runfile, "train_runs", spy)  # a cell alone (runfile.train_run)
    return seen


def test_a_pack_checkpoints_every_cell_as_it_would_alone(tmp_path):
    spec = tiny_spec(**LONG_PACK)
    cells = spec.cells()
    with pytest.raises(Interrupted) as stopped:
        scan.run_scan(spec, tmp_path / "packed", checkpoint=EVERY_EPOCH, callback=stop_after(4))
    assert stopped.value.epoch == 4
    for cell in cells:  # every cell of the group keeps its own checkpoint after the same epoch
        attrs = store.read_attrs(tmp_path / "packed" / "cells" / f"{cell.key}.partial.nc")
        assert (int(attrs["epochs_done"]), attrs["status"], attrs["config_hash"]) == (4, "interrupted",
                                                                                      cell.config_hash)
    with pytest.raises(Interrupted):  # the first cell alone, stopped after the same epoch
        scan.run_scan(spec, tmp_path / "alone", checkpoint=EVERY_EPOCH, callback=stop_after(4), pack=False)
    key = cells[0].key
    assert_same_run(store.open_run(tmp_path / "packed" / "cells" / f"{key}.partial.nc"),
                    store.open_run(tmp_path / "alone" / "cells" / f"{key}.partial.nc"))
    # and its epoch log (what a watcher reads between checkpoints) holds the same lines, times aside
    logs = [runlog.read_records(runlog.log_path(tmp_path / f / "cells" / f"{key}.partial.nc"))
            for f in ("packed", "alone")]
    assert [r["epoch"] for r in logs[0]] == [1, 2, 3, 4]

    def untimed(records):
        return [{**r, "at": None, "values": {k: v for k, v in r["values"].items() if not k.endswith("seconds")}}
                for r in records]

    assert untimed(logs[0]) == untimed(logs[1])


def test_a_stopped_pack_resumes_together_and_ends_as_if_never_stopped(tmp_path, monkeypatch):
    spec = tiny_spec(**LONG_PACK)
    cells = spec.cells()
    with pytest.raises(Interrupted):
        scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH, callback=stop_after(5))
    # one cell loses its checkpoint: it starts again alone, the two others go on together
    (tmp_path / "s" / "cells" / f"{cells[1].key}.partial.nc").unlink()
    seen = first_epochs(monkeypatch)
    report = scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH)
    assert report.done == 3 and sorted(seen) == [(1, 0), (2, 5)]
    assert sorted(q.name for q in (tmp_path / "s" / "cells").iterdir()) == sorted(f"{c.key}.nc" for c in cells)
    scan.run_scan(spec, tmp_path / "ref", checkpoint=None, pack=False)
    same_cells(tmp_path / "s", tmp_path / "ref", spec)


def test_a_scan_killed_in_the_middle_of_a_pack_resumes_every_cell(tmp_path, monkeypatch):
    spec = tiny_spec(**LONG_PACK)
    cells = spec.cells()
    code = (f"from mfphys import scan\nfrom mfphys.runfile import CheckpointPolicy\n"
            f"from tests.helpers import tiny_spec\n"
            f"scan.run_scan(tiny_spec(**{LONG_PACK!r}), {str(tmp_path / 's')!r},\n"
            f"              checkpoint=CheckpointPolicy(every=1, seconds=0))\n")
    target = int(np.random.default_rng().integers(2, 20))
    proc = start_python(code)
    wait_for_checkpoint(tmp_path / "s" / "cells" / f"{cells[-1].key}.partial.nc", target, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # every cell has its checkpoint; a kill between two of a round's writes leaves some a round behind
    done = [int(store.read_attrs(tmp_path / "s" / "cells" / f"{c.key}.partial.nc")["epochs_done"]) for c in cells]
    assert target <= done[-1] < 30 and max(done) - min(done) <= 1
    seen = first_epochs(monkeypatch)
    report = scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH)
    # resumed, not restarted: the cells after the same epoch together
    assert report.done == 3 and sorted(seen) == sorted((done.count(e), e) for e in set(done))
    scan.run_scan(spec, tmp_path / "ref", checkpoint=None, pack=False)
    same_cells(tmp_path / "s", tmp_path / "ref", spec)


#: a pack across n_train (steps of 2, 4 and a partial 3 per epoch), long enough to be stopped
SIZED_PACK = dict(depth="1", n_train="100,200,130", seed="0,2", epochs="8", batch_size="50")


def test_a_pack_across_n_train_stopped_and_resumed_ends_as_if_never_stopped(tmp_path):
    spec = tiny_spec(**SIZED_PACK)
    cells = spec.cells()
    with pytest.raises(Interrupted):
        scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH, callback=stop_after(3))
    compared = set()
    for _ in cells:  # each cell alone stopped after epoch 3 in turn (the earlier ones finish first)
        with pytest.raises(Interrupted):
            scan.run_scan(spec, tmp_path / "alone", checkpoint=EVERY_EPOCH, callback=stop_after(3), pack=False)
        (path,) = (tmp_path / "alone" / "cells").glob("*.partial.nc")
        # the cell's checkpoint (its own Adam step count) is the one it writes alone
        a, b = store.open_run(tmp_path / "s" / "cells" / path.name), store.open_run(path)
        assert int(a.attrs["epochs_done"]) == 3 and a.attrs["adam_count"] == b.attrs["adam_count"]
        assert_same_run(a, b)
        compared.add(path.name)
    assert compared == {f"{c.key}.partial.nc" for c in cells}
    report = scan.run_scan(spec, tmp_path / "s", checkpoint=EVERY_EPOCH)
    assert report.done == 6
    scan.run_scan(spec, tmp_path / "ref", checkpoint=None, pack=False)
    same_cells(tmp_path / "s", tmp_path / "ref", spec)


def test_packed_groups_on_a_dask_cluster_write_the_same_cells(tmp_path):
    pytest.importorskip("dask.distributed")
    spec = tiny_spec(depth="1", n_train="200", seed="0,2,5", lr="0.1,0.2")
    report = scan.run_scan(spec, tmp_path / "dask", pack=True, workers=1)
    assert (report.done, report.trained) == (6, 6)
    scan.run_scan(spec, tmp_path / "alone")
    same_cells(tmp_path / "dask", tmp_path / "alone", spec)
    assert not list((tmp_path / "dask" / "cells").glob("*.running*"))
