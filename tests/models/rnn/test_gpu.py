"""The recurrent family on CuPy (marker ``gpu``): on a GPU, or on the CuPy emulation of
tests/fake_cupy (``MFPHYS_FAKE_CUPY=1 python -m pytest -m gpu``, tests/README.md).

Oracles: the NumPy backend (exact clipping against the device's sync-free clipping, perturbation
errors), CuPy's own sync detection (``cupyx.allow_synchronize(False)``) around every training step
of every preset, and the emulation's count of host syncs per epoch, which must not grow with the
number of steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mfphys import open_run, runfile
from mfphys.backend import NOISE, ORDER, generator_from_state, get_backend
from mfphys.data import load_dataset
from mfphys.rnn import noise as noise_mod
from mfphys.rnn import perturb as rp
from mfphys.rnn import preset, train_rnn
from mfphys.rnn import train as rt
from mfphys.rnn.model import loss_and_grad
from mfphys.rnn.optim import clip_spectral, clip_spectral_together, opt_update, spectral_norm
from mfphys.runfile import CheckpointPolicy, plan_run, train_run
from tests.helpers import StopAt, counted_syncs, no_syncs, on_emulation

pytestmark = pytest.mark.gpu

#: each preset at a size the emulation runs in seconds (the pixel-wise one keeps T = 784)
SMALL = {"row_mnist": dict(n=16, batch_size=16, batches_per_epoch=2),
         "pixel_mnist": dict(n=8, batch_size=4, batches_per_epoch=1),
         "multisensory": dict(n=15, batches_per_epoch=2)}


@pytest.fixture(scope="module")
def mnist_small(mnist_dir):
    return load_dataset("mnist", n_train=128, n_test=64, data_dir=mnist_dir)


def small(name, **kw):
    return dataclasses.replace(preset(name), **{**SMALL[name], "epochs": 2, "replicas": 2, "eval_samples": 1,
                                                "test_repeats": 1, "backend": "cupy", **kw})


def test_clipping_on_the_device_is_the_exact_clipping():
    """Sync-free batched estimate + select (device) against SVD clipping (host), float64, at the
    presets' shapes, with the bound active for some replicas and not for others."""
    be = get_backend("cupy", "float64")
    rng = np.random.default_rng(0)
    for shape in ((6, 100, 100), (6, 100, 28), (6, 10, 100)):
        g = rng.normal(size=shape) * np.linspace(0.5, 2, shape[0])[:, None, None]
        bound = float(np.median(spectral_norm(g)))
        host = clip_spectral(g.copy(), bound)
        dev = be.asarray(g)
        with no_syncs():
            clip_spectral(dev, bound)
        np.testing.assert_allclose(be.to_numpy(dev), host, rtol=1e-10, atol=1e-14)
        assert np.all(spectral_norm(be.to_numpy(dev)) <= bound * (1 + 1e-10))
        # the three kinds of one matrix, each with its own bound, in one batched estimate
        kinds = [g, 0.5 * g[::-1].copy(), 2 * g]
        bounds = [bound, 0.3 * bound, 3 * bound]
        devs = [be.asarray(k) for k in kinds]
        with no_syncs():
            clip_spectral_together(devs, bounds)
        for k, d, b in zip(kinds, devs, bounds):
            np.testing.assert_allclose(be.to_numpy(d), clip_spectral(k.copy(), b), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("mode", ["gbp", "bp"])
@pytest.mark.parametrize("name", list(SMALL))
def test_a_training_step_never_waits_for_the_device(name, mode, mnist_small):
    """Every step of every preset (clipping included, device noise) runs with syncs forbidden."""
    cfg = small(name, mode=mode, dtype="float32")
    opt = cfg.optimizer
    with rt.running(cfg):
        setup = rt.prepare(cfg, dataset=mnist_small if cfg.task == "mnist" else None)
        state = rt.init_state(setup)
        order_rngs = [generator_from_state(s) for s in state.rng["order"]]
        params, ostate = state.params, state.opt
        lr_scale = {k: opt.lr_factor(1, k) for k in ("pi", "m", "xi")}
        steps = 0
        with no_syncs():
            for xb, target, mask in setup.batches(order_rngs):
                nz = noise_mod.draw(setup.device_noise, setup.spec, xb.shape[-2], xb.shape[-3], bp=setup.bp,
                                    xp=setup.be.xp, dtype=setup.be.dtype)
                loss, grads, _ = loss_and_grad(params, xb, target, nz, setup.spec, mask=mask, bp=setup.bp)
                params, ostate = opt_update(grads, ostate, params, cfg=opt, settings=setup.settings,
                                            lr_scale=lr_scale, input_mask=setup.mask_dev)
                steps += 1
    assert steps == cfg.batches_per_epoch
    assert np.all(np.isfinite(setup.be.to_numpy(loss)))


@pytest.mark.parametrize("name", ["row_mnist", "multisensory"])
def test_the_syncs_of_an_epoch_are_few_and_do_not_grow_with_its_steps(name, mnist_small):
    """An epoch's host syncs (emulation's count): the loss, the test accuracy, the clock and the
    order parameters when due; the same list for 2 and 4 steps, at most 16."""
    places = []
    for steps in (2, 4):
        cfg = small(name, batches_per_epoch=steps, dtype="float32", epochs=1)
        with rt.running(cfg):
            setup = rt.prepare(cfg, dataset=mnist_small if cfg.task == "mnist" else None)
            state = rt.init_state(setup)
            with counted_syncs() as c:
                rt.train_epoch(setup, state)
        places.append(sorted(where for _, where in c.syncs))
    assert places[0] == places[1], places
    assert 0 < len(places[0]) <= 16, places[0]
    assert all(p.startswith("mfphys/") for p in places[0]), places[0]


def test_mnist_with_device_noise_learns_and_repeats_itself(mnist_small):
    """The default GPU path (float32, noise drawn on the device), row-wise and pixel-wise (T = 784)."""
    for name in ("row_mnist", "pixel_mnist"):
        cfg = small(name, dtype="float32")
        a, b = train_rnn(cfg, dataset=mnist_small), train_rnn(cfg, dataset=mnist_small)
        assert np.all(np.isfinite(a.history["train_loss"])), name
        np.testing.assert_array_equal(a.history["train_loss"], b.history["train_loss"])
        np.testing.assert_array_equal(a.params.recurrent.m, b.params.recurrent.m)
        assert a.evaluation["acc_quenched"].shape == (2, 1)


def test_resume_of_a_device_noise_run_reseeds_and_continues(tmp_path, mnist_small):
    """A resumed device-noise run reseeds its CuPy generators from the stored host streams
    (docs/model-rnn.md section 9): the epochs before the interruption are the uninterrupted
    run's, the rest a valid continuation, and resuming twice from one checkpoint repeats itself."""
    cfg = small("row_mnist", epochs=3, dtype="float64", n_train=128, n_test=64)
    whole = tmp_path / "whole.nc"
    train_run(plan_run(whole, cfg), policy=CheckpointPolicy(0, 0), dataset=mnist_small)
    runs = []
    for k in range(2):
        path = tmp_path / f"r{k}.nc"
        stop = StopAt(2)
        with pytest.raises(runfile.Interrupted):
            train_run(plan_run(path, cfg), policy=CheckpointPolicy(1, 0), callback=stop.record, stop=stop,
                      dataset=mnist_small)
        train_run(plan_run(path, cfg), policy=CheckpointPolicy(1, 0), dataset=mnist_small)
        runs.append(open_run(path))
    ref = open_run(whole)
    a, b = runs
    np.testing.assert_array_equal(a.train_loss.values[:, :2], ref.train_loss.values[:, :2])
    assert np.all(np.isfinite(a.train_loss.values))
    np.testing.assert_array_equal(a.train_loss.values, b.train_loss.values)
    assert a.attrs["status"] == "done"


def test_host_draws_are_the_backend_independent_reference(mnist_small):
    """``host_noise``: the same noise on both backends, so the device run is the NumPy run (float64)."""
    cfg = small("row_mnist", dtype="float64", host_noise=True)
    a = train_rnn(dataclasses.replace(cfg, backend="numpy"), dataset=mnist_small)
    b = train_rnn(cfg, dataset=mnist_small)
    np.testing.assert_allclose(b.history["train_loss"], a.history["train_loss"], rtol=1e-9)


def test_perturbation_on_cupy_is_the_numpy_perturbation(mnist_small):
    cfg = small("row_mnist", dtype="float64", replicas=1, epochs=1)
    res = train_rnn(dataclasses.replace(cfg, backend="numpy"), dataset=mnist_small)
    test = rp.task_inputs(cfg, dataset=mnist_small)
    kw = dict(samples=2, seed=cfg.seed)
    a = rp.perturbation(res.params, "recurrent", [0, 0.5], test, cfg, be=get_backend("numpy", "float64"), **kw)
    b = rp.perturbation(res.params, "recurrent", [0, 0.5], test, cfg, be=get_backend("cupy", "float64"), **kw)
    for k in ("error_vip", "error_variable", "error_base", "error_vip_mf", "error_base_mf"):
        np.testing.assert_allclose(getattr(b, k), getattr(a, k), rtol=1e-9, err_msg=k)


def test_noise_streams_of_a_replica_stay_its_own():
    """The device generators are seeded from each replica's NOISE stream, not from one another."""
    be = get_backend("cupy", "float32")
    from mfphys.backend import replica_rngs

    one = noise_mod.device_rngs(replica_rngs(5, 1, NOISE), be)[0].standard_normal((3,), dtype=np.float32)
    two = noise_mod.device_rngs(replica_rngs(4, 2, NOISE), be)[1].standard_normal((3,), dtype=np.float32)
    np.testing.assert_array_equal(be.to_numpy(one), be.to_numpy(two))
    assert ORDER != NOISE


def test_a_run_too_big_for_the_gpu_is_refused_in_one_line(monkeypatch, mnist_small):
    from mfphys import budget
    from mfphys.errors import MfphysError

    monkeypatch.setattr(budget, "device_memory", lambda be: None if be.name == "numpy" else 1 << 20)  # a 1 MiB GPU
    with pytest.raises(MfphysError, match="not enough GPU memory") as err:
        train_rnn(small("row_mnist"), dataset=mnist_small)
    assert "\n" not in str(err.value)
    train_rnn(small("row_mnist", backend="numpy", epochs=1), dataset=mnist_small)  # the host path: not asked


@pytest.mark.parametrize("host_noise", [False, True])
def test_the_time_calibration_times_the_noise_path_that_runs(host_noise):
    """budget.rnn_step_seconds draws the noise where the run will: on the device unless host_noise."""
    from mfphys.rnn.budget import rnn_step_seconds

    cfg = small("row_mnist", host_noise=host_noise, dtype="float32", n_test=8)
    with counted_syncs() as c:
        rnn_step_seconds(cfg, steps=1)
    from_host = [w for what, w in c.copies if w.startswith(("mfphys/models/rnn/noise.py", "mfphys/layers.py",
                                                             "mfphys/models/rnn/evaluate.py"))]
    assert bool(from_host) == host_noise, c.copies


@pytest.mark.parametrize("mode", ["noisy", "quenched", "annealed"])
def test_device_draws_stay_on_the_device_and_follow_the_law(mode, rng):
    """``device_draws``: no host draw copied in any sampled mode; a BPTT-baseline network
    (pi = Xi = 0) gives the mean-field outputs whatever is drawn; the weights' law is the
    spike-and-slab law (docs/model-rnn.md section 5)."""
    from mfphys.layers import Layer, sample_weights_on_device
    from mfphys.rnn import evaluate
    from mfphys.rnn.model import RnnParams
    from tests.helpers import rnn_params, rnn_spec

    be = get_backend("cupy", "float64")
    spec = rnn_spec(sigma_rec=0.0)
    host, _ = rnn_params(rng, spec, R=2)
    dev = RnnParams(*(Layer(*(be.asarray(v) for v in l)) for l in host))
    x = be.asarray(rng.random((6, 4, spec.n_in)))
    hosts = [np.random.default_rng(r) for r in range(2)]
    if on_emulation():
        with counted_syncs() as c:
            out = evaluate.outputs(dev, x, spec, mode=mode, rngs=hosts, samples=3, device_draws=True)
        assert not c.copies and not c.syncs, (c.copies, c.syncs)
    else:
        with no_syncs():
            out = evaluate.outputs(dev, x, spec, mode=mode, rngs=hosts, samples=3, device_draws=True)
    assert out.shape[:2] == ((2, 6) if mode == "noisy" else (2, 3))
    det = RnnParams(*(Layer(v.pi * 0, v.m, v.xi * 0) for v in dev))
    want = be.to_numpy(evaluate.outputs(det, x, spec, mode="mean"))
    got = be.to_numpy(evaluate.outputs(det, x, spec, mode=mode, rngs=hosts, samples=3, device_draws=True))
    np.testing.assert_allclose(got, want if mode == "noisy" else np.broadcast_to(want[:, None], got.shape),
                               rtol=1e-12, atol=1e-12)
    pi, m, xi = (be.asarray(np.full((1, 40, 50), v)) for v in (0.3, 0.5, 0.04))
    (w,) = sample_weights_on_device([Layer(pi, m, xi)], [be.device_rng(1)], 200)
    w = be.to_numpy(w)
    assert abs((w == 0).mean() - 0.3) < 0.01
    nz = w[w != 0]
    assert abs(nz.mean() - 0.5) < 0.01 and abs(nz.var() - 0.04) < 0.002


def test_matrix_order_takes_device_arrays(rng):
    from mfphys.layers import Layer
    from mfphys.rnn.model import RnnParams
    from mfphys.rnn.order import matrix_order
    from tests.helpers import rnn_params, rnn_spec

    be = get_backend("cupy", "float64")
    host, _ = rnn_params(rng, rnn_spec(), R=2)
    dev = RnnParams(*(Layer(*(be.asarray(v) for v in l)) for l in host))
    got, want = matrix_order(dev), matrix_order(host)
    assert got.keys() == want.keys()
    for k in want:
        assert isinstance(got[k], np.ndarray), k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, err_msg=k)
