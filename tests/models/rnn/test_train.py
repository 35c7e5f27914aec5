"""mfphys.rnn.train (docs/model-rnn.md sections 6-8): the training loop.

- replica r of an R-replica run is a one-replica run seeded seed + r (MNIST and multisensory);
- a replica that meets the stop rule keeps its parameters while the others train on;
- the BPTT baseline evaluates to one network in every mode; clear errors; NumPy/CuPy agreement;
- ``slow``: the reference protocols reach the reference's accuracies.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mfphys.data import load_dataset
from mfphys.errors import DivergenceError, MfphysError
from mfphys.rnn import preset, train_rnn
from mfphys.rnn.config import RnnConfig
from mfphys.rnn.optim import OptConfig

TINY_MNIST = dict(task="mnist", steps=28, n=16, batch_size=32, batches_per_epoch=4, epochs=2, eval_samples=2,
                  dtype="float64", backend="numpy", init=preset("row_mnist").init)
TINY_MS = dict(n=15, epochs=3, eval_samples=2, test_repeats=1, dtype="float64", backend="numpy")


@pytest.fixture(scope="module")
def mnist_small(mnist_dir):
    return load_dataset("mnist", n_train=512, n_test=200, data_dir=mnist_dir)


def tiny_ms(**kw):
    return dataclasses.replace(preset("multisensory"), **{**TINY_MS, **kw})


def same_runs(many, ones):
    for r, one in enumerate(ones):
        for k, v in many.history.items():
            if k != "epoch_seconds":
                np.testing.assert_allclose(v[r, : one.history[k].shape[1]], one.history[k][0], rtol=1e-10, err_msg=k)
        for k, v in many.evaluation.items():
            np.testing.assert_allclose(v[r], one.evaluation[k][0], rtol=1e-10, err_msg=k)
        for a, b in zip(many.params, one.params):
            for u, w in zip(a, b):
                np.testing.assert_allclose(u[r], w[0], rtol=1e-10, atol=1e-14)
        assert many.stop_epoch[r] == one.stop_epoch[0]


@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_replica_r_is_a_one_replica_run_seeded_seed_plus_r_mnist(mode, mnist_small):
    cfg = RnnConfig(**TINY_MNIST, mode=mode, replicas=3, seed=4)
    many = train_rnn(cfg, dataset=mnist_small)
    ones = [train_rnn(dataclasses.replace(cfg, replicas=1, seed=4 + r), dataset=mnist_small) for r in range(3)]
    same_runs(many, ones)
    assert many.history["train_loss"].shape == (3, 2) and np.all(np.isfinite(many.history["test_acc"]))
    assert many.evaluation["acc_quenched"].shape == (3, 2) and many.evaluation["acc_mean"].shape == (3,)


def test_replica_r_is_a_one_replica_run_seeded_seed_plus_r_multisensory():
    cfg = tiny_ms(replicas=2, seed=7)
    many = train_rnn(cfg)
    ones = [train_rnn(dataclasses.replace(cfg, replicas=1, seed=7 + r)) for r in range(2)]
    same_runs(many, ones)
    assert many.evaluation["p_high_quenched"].shape == (2, 2, 3, 8)
    assert many.evaluation["psychometric_acc_mean"].shape == (2, 3)


def test_a_stopped_replica_keeps_its_parameters_while_the_others_train():
    free = train_rnn(tiny_ms(replicas=2, epochs=4))
    loss = free.history["train_loss"][:, 1]  # epoch 2
    stop = float(loss.mean())
    assert loss.min() < stop < loss.max()
    first = int(np.argmin(loss))
    run = train_rnn(tiny_ms(replicas=2, epochs=4, stop_loss=stop, stop_min_epoch=2))
    assert run.stop_epoch[first] == 2 and run.stop_epoch[1 - first] > 2
    assert np.all(np.isnan(run.history["train_loss"][first, 2:]))
    alone = train_rnn(tiny_ms(replicas=1, seed=first, epochs=2))
    for a, b in zip(run.params, alone.params):
        for u, w in zip(a, b):
            np.testing.assert_allclose(u[first], w[0], rtol=1e-12)
    # the masked input connections stayed clamped through training
    from mfphys.rnn.tasks import multisensory_input_mask

    mask = multisensory_input_mask(15)
    assert np.all(run.params.input.pi[:, ~mask] == 1) and np.all(run.params.input.m[:, ~mask] == 0)
    assert np.all(run.params.input.xi == 0) and np.all(run.params.input.pi[:, mask] == 0)


def test_bptt_baseline_is_one_network_in_every_mode(mnist_small):
    res = train_rnn(RnnConfig(**TINY_MNIST, mode="bp"), dataset=mnist_small)
    ev = res.evaluation
    assert np.all(res.params.recurrent.pi == 0) and np.all(res.params.recurrent.xi == 0)
    for k in ("acc_noisy", "acc_quenched", "acc_annealed", "acc_quenched_vote"):
        want = ev["acc_mean"] if ev[k].ndim == 1 else np.broadcast_to(ev["acc_mean"][:, None], ev[k].shape)
        np.testing.assert_allclose(ev[k], want)
    np.testing.assert_allclose(ev["acc_mean"], res.history["test_acc"][:, -1])


def test_training_learns_row_wise_mnist_a_little(mnist_small):
    cfg = RnnConfig(**{**TINY_MNIST, "n": 32, "epochs": 4, "batches_per_epoch": 16, "dtype": "float32"})
    res = train_rnn(cfg, dataset=mnist_small)
    loss = res.history["train_loss"][0]
    assert loss[-1] < 0.7 * loss[0] and res.history["test_acc"][0, -1] > 0.15  # chance: 0.1


def test_divergence_is_reported():
    opt = dataclasses.replace(preset("multisensory").optimizer, lr_m=(1e6, 1e6, 1e6))
    with pytest.raises(DivergenceError, match="diverged"):
        train_rnn(tiny_ms(optimizer=opt, epochs=20, dtype="float32"))


@pytest.mark.parametrize("kw, expect", [(dict(task="copy"), "task"), (dict(mode="sgd"), "mode"),
                                        (dict(replicas=0), "replicas"), (dict(n_train=0), "n_train"),
                                        (dict(init=()), "init"), (dict(stop_loss=-1.0), "stop_loss"),
                                        (dict(input_mask="eyes"), "input_mask"), (dict(alpha=2.0), "alpha")])
def test_bad_configs_are_clear_errors(kw, expect):
    with pytest.raises(MfphysError, match=expect):
        RnnConfig(**kw)


def test_task_constraints_are_clear_errors(mnist_small):
    with pytest.raises(MfphysError, match="batch_size must be 30"):
        train_rnn(tiny_ms(batch_size=20))
    with pytest.raises(MfphysError, match="only 512"):
        train_rnn(RnnConfig(**{**TINY_MNIST, "batches_per_epoch": 100}), dataset=mnist_small)


def test_config_round_trips_through_json():
    cfg = RnnConfig(**{**TINY_MNIST, "optimizer": OptConfig("rmsprop", clip=None)})
    assert RnnConfig.from_json(cfg.to_json()) == cfg


# --- NumPy and CuPy agree (run where a GPU works; skipped with the reason elsewhere) ----------


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_numpy_and_cupy_training_agree(mode, mnist_small):
    """Same config, host-drawn noise, float64: the two backends give the same run."""
    cfg = RnnConfig(**TINY_MNIST, mode=mode, replicas=2, host_noise=True)
    a = train_rnn(cfg, dataset=mnist_small)
    b = train_rnn(dataclasses.replace(cfg, backend="cupy"), dataset=mnist_small)
    np.testing.assert_allclose(b.history["train_loss"], a.history["train_loss"], rtol=1e-7)
    for k in a.evaluation:
        np.testing.assert_allclose(b.evaluation[k], a.evaluation[k], rtol=1e-7, atol=1e-9, err_msg=k)
    for u, w in zip(a.params, b.params):
        for p, q in zip(u, w):
            np.testing.assert_allclose(q, p, rtol=1e-7, atol=1e-9)


@pytest.mark.gpu
def test_cupy_multisensory_agrees_and_default_path_runs():
    cfg = tiny_ms(replicas=2, host_noise=True)
    a, b = train_rnn(cfg), train_rnn(dataclasses.replace(cfg, backend="cupy"))
    np.testing.assert_allclose(b.history["train_loss"], a.history["train_loss"], rtol=1e-7)
    fast = train_rnn(dataclasses.replace(cfg, backend="cupy", host_noise=False, dtype="float32"))
    assert np.all(np.isfinite(fast.history["train_loss"]))


# --- the reference protocols (slow: tens of minutes on a 2-core CPU) --------------------------------


@pytest.mark.slow
def test_row_wise_mnist_reference_protocol_reaches_the_reference_accuracy(mnist_dir):
    """Reference code: 93.2-93.5 % after 25 epochs. Mean of 2 seeds, noise-free mean field."""
    cfg = dataclasses.replace(preset("row_mnist"), epochs=25, replicas=2, backend="numpy")
    gbp = train_rnn(cfg, data_dir=mnist_dir)
    bp = train_rnn(dataclasses.replace(cfg, mode="bp"), data_dir=mnist_dir)
    for name, res in (("gBP", gbp), ("BPTT", bp)):
        print(f"{name} ({res.timings['train_seconds']:.0f} s): test accuracy {res.history['test_acc'][:, -1]} "
              "(noise-free mean field), "
              + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in res.evaluation.items()))
    assert gbp.history["test_acc"][:, -1].mean() >= 0.925
    assert bp.history["test_acc"][:, -1].mean() >= 0.925


@pytest.mark.slow
def test_multisensory_reference_protocol_stops_early_and_decides_well():
    """Reference code: stops at epoch 300-410 with 97.5-99.2 % psychometric accuracy."""
    cfg = dataclasses.replace(preset("multisensory"), replicas=3, backend="numpy")
    res = train_rnn(cfg)
    acc = res.evaluation["psychometric_acc_mean"]
    print(f"stop epochs {res.stop_epoch} after {res.timings['train_seconds']:.0f} s; psychometric accuracy "
          "(v, a, va; mean over replicas and sampled networks): "
          + ", ".join(f"{k.removeprefix('psychometric_acc_')} {np.round(v.reshape(-1, 3).mean(0), 3)}"
                      for k, v in res.evaluation.items() if k.startswith("psychometric_acc")))
    assert np.all(res.stop_epoch < 500)
    assert np.all(res.history["train_loss"][np.arange(3), res.stop_epoch - 1] <= 0.002)
    assert np.all(acc >= 0.95)


@pytest.mark.parametrize("task", ["mnist", "multisensory"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_noise_drawn_ahead_on_a_thread_is_the_noise_drawn_in_line(task, dtype, mnist_small, monkeypatch):
    """The next mini-batch's noise drawn on a second thread (noise.with_noise) gives the same
    run bit for bit, random streams after each epoch included."""
    from mfphys.models.rnn import noise

    if task == "mnist":
        cfg, data = RnnConfig(**{**TINY_MNIST, "dtype": dtype}, replicas=2, seed=3), mnist_small
    else:
        cfg, data = tiny_ms(replicas=2, seed=3, dtype=dtype, sigma_rec=0.1), None
    runs = {}
    for ahead in (False, True):
        monkeypatch.setattr(noise, "ahead_pays", lambda rngs, ahead=ahead: ahead)
        runs[ahead] = train_rnn(cfg, dataset=data)
    a, b = runs[False], runs[True]
    for k, v in a.history.items():
        if not k.endswith("seconds"):
            np.testing.assert_array_equal(v, b.history[k], err_msg=k)
    for k, v in a.evaluation.items():
        np.testing.assert_array_equal(v, b.evaluation[k], err_msg=k)
    for la, lb in zip(a.params, b.params):
        for u, w in zip(la, lb):
            assert u.tobytes() == w.tobytes()


def test_noise_ahead_draws_nothing_past_the_last_batch():
    from mfphys.models.rnn import noise

    calls = []
    got = list(noise.with_noise(range(3), lambda b: calls.append(b) or b * 10, ahead=True))
    assert got == [(0, 0), (1, 10), (2, 20)] and calls == [0, 1, 2]
    # a consumer that stops early leaves no draw running (the next one is cancelled or waited for)
    gen = noise.with_noise(range(5), lambda b: calls.append(b) or b, ahead=True)
    next(gen)
    gen.close()
    assert calls[3:] in ([0], [0, 1])
    noise._drawer().submit(lambda: None).result()  # the thread is free: nothing else queued
    assert calls[3:] in ([0], [0, 1])


def _draw_in_child(q):
    from mfphys.models.rnn import noise

    q.put(list(noise.with_noise(range(3), lambda b: b * 2, ahead=True)))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX")
def test_noise_thread_works_in_a_forked_process():
    """A process forked after the noise thread started (a Dask worker from a nanny, say) gets its own."""
    import multiprocessing

    from mfphys.models.rnn import noise

    assert list(noise.with_noise(range(2), lambda b: b, ahead=True)) == [(0, 0), (1, 1)]  # the parent's thread
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_draw_in_child, args=(q,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked process waited for a thread it does not have"
    assert q.get(timeout=5) == [(0, 0), (1, 2), (2, 4)]
