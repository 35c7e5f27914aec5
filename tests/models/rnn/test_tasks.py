"""mfphys.rnn.tasks (docs/model-rnn.md sections 7-8): MNIST as sequences, the multisensory task
generator, its input mask and psychometric read-out, the presets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mfphys.errors import MfphysError
from mfphys.rnn import tasks
from mfphys.rnn.config import RnnConfig
from mfphys.rnn.tasks import AUDITORY_N, AUDITORY_P, START, VISUAL_N, VISUAL_P, Multisensory

TASK = Multisensory()


def rngs(seed, R=2):
    return [np.random.default_rng(seed + r) for r in range(R)]


@pytest.mark.parametrize("steps", [7, 14, 28, 56, 112, 784])
def test_mnist_sequences_read_the_image_in_raster_order(steps):
    x = np.arange(3 * 784, dtype=np.float32).reshape(3, 784)
    s = tasks.mnist_sequences(x, steps)
    assert s.shape == (3, steps, 784 // steps)
    np.testing.assert_array_equal(s.reshape(3, 784), x)
    if steps == 28:  # row-wise: step t is row t
        np.testing.assert_array_equal(s[1, 5], x[1].reshape(28, 28)[5])
    if steps == 14:  # two rows a step
        np.testing.assert_array_equal(s[0, 2], x[0].reshape(28, 28)[4:6].ravel())


def test_mnist_steps_must_divide_the_image():
    with pytest.raises(MfphysError, match="steps must divide"):
        RnnConfig(steps=30)
    with pytest.raises(MfphysError, match="equal steps"):
        tasks.mnist_sequences(np.zeros((2, 784)), 30)
    assert RnnConfig(steps=112).io == (7, 10) and RnnConfig(steps=784).io == (1, 10)


def test_multisensory_trials_shapes_epochs_and_masks():
    tr = tasks.multisensory_trials(TASK, rngs(0), phase="train", dtype=np.float64)
    B = 24 + 6
    assert tr.x.shape == (2, B, 125, 5) and tr.target.shape == (B, 125, 2) and tr.mask.shape == (B, 125, 2)
    ep = TASK.epochs("train")
    assert (ep["fixation"], ep["stimulus"], ep["decision"], ep["steps"]) == ((0, 5), (5, 55), (55, 70), 125)
    assert TASK.epochs("test")["steps"] == 90 and TASK.epochs("test")["fixation"] == (0, 25)
    normal, catch = tr.modality >= 0, tr.modality < 0
    assert normal.sum() == 24 and catch.sum() == 6 and np.all(np.isnan(tr.freq[catch]))
    # the loss sees fixation and decision of normal trials, all of a catch trial
    m = tr.mask[normal]
    assert np.all(m[:, 0:5] == 1) and np.all(m[:, 5:55] == 0) and np.all(m[:, 55:70] == 1) and np.all(m[:, 70:] == 0)
    assert np.all(tr.mask[catch] == 1) and np.all(tr.target[catch] == TASK.lo)
    # targets: low during fixation, the right choice high during the decision
    for b in np.flatnonzero(normal):
        high = tr.freq[b] > TASK.boundary
        assert np.all(tr.target[b, :5] == TASK.lo)
        np.testing.assert_array_equal(tr.target[b, 60], [TASK.hi, TASK.lo] if high else [TASK.lo, TASK.hi])


def test_multisensory_inputs_follow_modality_and_rate():
    tr = tasks.multisensory_trials(dataclasses.replace(TASK, sigma_in=0.0), rngs(0, 1), phase="test")
    x = tr.x[0] - TASK.baseline
    for b in range(24):
        mod, f = TASK.modalities[tr.modality[b]], tr.freq[b]
        stim = x[b, 25:75]
        assert np.all(x[b, :25] == 0) and np.all(x[b, 25:90, START] == 1) and np.all(x[b, :25, START] == 0)
        assert np.allclose(stim[:, VISUAL_P], TASK.scale(f, True) if "v" in mod else 0)
        assert np.allclose(stim[:, VISUAL_N], TASK.scale(f, False) if "v" in mod else 0)
        assert np.allclose(stim[:, AUDITORY_P], TASK.scale(f, True) if "a" in mod else 0)
        assert np.allclose(stim[:, AUDITORY_N], TASK.scale(f, False) if "a" in mod else 0)
    assert TASK.scale(9, True) == pytest.approx(0.4) and TASK.scale(16, True) == pytest.approx(1.2)


def test_multisensory_conditions_are_balanced():
    tr = tasks.multisensory_trials(TASK, rngs(0), phase="test", repeats=3)
    assert tr.x.shape[1] == 72
    for i in range(3):
        for f in TASK.freqs:
            assert np.sum((tr.modality == i) & (tr.freq == f)) == 3
    normal = tr.modality >= 0
    assert np.sum(tr.freq[normal] > TASK.boundary) == np.sum(tr.freq[normal] < TASK.boundary)


def test_multisensory_trials_are_fixed_by_the_seed():
    a = tasks.multisensory_trials(TASK, rngs(5), phase="train")
    b = tasks.multisensory_trials(TASK, rngs(5), phase="train")
    c = tasks.multisensory_trials(TASK, rngs(6), phase="train")
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(a.x, c.x)
    np.testing.assert_array_equal(c.x[0], a.x[1])  # replica r draws from seed + r
    noise = a.x[0] - tasks.multisensory_trials(dataclasses.replace(TASK, sigma_in=0.0), rngs(5), phase="train").x[0]
    assert noise.std() == pytest.approx(0.01 * np.sqrt(2 / 0.2), rel=0.02)


def test_multisensory_input_mask():
    m = tasks.multisensory_input_mask(150)
    assert m.shape == (150, 5) and np.all(m[:, START])
    assert not m[:50, [VISUAL_P, VISUAL_N]].any() and m[:50, [AUDITORY_P, AUDITORY_N]].all()
    assert not m[50:100, [AUDITORY_P, AUDITORY_N]].any() and m[50:100, [VISUAL_P, VISUAL_N]].all()
    assert not m[100:, :4].any()


def test_psychometric_curve_and_accuracy():
    tr = tasks.multisensory_trials(TASK, rngs(0, 1), phase="test", repeats=2)
    perfect = np.where((tr.freq > TASK.boundary)[:, None], [1.0, 0.0], [0.0, 1.0])  # (B, 2)
    p = tasks.psychometric(perfect[None], tr, TASK)
    assert p.shape == (1, 3, 8)
    np.testing.assert_array_equal(p[0], np.tile((np.asarray(TASK.freqs) > 12.5) * 1.0, (3, 1)))
    np.testing.assert_array_equal(tasks.psychometric_accuracy(p, TASK), [[1.0, 1.0, 1.0]])
    flipped = perfect.copy()
    flipped[tr.modality == 1] = perfect[tr.modality == 1][:, ::-1]
    np.testing.assert_array_equal(tasks.psychometric_accuracy(tasks.psychometric(flipped, tr, TASK), TASK),
                                  [1.0, 0.0, 1.0])


@pytest.mark.parametrize("name", list(tasks.PRESETS))
def test_presets_are_valid_and_round_trip(name):
    cfg = tasks.preset(name)
    assert RnnConfig.from_json(cfg.to_json()) == cfg
    spec = cfg.spec()
    assert spec.n_in * (cfg.steps if cfg.task == "mnist" else 1) in (784, 5)
    with pytest.raises(MfphysError, match="unknown preset"):
        tasks.preset("sequential")


def test_reference_protocol_values():
    row, pix, ms = tasks.ROW_MNIST, tasks.PIXEL_MNIST, tasks.MULTISENSORY
    assert (row.spec().n_in, row.n, row.alpha, row.h0, row.batch_size, row.batches_per_epoch) == (28, 100, 0.1, 0.1,
                                                                                                  128, 200)
    assert pix.steps == 784 and not pix.input_stochastic and pix.init[0].xi == 0
    assert ms.spec().alpha == pytest.approx(0.2) and ms.sigma_rec == 0.15 and ms.input_mask == "multisensory"
    assert (ms.stop_loss, ms.stop_min_epoch, ms.epochs, ms.batch_size) == (0.002, 101, 500, 30)
    assert row.optimizer.clip == 10 and ms.optimizer.name == "rmsprop" and ms.optimizer.decay == "l2"


@pytest.mark.parametrize("steps", [7, 14, 28, 56, 112, 784])
def test_sequential_mnist_generalises_the_reference_initialisation(steps):
    cfg = tasks.sequential_mnist(steps)
    n_in = 784 // steps
    assert cfg.spec().n_in == n_in and cfg.init[0].m_std == pytest.approx(np.sqrt(n_in / 100))
    assert cfg.init[2].m_std == cfg.init[0].m_std and cfg.optimizer == tasks.ROW_MNIST.optimizer
    if steps == 28:
        assert cfg == tasks.ROW_MNIST
    if steps == 784:
        assert cfg.init[0].m_std == pytest.approx(tasks.PIXEL_MNIST.init[0].m_std)
    with pytest.raises(MfphysError, match="divide"):
        tasks.sequential_mnist(30)
