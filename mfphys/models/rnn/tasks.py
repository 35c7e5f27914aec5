"""Tasks of the recurrent model and the reference protocols (docs/model-rnn.md sections 7-8).

- **Sequential MNIST**: each image (784 pixels, row by row) is cut into ``T`` equal pieces read
  one per step: ``T = 28`` is row-wise MNIST (28 pixels a step), ``T = 784`` pixel-by-pixel, and
  ``T = 7, 14, 56, 112, ...`` group or split the rows (the temporal-depth axis of a scan).
- **Multisensory integration**: a positively and a negatively tuned input per modality (visual,
  auditory) and a start cue; decide whether the event rate of the stimulus is above 12.5 Hz.
  Generated deterministically from each replica's random stream.

The reference protocols are named presets (:data:`PRESETS`), frozen :class:`RnnConfig`
instances; change a field with ``dataclasses.replace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from ...errors import MfphysError
from ...fileio import quote
from .config import MNIST_PIXELS, RnnConfig
from .model import MatrixInit
from .optim import OptConfig

# --- sequential MNIST -------------------------------------------------------------------------


def mnist_sequences(x, steps: int):
    """(P, 784) images -> (P, steps, 784 / steps) sequences, row-major pixel order (a view)."""
    if x.shape[-1] != MNIST_PIXELS or MNIST_PIXELS % steps:
        raise MfphysError(f"cannot cut {x.shape[-1]} pixels into {steps} equal steps")
    return x.reshape(x.shape[:-1] + (steps, MNIST_PIXELS // steps))


# --- multisensory integration -------------------------------------------------------------------

#: input channels
VISUAL_P, AUDITORY_P, VISUAL_N, AUDITORY_N, START = range(5)
#: output channel of the "high rate" choice (the other one is "low")
HIGH = 0


@dataclass(frozen=True)
class Multisensory:
    """The multisensory integration task (docs/model-rnn.md section 8); times in ms.

    A trial shows one event rate ``f`` to the visual, the auditory or both modalities; the
    network answers "high" (``f > boundary``) or "low" on its two outputs during the decision
    epoch. Epochs: fixation (``fixation``, ``fixation_test`` in test trials), stimulus,
    decision; a training trial lasts ``trial_train`` whatever its epochs (the steps after the
    decision are outside the loss mask). Catch trials have no stimulus and target "low"
    throughout, all of it in the mask.
    """

    dt: float = 20.0
    tau: float = 100.0
    fixation: float = 100.0
    fixation_test: float = 500.0
    stimulus: float = 1000.0
    decision: float = 300.0
    trial_train: float = 2500.0
    freqs: tuple = tuple(range(9, 17))
    boundary: float = 12.5
    modalities: tuple = ("v", "a", "va")
    n_catch: int = 6
    baseline: float = 0.2
    sigma_in: float = 0.01
    hi: float = 1.0
    lo: float = 0.2

    @property
    def alpha(self) -> float:
        return self.dt / self.tau

    def epochs(self, phase: str) -> dict:
        """Step ranges ``(start, stop)`` of the fixation, stimulus and decision epochs, and the trial length."""
        fix = self.fixation if phase == "train" else self.fixation_test
        bounds = np.cumsum([0, fix, self.stimulus, self.decision]) / self.dt
        s = [int(round(b)) for b in bounds]
        total = int(round(self.trial_train / self.dt)) if phase == "train" else s[-1]
        return {"fixation": (s[0], s[1]), "stimulus": (s[1], s[2]), "decision": (s[2], s[3]), "steps": total}

    def scale(self, f, positive: bool):
        """Input level of a tuned channel for event rate ``f``: 0.4 .. 1.2 over the rates."""
        lo, hi = min(self.freqs), max(self.freqs)
        frac = (f - lo) / (hi - lo)
        return 0.4 + 0.8 * (frac if positive else 1 - frac)


class Trials(NamedTuple):
    """A mini-batch of multisensory trials: inputs per replica, the rest shared."""

    x: np.ndarray  # (R, B, T, 5)
    target: np.ndarray  # (B, T, 2)
    mask: np.ndarray  # (B, T, 2)
    modality: np.ndarray  # (B,) index into Multisensory.modalities, -1 for catch trials
    freq: np.ndarray  # (B,) event rate, NaN for catch trials


def multisensory_trials(task: Multisensory, rngs, *, phase: str = "train", repeats: int = 1,
                        dtype=np.float32) -> Trials:
    """``repeats`` blocks of every (modality, rate) condition, plus ``n_catch`` catch trials per
    block in the training phase; input noise ``sigma_in sqrt(2 / alpha) Normal(0, 1)`` drawn from
    each replica's generator (one per replica in ``rngs``), so the trials are fixed by the seed.
    """
    if phase not in ("train", "test"):
        raise MfphysError(f"phase must be train or test, got {quote(phase)}")
    ep = task.epochs(phase)
    T = ep["steps"]
    conds = [(i, f) for i in range(len(task.modalities)) for f in task.freqs]
    n_catch = task.n_catch if phase == "train" else 0
    block = len(conds) + n_catch
    B = repeats * block
    x = np.zeros((B, T, 5))
    target = np.zeros((B, T, 2))
    mask = np.zeros((B, T, 2))
    modality = np.full(B, -1)
    freq = np.full(B, np.nan)
    (f0, f1), (s0, s1), (d0, d1) = ep["fixation"], ep["stimulus"], ep["decision"]
    for k in range(repeats):
        for j, (i, f) in enumerate(conds):
            b = k * block + j
            modality[b], freq[b] = i, f
            mod = task.modalities[i]
            if "v" in mod:
                x[b, s0:s1, VISUAL_P], x[b, s0:s1, VISUAL_N] = task.scale(f, True), task.scale(f, False)
            if "a" in mod:
                x[b, s0:s1, AUDITORY_P], x[b, s0:s1, AUDITORY_N] = task.scale(f, True), task.scale(f, False)
            x[b, s0:d1, START] = 1
            choice = HIGH if f > task.boundary else 1 - HIGH
            target[b, f0:f1] = task.lo
            target[b, d0:d1] = task.lo
            target[b, d0:d1, choice] = task.hi
            mask[b, f0:f1] = mask[b, d0:d1] = 1  # the loss sees fixation and decision only
        for j in range(n_catch):
            b = k * block + len(conds) + j
            target[b] = task.lo
            mask[b] = 1
    x += task.baseline
    noise_std = task.sigma_in * math.sqrt(2 / task.alpha)
    xs = np.stack([x + noise_std * g.standard_normal(x.shape) for g in rngs]).astype(dtype)
    return Trials(xs, target.astype(dtype), mask.astype(dtype), modality, freq)


def multisensory_input_mask(n: int) -> np.ndarray:
    """(n, 5) bool: the input connections of the multisensory network (docs/model-rnn.md section 8).

    The first third of the units hears no visual input, the second third no auditory input, the
    last third only the start cue."""
    mask = np.ones((n, 5), bool)
    a, b = n // 3, 2 * n // 3
    mask[:a, [VISUAL_P, VISUAL_N]] = False
    mask[a:b, [AUDITORY_P, AUDITORY_N]] = False
    mask[b:, [VISUAL_P, AUDITORY_P, VISUAL_N, AUDITORY_N]] = False
    return mask


#: the structural input masks a configuration can name (``RnnConfig.input_mask``)
_MASKS = {"multisensory": multisensory_input_mask}


def input_mask(config: RnnConfig):
    """The structural input mask a configuration names, or ``None``."""
    if config.input_mask is None:
        return None
    return _MASKS[config.input_mask](config.n)


def psychometric(y_last, trials: Trials, task: Multisensory):
    """P(choose high) per modality and event rate, ``(..., n_modalities, n_freqs)``.

    ``y_last``: outputs at the last step, ``(..., B, 2)``; the choice is "high" where the high
    output is the larger one. Catch trials are left out; repeats are averaged."""
    high = (y_last[..., HIGH] >= y_last[..., 1 - HIGH]).astype(float)
    out = np.zeros(high.shape[:-1] + (len(task.modalities), len(task.freqs)))
    for i in range(len(task.modalities)):
        for j, f in enumerate(task.freqs):
            sel = (trials.modality == i) & (trials.freq == f)
            out[..., i, j] = high[..., sel].mean(axis=-1)
    return out


def psychometric_accuracy(p_high, task: Multisensory):
    """Fraction of correct choices per modality, ``(..., n_modalities)``: the mean over rates of
    P(high) above the boundary and P(low) below it."""
    above = np.asarray(task.freqs) > task.boundary
    return np.where(above, p_high, 1 - p_high).mean(axis=-1)


# --- the reference protocols ---------------------------------------------------------------------

ROW_MNIST = RnnConfig(
    task="mnist", steps=28, n=100, alpha=0.1, h0=0.1,
    init=(MatrixInit("normal", math.sqrt(28 / 100), 0.1), MatrixInit("identity", 0.0, 0.1),
          MatrixInit("normal", math.sqrt(28 / 100), 0.1)),
    optimizer=OptConfig("adam", weight_decay=1e-4, decay="decoupled", clip=10.0, halve_every=40),
    batch_size=128, batches_per_epoch=200, epochs=200)

PIXEL_MNIST = RnnConfig(
    task="mnist", steps=784, n=100, alpha=0.1, h0=0.1, input_stochastic=False,
    init=(MatrixInit("normal", 0.1, 0.0), MatrixInit("identity", 0.0, 0.01), MatrixInit("normal", 0.1, 0.01)),
    optimizer=OptConfig("adam", weight_decay=1e-4, decay="decoupled", clip=10.0, halve_every=40),
    batch_size=128, batches_per_epoch=200, epochs=200)

_TASK = Multisensory()
MULTISENSORY = RnnConfig(
    task="multisensory", n=150, alpha=_TASK.alpha, h0=0.0, sigma_rec=0.15, input_stochastic=False,
    input_mask="multisensory",
    init=(MatrixInit("normal", 1 / math.sqrt(5), 0.0), MatrixInit("normal", 1 / math.sqrt(150), 0.01),
          MatrixInit("normal", 1 / math.sqrt(150), 0.01)),
    # the reference halves only the pi learning rates, at epochs 100, 200, ...
    optimizer=OptConfig("rmsprop", lr_m=(1e-3, 1e-3, 1e-3), lr_xi=(0.0, 1e-3, 1e-3), lr_pi=(0.0, 1.0, 0.1),
                        b2=0.9, weight_decay=1e-3, decay="l2", clip=None, halve_every=100, halve_on=("pi",)),
    batch_size=len(_TASK.modalities) * len(_TASK.freqs) + _TASK.n_catch, batches_per_epoch=1,
    epochs=500, stop_loss=0.002, stop_min_epoch=101)

#: the reference protocols by name
PRESETS = {"row_mnist": ROW_MNIST, "pixel_mnist": PIXEL_MNIST, "multisensory": MULTISENSORY}


def sequential_mnist(steps: int) -> RnnConfig:
    """The row-wise protocol with each image read in ``steps`` steps (the temporal-depth axis).

    The input and output ``m`` start with the standard deviation ``sqrt(N_in / N)``, the rule
    behind both reference protocols (``sqrt(28/100)`` row-wise, ``0.1`` pixel by pixel);
    everything else is :data:`ROW_MNIST`'s. ``steps = 28`` gives :data:`ROW_MNIST` itself.
    """
    return mnist_protocol(ROW_MNIST, steps)


def _init_std(std: float, n_in: int, n: int, base_n_in: int, base_n: int) -> float:
    """An input/output ``m`` std for ``N_in = n_in, N = n`` from the base protocol's: ``sqrt(N_in / N)``
    where the base follows that rule (both MNIST presets), else the base's std scaled alike."""
    if math.isclose(std, math.sqrt(base_n_in / base_n)):
        return math.sqrt(n_in / n)
    return std * math.sqrt(n_in * base_n / (base_n_in * n))


