"""The training loop: replicas, reproducibility, learning on real MNIST, divergence, validation."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys import DivergenceError, MfphysError
from mfphys.data import TeacherConfig, load_dataset
from mfphys.train import TrainConfig, load_data, train

TEACHER = dict(dataset="teacher", layers=(20, 16, 12, 10), n_train=300, n_test=200, epochs=3, batch_size=64,
               backend="numpy")


@pytest.fixture(scope="module")
def teacher_data():
    return load_dataset("teacher", n_train=300, n_test=200, teacher=TeacherConfig(n_in=20))


def arrays_of(result):
    out = dict(result.history)
    for l, layer in enumerate(result.params):
        for k, v in layer._asdict().items():
            out[f"{k}_{l}"] = v
    out["sampled"] = result.sampled_acc
    return out


@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_replica_r_equals_single_run_with_seed_plus_r(mode, teacher_data):
    """Replica r of an R-replica run is the same computation as a 1-replica run seeded seed + r (float64)."""
    R = 3
    many = train(TrainConfig(**TEACHER, mode=mode, replicas=R, seed=7, dtype="float64"), dataset=teacher_data)
    for r in range(R):
        one = train(TrainConfig(**TEACHER, mode=mode, replicas=1, seed=7 + r, dtype="float64"), dataset=teacher_data)
        a, b = arrays_of(many), arrays_of(one)
        for k in a:
            if k in ("lr", "epoch_seconds", "eval_seconds"):
                continue
            np.testing.assert_allclose(a[k][r], b[k][0], rtol=1e-12, atol=0, err_msg=k)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seeded_runs_are_reproducible(dtype, teacher_data):
    cfg = TrainConfig(**TEACHER, replicas=2, seed=3, dtype=dtype)
    a, b = arrays_of(train(cfg, dataset=teacher_data)), arrays_of(train(cfg, dataset=teacher_data))
    for k in a:
        if k not in ("epoch_seconds", "eval_seconds"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = arrays_of(train(TrainConfig(**TEACHER, replicas=2, seed=4, dtype=dtype), dataset=teacher_data))
    assert not np.array_equal(a["m_0"], c["m_0"])


def test_bp_mode_keeps_pi_and_xi_at_zero(teacher_data):
    res = train(TrainConfig(**TEACHER, mode="bp"), dataset=teacher_data)
    for layer in res.params:
        assert np.all(layer.pi == 0) and np.all(layer.xi == 0)


def test_projection_puts_parameters_on_the_boundaries(teacher_data):
    res = train(TrainConfig(**{**TEACHER, "epochs": 10}), dataset=teacher_data)
    pi = np.concatenate([l.pi.ravel() for l in res.params])
    xi = np.concatenate([l.xi.ravel() for l in res.params])
    assert pi.min() >= 0 and pi.max() <= 1 and xi.min() >= 0
    assert np.any(pi == 0) and np.any(xi == 0)  # the hard projection of docs/model.md section 4


def test_lr_halving_schedule():
    cfg = TrainConfig(lr=0.1, lr_halve_every=20)
    assert [cfg.lr_at(e) for e in (1, 20, 21, 40, 41)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert TrainConfig(lr=0.1).lr_at(1000) == 0.1


def test_config_json_round_trip():
    cfg = TrainConfig(layers=(784, 50, 10), decay_on=("pi", "m", "xi"), replicas=4)
    assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_learns_real_mnist_quickly(mnist_dir):
    """A shortened version of the paper's set-up (784-100-100-10, batch 500, Adam lr 0.1, ReLU).

    The full-length check (100 epochs, >= 0.953 gBP / 0.948 BP) is the slow test below.
    """
    res = train(TrainConfig(epochs=6, replicas=1, backend="numpy"), data_dir=mnist_dir)
    assert res.history["test_acc"][0, -1] > 0.91
    assert res.history["train_loss"][0, -1] < res.history["train_loss"][0, 0]
    assert res.sampled_acc.shape == (1, 10) and res.sampled_acc.min() > 0.85
    assert res.data["name"] == "mnist" and res.dead_inputs.sum() > 50


@pytest.mark.slow
def test_paper_accuracy_on_mnist(mnist_dir):
    """docs/model.md section 7.1, the accuracy bars of docs/results.md: defaults, 100 epochs, 3 seeds."""
    accs = {}
    for mode in ("gbp", "bp"):
        res = train(TrainConfig(mode=mode, replicas=3, backend="numpy"), data_dir=mnist_dir)
        accs[mode] = res.history["test_acc"][:, -10:].mean()
        if mode == "gbp":
            from mfphys.order import run_order

            o = run_order(res.params, tol=0.0, xi_tol=0.0)
            assert np.all(o["frac_uip"] > 0) and np.all(o["frac_vip"] > 0)  # categories in every layer
    assert accs["gbp"] >= 0.953, accs
    assert accs["bp"] >= 0.948, accs


@pytest.mark.slow
def test_2020_protocol_accuracy_on_mnist(mnist_dir):
    """docs/results.md, the 2020 protocol: 200 epochs, lr halved every 20, Adam rebuilt every epoch,
    decay on m and Xi, 3 seeds (about 90 s of training on an idle 2-core CPU)."""
    from threadpoolctl import threadpool_limits

    from mfphys.train import PROTOCOLS

    with threadpool_limits(1):  # the recorded numbers were made with one BLAS thread
        res = train(TrainConfig(**PROTOCOLS["2020"], replicas=3, backend="numpy"), data_dir=mnist_dir)
    np.testing.assert_allclose(res.history["test_acc"][:, -10:].mean(axis=1), [0.9654, 0.96375, 0.9681], atol=2e-3)


def test_divergence_is_reported(teacher_data):
    with pytest.raises(DivergenceError, match="diverged"):
        train(TrainConfig(**{**TEACHER, "lr": 1e12, "epochs": 5}), dataset=teacher_data)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layers=(784,)), "at least two"),
        (dict(layers=(784, 0, 10)), "positive"),
        (dict(epochs=0), "--epochs"),
        (dict(batch_size=-1), "--batch-size"),
        (dict(lr=0.0), "--lr"),
        (dict(lr=float("nan")), "--lr"),
        (dict(mode="sgd"), "--mode"),
        (dict(activation="gelu"), "--activation"),
        (dict(replicas=0), "--replicas"),
        (dict(backend="tpu"), "backend"),
        (dict(dtype="float16"), "dtype"),
        (dict(decay_on=("w",)), "--decay-on"),
        (dict(dataset="mnist", teacher_seed=3), "--teacher-seed 3 is the teacher network's seed: it needs --dataset "
                                                "teacher, not mnist"),
    ],
)
def test_bad_configs_are_clear_errors(kwargs, match):
    with pytest.raises(MfphysError, match=match):
        train(TrainConfig(**{**TEACHER, **kwargs}))


def test_layer_widths_must_match_the_data(mnist_dir):
    with pytest.raises(MfphysError, match="784 input features"):
        train(TrainConfig(layers=(100, 10), epochs=1), data_dir=mnist_dir)
    with pytest.raises(MfphysError, match="10 classes"):
        train(TrainConfig(layers=(784, 5), epochs=1), data_dir=mnist_dir)
    with pytest.raises(MfphysError, match="larger than"):
        train(TrainConfig(n_train=70_000, epochs=1), data_dir=mnist_dir)
    with pytest.raises(MfphysError, match="--batch-size 500 is larger than the 100 training patterns"):
        load_data(TrainConfig(n_train=100, epochs=1), data_dir=mnist_dir)  # checked with the data, before training


# --- NumPy and CuPy agree (run where a GPU works; skipped with the reason elsewhere) ----------


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_numpy_and_cupy_training_agree(mode, teacher_data):
    """Same config, same host-drawn noise, float64: the two backends give the same run."""
    base = dict(TEACHER, mode=mode, dtype="float64", replicas=2, host_noise=True)
    a = arrays_of(train(TrainConfig(**{**base, "backend": "numpy"}), dataset=teacher_data))
    b = arrays_of(train(TrainConfig(**{**base, "backend": "cupy"}), dataset=teacher_data))
    for k in a:
        if k not in ("epoch_seconds", "eval_seconds"):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-7, atol=1e-9, err_msg=k)


@pytest.mark.gpu
def test_cupy_default_path_learns_and_is_reproducible(teacher_data):
    """The fast GPU path (float32, noise drawn on the device) learns and repeats itself."""
    cfg = TrainConfig(**{**TEACHER, "epochs": 8, "backend": "cupy", "replicas": 4})
    a, b = train(cfg, dataset=teacher_data), train(cfg, dataset=teacher_data)
    assert np.all(a.history["test_acc"][:, -1] > a.history["test_acc"][:, 0])
    np.testing.assert_array_equal(a.history["train_loss"], b.history["train_loss"])
    np.testing.assert_array_equal(a.params[0].m, b.params[0].m)


@pytest.mark.gpu
def test_auto_backend_picks_a_working_gpu():
    from mfphys.backend import get_backend

    assert get_backend("auto").name == "cupy"


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_sampled_evaluation_agrees_across_backends(backend, teacher_data):
    from mfphys.backend import EVAL, get_backend, replica_rngs
    from mfphys.train import evaluate_sampled

    res = train(TrainConfig(**{**TEACHER, "dtype": "float64", "eval_samples": 0}), dataset=teacher_data)
    kw = dict(n_draws=5, activation="relu")
    ref = evaluate_sampled(res.params, teacher_data.x_test, teacher_data.y_test, rngs=replica_rngs(0, 1, EVAL), **kw)
    got = evaluate_sampled(res.params, teacher_data.x_test, teacher_data.y_test, rngs=replica_rngs(0, 1, EVAL),
                           be=get_backend(backend, "float64"), **kw)
    np.testing.assert_allclose(got[0], ref[0])
    np.testing.assert_allclose(got[1], ref[1])
    assert ref[0].shape == (1, 5) and np.all((ref[0] > 0.05) & (ref[0] <= 1))


# --- the steps of a run, its state, the 2020 protocol ---------------------------------------------


def test_train_is_init_steps_and_finish(teacher_data):
    from mfphys.train import finish, init_state, prepare, train_epoch

    cfg = TrainConfig(**TEACHER, replicas=2)
    setup = prepare(cfg, dataset=teacher_data)
    state = init_state(setup)
    records = []
    while state.epoch < cfg.epochs:
        state, rec = train_epoch(setup, state)
        records.append(rec)
    a, b = arrays_of(finish(setup, state)), arrays_of(train(cfg, dataset=teacher_data))
    for k in a:
        if k not in ("epoch_seconds", "eval_seconds"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [r.epoch for r in records] == [1, 2, 3]
    with pytest.raises(MfphysError, match="all its 3 epochs"):
        train_epoch(setup, state)


@pytest.mark.parametrize("mode", ["gbp", "bp"])
def test_a_host_state_resumes_bit_identically(mode, teacher_data):
    """Stop after 2 epochs, keep only the host state (what a checkpoint stores), go on in a fresh setup."""
    import json

    from mfphys.train import finish, init_state, prepare, resume_state, to_host, train_epoch

    cfg = TrainConfig(**{**TEACHER, "epochs": 5}, replicas=2, mode=mode)
    setup = prepare(cfg, dataset=teacher_data)
    state = init_state(setup)
    for _ in range(2):
        state, _ = train_epoch(setup, state)
    host = to_host(setup.be, state)
    host = host._replace(params=tuple(type(l)(*(v.copy() for v in l)) for l in host.params),
                         rng=json.loads(json.dumps(host.rng)))  # as written to and read from a file
    del state
    setup = prepare(cfg, dataset=teacher_data)
    state = resume_state(setup, host)
    while state.epoch < cfg.epochs:
        state, _ = train_epoch(setup, state)
    a, b = arrays_of(finish(setup, state)), arrays_of(train(cfg, dataset=teacher_data))
    for k in a:
        if k not in ("epoch_seconds", "eval_seconds"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("reset, counts", [("never", [5, 10, 15]), ("epoch", [5, 5, 5])])
def test_adam_reset_restarts_the_step_counter_every_epoch(reset, counts, teacher_data):
    from mfphys.train import init_state, prepare, train_epoch

    setup = prepare(TrainConfig(**{**TEACHER, "batch_size": 60}, adam_reset=reset), dataset=teacher_data)
    state, seen = init_state(setup), []
    while state.epoch < 3:
        state, _ = train_epoch(setup, state)
        seen.append(state.adam.count)
    assert seen == counts  # 300 patterns in batches of 60: 5 steps an epoch


def test_adam_reset_is_a_fresh_optimizer_every_epoch(teacher_data):
    """Two epochs with adam_reset="epoch" = epoch 1, then epoch 2 from its parameters with a new
    optimizer (the 2020 code rebuilt Adam every epoch, docs/model.md section 4)."""
    from mfphys import optim
    from mfphys.train import init_state, prepare, train_epoch

    cfg = TrainConfig(**TEACHER, adam_reset="epoch")
    setup = prepare(cfg, dataset=teacher_data)
    state = init_state(setup)
    state, _ = train_epoch(setup, state)
    state, _ = train_epoch(setup, state)
    ref_setup = prepare(dataclasses_replace(cfg, adam_reset="never"), dataset=teacher_data)
    ref = init_state(ref_setup)
    ref, _ = train_epoch(ref_setup, ref)
    ref = ref._replace(adam=optim.adam_init(ref.params))  # a new optimizer for epoch 2
    ref, _ = train_epoch(ref_setup, ref)
    for a, b in zip(state.params, ref.params):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_new_fields_keep_the_configuration_json_of_earlier_runs():
    """adam_reset came later: at its default it is left out of the JSON, so the configuration
    hash of every earlier run and scan cell stays what it was."""
    import hashlib

    from tests.helpers import tiny_spec

    assert "adam_reset" not in TrainConfig().to_json()
    cfg = TrainConfig(adam_reset="epoch")
    assert '"adam_reset": "epoch"' in cfg.to_json() and TrainConfig.from_json(cfg.to_json()) == cfg
    assert TrainConfig.from_json(TrainConfig().to_json()).adam_reset == "never"
    spec = tiny_spec()
    # the hashes the tiny scan had before adam_reset existed
    assert spec.scan_hash() == "0d861742a6d9d7b980f3ecd63a8b4d665507ef009d62a3f10aa4061d968966b9"
    assert spec.cells()[0].config_hash == "49bd6bbdcae4df6158e83f4d661bd3f5b71c57da12c6a4bdebcc88b1dbebb0cd"
    assert hashlib.sha256(spec.cells()[0].config.to_json().encode()).hexdigest() == spec.cells()[0].config_hash
    with pytest.raises(MfphysError, match="--adam-reset"):
        TrainConfig(adam_reset="sometimes")


def test_protocol_presets():
    from mfphys.train import PROTOCOLS

    old = TrainConfig(**PROTOCOLS["2020"])
    assert (old.epochs, old.lr_halve_every, old.adam_reset, old.decay_on) == (200, 20, "epoch", ("m", "xi"))
    assert [old.lr_at(e) for e in (20, 21, 200)] == [0.1, 0.05, 0.1 * 0.5**9]
    new = TrainConfig(**PROTOCOLS["revised"])
    assert (new.epochs, new.lr_halve_every, new.adam_reset, new.decay_on) == (100, 0, "never", ("pi", "m", "xi"))


def test_dynamics_are_recorded_and_end_at_the_final_order_parameters(teacher_data):
    from mfphys import order

    cfg = TrainConfig(**{**TEACHER, "epochs": 7}, replicas=2)
    res = train(cfg, dataset=teacher_data, dynamics_every=3)
    # every 3 epochs and at the log-spaced snapshot epochs 0, 1, 2, 5 and the last
    assert res.dynamics.epochs == (0, 1, 2, 3, 5, 6, 7) and res.dynamics.snap_epochs == (0, 1, 2, 5, 7)
    final = order.run_order(res.params, live_inputs=~res.dead_inputs)
    last = res.dynamics.samples[-1]
    assert set(last) == set(order.SCALARS) | {f"{k}_live" for k in order.SCALARS}
    for k, v in last.items():
        assert v.shape == (2, 3)
        np.testing.assert_array_equal(v, final[k], err_msg=k)
    first = res.dynamics.samples[0]
    np.testing.assert_array_equal(first["sparsity"], 0.0)  # pi = 0 at the start
    np.testing.assert_array_equal(first["mean_pi"], 0.0)
    assert train(cfg, dataset=teacher_data, dynamics_every=0).dynamics.epochs == (0, 1, 2, 5, 7)
    with pytest.raises(MfphysError, match="--dynamics-every"):
        train(cfg, dataset=teacher_data, dynamics_every=-1)
