"""The feed-forward family on CuPy (marker ``gpu``): on a GPU, or on the CuPy emulation of
tests/fake_cupy (``MFPHYS_FAKE_CUPY=1 python -m pytest -m gpu``, tests/README.md).

Oracles: CuPy's own sync detection (``cupyx.allow_synchronize(False)``) around the training
steps, the emulation's count of host syncs per epoch (which must not grow with the number of
steps), the NumPy backend for the perturbation experiment and the memory refusal's wording.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import pytest

from mfphys import budget, store
from mfphys.backend import get_backend
from mfphys.data import TeacherConfig, load_dataset
from mfphys.errors import MfphysError
from mfphys.models.ffn import model, optim, perturb
from mfphys.train import TrainConfig, train
from mfphys.train import train as _train
from tests.helpers import counted_syncs, no_syncs, on_emulation

pytestmark = pytest.mark.gpu

TEACHER = dict(dataset="teacher", layers=(20, 16, 12, 10), n_train=256, n_test=200, epochs=2, batch_size=64,
               backend="cupy", replicas=2, eval_samples=2)


@pytest.fixture(scope="module")
def teacher_data():
    return load_dataset("teacher", n_train=256, n_test=200, teacher=TeacherConfig(n_in=20))


@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_a_training_step_never_waits_for_the_device(mode, teacher_data):
    from mfphys.models.ffn import train as ft

    cfg = TrainConfig(**{**TEACHER, "mode": mode})
    with ft.quiet_fp():
        setup = ft.prepare(cfg, dataset=teacher_data)
        state = ft.init_state(setup)
    be, xp, dt = setup.be, setup.be.xp, setup.be.dtype
    widths = cfg.layers[1:]
    splits = np.cumsum(widths)[:-1].tolist()
    params, adam = state.params, state.adam
    perm = xp.asarray(np.stack([np.random.default_rng(r).permutation(cfg.n_train) for r in range(cfg.replicas)]))
    bp = mode == "bp"
    with no_syncs():
        for i in range(math.ceil(cfg.n_train / cfg.batch_size)):
            idx = perm[:, i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb, yb = setup.x_train[idx], setup.y_train[idx]
            noise = None
            if not bp:
                e = xp.stack([g.standard_normal((idx.shape[1], sum(widths)), dtype=dt) for g in setup.device_noise])
                noise = xp.split(e, splits, axis=-1)
            loss, grads, _ = model.loss_and_grad(params, xb, yb, noise, activation=cfg.activation, bp=bp,
                                                 x2=None if bp else xb * xb)
            params, adam = optim.adam_update(grads, adam, params, lr=cfg.lr, cfg=setup.adam_cfg)
    assert np.all(np.isfinite(be.to_numpy(loss)))


def test_the_syncs_of_an_epoch_are_few_and_do_not_grow_with_its_steps(teacher_data):
    from mfphys.models.ffn import train as ft

    places = []
    for batch in (128, 32):  # 2 and 8 steps
        cfg = TrainConfig(**{**TEACHER, "batch_size": batch, "epochs": 1})
        with ft.quiet_fp():
            setup = ft.prepare(cfg, dataset=teacher_data)
            state = ft.init_state(setup)
            with counted_syncs() as c:
                ft.train_epoch(setup, state)
        places.append(sorted(where for _, where in c.syncs))
    assert places[0] == places[1], places
    assert 0 < len(places[0]) <= 16 and all(p.startswith("mfphys/") for p in places[0]), places[0]


def test_perturbation_on_cupy_is_the_numpy_perturbation(tmp_path):
    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=300, n_test=200, epochs=2, batch_size=100,
                      replicas=2, backend="numpy", dtype="float64", seed=2, eval_samples=2)
    path = store.save_run(_train(cfg), tmp_path / "run.nc")
    a = perturb.perturb_run(path, fractions=[0, 0.5, 1], samples=2, backend="numpy")
    b = perturb.perturb_run(path, fractions=[0, 0.5, 1], samples=2, backend="cupy")
    for k in ("error_vip", "error_variable"):
        np.testing.assert_allclose(b[k].values, a[k].values, rtol=1e-9, err_msg=k)


def test_device_memory_is_read_from_the_gpu():
    be = get_backend("cupy", "float32")
    free = budget.device_memory(be)
    assert isinstance(free, int) and free > 0
    assert budget.device_memory(get_backend("numpy", "float32")) is None


def test_a_run_too_big_for_the_gpu_is_refused_in_one_line(teacher_data, monkeypatch):
    monkeypatch.setattr(budget, "device_memory", lambda be: None if be.name == "numpy" else 1 << 20)  # a 1 MiB GPU
    cfg = TrainConfig(**{**TEACHER, "replicas": 64})
    with pytest.raises(MfphysError, match="not enough GPU memory") as err:
        train(cfg, dataset=teacher_data)
    assert "\n" not in str(err.value)
    train(dataclasses.replace(cfg, backend="numpy", replicas=2), dataset=teacher_data)  # the host path: not asked


def test_order_histograms_take_device_arrays(rng):
    """order.histogram and histogram_snapshot on device arrays (edges on the host): the host's counts,
    as host arrays (what a run file stores)."""
    from mfphys import order
    from mfphys.model import Layer

    be = get_backend("cupy", "float64")
    layers = [Layer(rng.uniform(0, 1, (2, 5, 7)), rng.normal(size=(2, 5, 7)), rng.uniform(0, 0.2, (2, 5, 7)))
              for _ in range(2)]
    dev = [Layer(*(be.asarray(v) for v in l)) for l in layers]
    edges = np.linspace(0, 1, 9)
    np.testing.assert_array_equal(be.to_numpy(order.histogram(dev[0].pi, edges)), order.histogram(layers[0].pi, edges))
    got, want = order.histogram_snapshot(dev), order.histogram_snapshot(layers)
    assert got.keys() == want.keys()
    for k in want:
        assert isinstance(got[k], np.ndarray), k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_the_time_calibration_times_the_noise_path_that_runs():
    """budget's step calibration draws the noise where the run will: on the device unless
    host_noise (then 3 layers' noise is copied at each of its 3 steps)."""
    from mfphys.models.ffn.budget import step_seconds

    copies = {}
    for host_noise in (False, True):
        with counted_syncs() as c:
            step_seconds(TrainConfig(**{**TEACHER, "host_noise": host_noise}), steps=2)
        copies[host_noise] = len(c.copies)
    assert copies[True] - copies[False] == 3 * 3, copies


def test_sampled_evaluation_draws_on_the_device(teacher_data):
    """device_draws: no host draw copied per block of draws, and a BP network (pi = Xi = 0)
    gives its one deterministic accuracy for every draw."""
    from mfphys.backend import EVAL, replica_rngs
    from mfphys.train import DRAW_BLOCK, evaluate_sampled

    res = train(TrainConfig(**{**TEACHER, "backend": "numpy", "dtype": "float64", "mode": "bp"}), dataset=teacher_data)
    be = get_backend("cupy", "float64")
    kw = dict(activation="relu", be=be, device_draws=True)
    copies = []
    for n in (DRAW_BLOCK, 3 * DRAW_BLOCK):
        with counted_syncs() if on_emulation() else contextlib.nullcontext() as c:
            acc, vote = evaluate_sampled(res.params, teacher_data.x_test, teacher_data.y_test, n_draws=n,
                                         rngs=replica_rngs(0, 2, EVAL), **kw)
        copies.append(len(c.copies) if c is not None else 0)
    assert copies[0] == copies[1], copies
    np.testing.assert_allclose(acc, np.broadcast_to(res.history["test_acc"][:, -1:], acc.shape), rtol=1e-12)


def test_cells_packed_across_n_train_on_the_gpu_path_train_as_alone(teacher_data):
    """Packed cells of several training-set sizes (mfphys.models.ffn.train.train_packed) on CuPy
    give each cell what it gives trained alone on CuPy (same host noise streams): the views,
    gathers and per-cell Adam counters of the packed steps work on device arrays too."""
    from mfphys.models.ffn.train import train_packed

    base = TrainConfig(dataset="teacher", layers=(20, 16, 10), epochs=2, batch_size=50, n_test=200, eval_samples=0,
                       backend="cupy", host_noise=True)
    configs = [dataclasses.replace(base, n_train=n, seed=s) for n, s in ((230, 0), (100, 1), (200, 2))]
    full = teacher_data
    packed = train_packed(configs, dataset=full)
    for c, res in zip(configs, packed):
        cut = dataclasses.replace(full, x_train=full.x_train[: c.n_train], y_train=full.y_train[: c.n_train])
        alone = _train(c, dataset=cut)
        for la, lb in zip(res.params, alone.params):
            for u, v in zip(la, lb):
                # the emulation gives the same bits; a GPU's batched products may round differently
                np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(res.history["train_loss"], alone.history["train_loss"], rtol=1e-4)
