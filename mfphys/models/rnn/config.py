"""The configuration of a recurrent run: everything that determines its numbers (docs/model-rnn.md section 7)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from ...backend import BACKENDS, DTYPES
from ...checks import MAX_INT, MAX_SAMPLES, MAX_THREADS, is_int
from ...errors import MfphysError
from ...fileio import dataclass_from_json, quote
from .model import SCALINGS, MatrixInit, RnnSpec
from .optim import OptConfig

TASKS = ("mnist", "multisensory")
MODES = ("gbp", "bp")
INPUT_MASKS = (None, "multisensory")
#: pixels of an MNIST image, cut into ``steps`` equal pieces read one per step
MNIST_PIXELS = 784
#: inputs, outputs and step length of the multisensory task (mfphys.rnn.tasks.Multisensory)
MULTISENSORY_IO = (5, 2)


def _default_init():
    return (MatrixInit(), MatrixInit("identity"), MatrixInit())


@dataclass(frozen=True)
class RnnConfig:
    """A recurrent run. Initialisation and optimiser settings are in the reference scaling.

    ``task``: ``"mnist"`` (``steps`` equal pieces of each image, one per step: 28 rows, or 784
    pixels, or rows split or grouped; readout at the last step) or ``"multisensory"`` (the
    cognitive task of ``mfphys.rnn.tasks``; readout at every step, masked squared error; one
    mini-batch of trials per epoch). Training stops after ``epochs`` epochs, or for a replica at
    the first epoch ``e >= stop_min_epoch`` whose training loss is ``<= stop_loss``.
    ``host_noise`` draws the training noise on the host on every backend (slower on a GPU, but
    the same numbers as NumPy: the backend agreement tests use it).
    """

    task: str = "mnist"
    steps: int = 28
    n: int = 100
    alpha: float = 0.1
    scaling: str = "fan_in"
    h0: float = 0.1
    sigma_rec: float = 0.0
    input_stochastic: bool = True
    input_mask: str | None = None
    init: tuple = field(default_factory=_default_init)
    optimizer: OptConfig = field(default_factory=OptConfig)
    batch_size: int = 128
    batches_per_epoch: int | None = 200
    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 200
    stop_loss: float | None = None
    stop_min_epoch: int = 1
    replicas: int = 1
    seed: int = 0
    mode: str = "gbp"
    backend: str = "auto"
    dtype: str = "float32"
    eval_samples: int = 10
    test_repeats: int = 10
    blas_threads: int | None = 1
    host_noise: bool = False

    def __post_init__(self):
        init = tuple(MatrixInit(**i) if isinstance(i, dict) else i for i in self.init)
        object.__setattr__(self, "init", init)
        if isinstance(self.optimizer, dict):
            object.__setattr__(self, "optimizer", OptConfig(**self.optimizer))
        self.validate()

    def validate(self) -> RnnConfig:
        """Raise :class:`MfphysError` with one line for a bad value."""
        for name, choices in (("task", TASKS), ("mode", MODES), ("scaling", SCALINGS), ("backend", BACKENDS),
                              ("dtype", DTYPES), ("input_mask", INPUT_MASKS)):
            if getattr(self, name) not in choices:
                shown = ", ".join(str(c) for c in choices)
                raise MfphysError(f"unknown {name} {quote(getattr(self, name))}: choose one of {shown}")
        if len(self.init) != 3 or not all(isinstance(i, MatrixInit) for i in self.init):
            raise MfphysError("init takes three MatrixInit (input, recurrent, output)")
        mins = {"steps": 1, "n": 1, "batch_size": 1, "epochs": 1, "stop_min_epoch": 1, "replicas": 1, "seed": 0,
                "eval_samples": 0, "test_repeats": 1}
        highs = {"eval_samples": MAX_SAMPLES, "test_repeats": MAX_SAMPLES, "blas_threads": MAX_THREADS}
        for name, low in mins.items():
            v = getattr(self, name)
            if not is_int(v) or v < low:
                raise MfphysError(f"{name} must be an integer >= {low}, got {quote(v)}")
            if v > highs.get(name, MAX_INT):
                raise MfphysError(f"{name} must be at most {highs.get(name, MAX_INT):,}, got {v}")
        for name in ("batches_per_epoch", "n_train", "n_test", "blas_threads"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise MfphysError(f"{name} must be a positive integer or None, got {quote(v)}")
            if v is not None and v > highs.get(name, MAX_INT):
                raise MfphysError(f"{name} must be at most {highs.get(name, MAX_INT):,}, got {v}")
        if self.task == "mnist" and MNIST_PIXELS % self.steps:
            divisors = [d for d in range(1, MNIST_PIXELS + 1) if MNIST_PIXELS % d == 0]
            raise MfphysError(f"steps must divide the {MNIST_PIXELS} pixels of an MNIST image, got {self.steps}: "
                              f"choose one of {', '.join(map(str, divisors))}")
        if not isinstance(self.input_stochastic, bool) or not isinstance(self.host_noise, bool):
            raise MfphysError("input_stochastic and host_noise must be True or False")
        if self.stop_loss is not None and not (math.isfinite(self.stop_loss) and self.stop_loss >= 0):
            raise MfphysError(f"stop_loss must be a finite number >= 0 or None, got {self.stop_loss}")
        self.spec()  # sizes, alpha, sigma_rec, h0
        return self

    @property
    def io(self) -> tuple[int, int]:
        """(N_in, N_out) of the task."""
        if self.task == "mnist":
            return MNIST_PIXELS // self.steps, 10
        return MULTISENSORY_IO

    def spec(self) -> RnnSpec:
        """The network this configuration trains."""
        n_in, n_out = self.io
        return RnnSpec(n_in, self.n, n_out, self.alpha, scaling=self.scaling, h0=self.h0, sigma_rec=self.sigma_rec,
                       readout="last" if self.task == "mnist" else "all", input_stochastic=self.input_stochastic)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RnnConfig:
        return dataclass_from_json(cls, text)


def mnist_batches_per_epoch(n_train: int, batch_size: int, batches_per_epoch: int | None) -> int:
    """Mini-batches per epoch of an MNIST run on the first ``n_train`` images:
    ``min(batches_per_epoch, n_train // batch_size)`` (all full batches when the preset reads all).

    The one rule of ``mfphys train --model rnn --n-train N`` and of every recurrent scan cell
    (docs/model-rnn.md section 7): an epoch never reads an image twice, and a preset's
    ``batches_per_epoch`` caps it as on the full training set."""
    per = n_train // batch_size
    if per < 1:
        raise MfphysError(f"n_train {n_train} is less than one mini-batch of {batch_size}")
    return min(batches_per_epoch or per, per)


def with_n_train(config: RnnConfig, n_train: int | None) -> RnnConfig:
    """``config`` trained on the first ``n_train`` MNIST images (None: the whole set), with the
    mini-batches per epoch of :func:`mnist_batches_per_epoch`."""
    if n_train is None or config.task != "mnist":
        return dataclasses.replace(config, n_train=n_train)
    per = mnist_batches_per_epoch(n_train, config.batch_size, config.batches_per_epoch)
    return dataclasses.replace(config, n_train=n_train, batches_per_epoch=per)