def mnist_protocol(base: RnnConfig, steps: int, n: int | None = None) -> RnnConfig:
    """An MNIST protocol (a preset) read in ``steps`` steps, with ``n`` hidden units (None: the base's).

    The rule of :func:`sequential_mnist` for any MNIST preset: the input and output ``m`` start
    with the standard deviation ``sqrt(N_in / N)`` (the base's std rescaled alike where it does
    not follow that rule); everything else is the base's. The base's own ``steps`` and ``n`` give
    the base itself. Each cell of a recurrent scan is built with it (docs/scans.md).
    """
    if base.task != "mnist":
        raise MfphysError(f"the {base.task} task is not read from MNIST images: it has no steps to choose")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1 or MNIST_PIXELS % steps:
        raise MfphysError(f"steps must divide the {MNIST_PIXELS} pixels of an MNIST image, got {quote(steps)}")
    n = base.n if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise MfphysError(f"n (hidden units) must be an integer >= 1, got {quote(n)}")
    if steps == base.steps and n == base.n:
        return base
    n_in, base_n_in = MNIST_PIXELS // steps, base.io[0]
    i, r, o = base.init
    return replace(base, steps=steps, n=n,
                   init=(replace(i, m_std=_init_std(i.m_std, n_in, n, base_n_in, base.n)), r,
                         replace(o, m_std=_init_std(o.m_std, n_in, n, base_n_in, base.n))))


def preset(name: str) -> RnnConfig:
    """A reference protocol by name (:data:`PRESETS`)."""
    if name not in PRESETS:
        raise MfphysError(f"unknown preset {quote(name)}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
