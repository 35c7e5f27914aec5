"""The recurrent family's scan options: the grid steps (temporal depth) x data size
(docs/model-rnn.md section 7), one cell's configuration and check, and a scan's architecture label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ...errors import MfphysError

#: the recurrent model's scan options (docs/model-rnn.md section 7): ``preset`` (an MNIST preset),
#: the step count T (the temporal depth), the data size and the settings ``mfphys train --model rnn``
#: overrides, plus ``n`` (hidden units), ``batch_size`` and ``lr`` (every learning rate of the preset)
RNN_OPTIONS = {"steps": "int", "n_train": "int", "preset": "str", "n": "int", "epochs": "int",
               "batch_size": "int", "lr": "float", "mode": "str", "replicas": "int", "seed": "int",
               "n_test": "int?", "eval_samples": "int", "backend": "str", "dtype": "str"}
#: the preset of a recurrent scan unless one is given
RNN_PRESET = "row_mnist"


def _rnn_base(name):
    from .tasks import preset

    base = preset(name)
    if base.task != "mnist":
        from .tasks import PRESETS

        mnist = ", ".join(k for k, v in PRESETS.items() if v.task == "mnist")
        raise MfphysError(f"preset {name}: the {base.task} task generates its trials (no data size) and has no "
                          f"step axis; a recurrent scan takes an MNIST preset ({mnist})")
    return base


def _rnn_defaults(given: Mapping) -> dict:
    """A recurrent scan's defaults: its preset's settings (``lr``: the preset's common learning rate)."""
    name = given.get("preset", RNN_PRESET)
    base = _rnn_base(name)
    o = base.optimizer
    rates = set(o.lr_m + o.lr_xi + o.lr_pi)
    out = {"preset": name, "n": base.n, "epochs": base.epochs, "batch_size": base.batch_size,
           "mode": base.mode, "replicas": base.replicas, "seed": base.seed, "n_test": base.n_test,
           "eval_samples": base.eval_samples, "backend": base.backend, "dtype": base.dtype}
    if len(rates) == 1:  # a preset with several learning rates keeps them unless lr is given
        out["lr"] = rates.pop()
    return out


def _rnn_config(opts: Mapping):
    """One recurrent cell: the preset read in ``steps`` steps with ``n`` units
    (:func:`mfphys.rnn.tasks.mnist_protocol`), the other options set, then the first ``n_train``
    images with :func:`mfphys.rnn.config.with_n_train`'s mini-batches per epoch."""
    from .config import with_n_train
    from .tasks import mnist_protocol

    base = mnist_protocol(_rnn_base(opts["preset"]), int(opts["steps"]), int(opts["n"]))
    changes = {k: opts[k] for k in ("epochs", "batch_size", "mode", "replicas", "seed", "n_test", "eval_samples",
                                    "backend", "dtype") if k in opts}
    if opts.get("lr") is not None:
        lr = float(opts["lr"])
        changes["optimizer"] = dataclasses.replace(base.optimizer, lr_m=(lr,) * 3, lr_xi=(lr,) * 3, lr_pi=(lr,) * 3)
    cfg = dataclasses.replace(base, **changes)
    return with_n_train(cfg, int(opts["n_train"]))


def adaptive_steps(value: float, options: Mapping) -> tuple[int, dict]:
    """The step count nearest to ``value`` on a log scale among the divisors of the 784 pixels
    (an adaptive scan's temporal-depth axis, docs/scans.md "Adaptive scans")."""
    import math

    from .config import MNIST_PIXELS

    divisors = [d for d in range(1, MNIST_PIXELS + 1) if MNIST_PIXELS % d == 0]
    target = math.log(max(float(value), 1.0))
    steps = min(divisors, key=lambda d: (abs(math.log(d) - target), d))
    return steps, {"steps": steps}


def _rnn_check(config, opts: Mapping) -> None:
    config.validate()


def scan_architecture(fixed: Mapping, grid: Mapping) -> str:
    """A recurrent scan's label as its runs have it (``28-100-10 x28``, ``5-150-2``), from its
    preset with the options it fixes; a scanned number of steps is ``xT`` (and the input size it
    sets ``784/T``), a scanned number of units ``N``. ``""`` when the options do not say."""
    from .tasks import preset

    def one(k):
        value = fixed.get(k, grid.get(k))
        if isinstance(value, (list, tuple)):
            return value[0] if len(value) == 1 else None
        return value

    try:
        cfg = preset(str(one("preset") or "row_mnist"))
        for k in ("task", "n", "steps"):
            if one(k) is not None:
                cfg = dataclasses.replace(cfg, **{k: type(getattr(cfg, k))(one(k))})
        n_in, n_out = cfg.io
        steps_scanned = cfg.task == "mnist" and "steps" in grid and one("steps") is None
        n = "N" if "n" in grid and one("n") is None else str(cfg.n)
        label = f"{'784/T' if steps_scanned else n_in}-{n}-{n_out}"
        if cfg.task == "mnist":
            label += " xT" if steps_scanned else f" x{cfg.steps}"
        return label
    except (KeyError, TypeError, ValueError, MfphysError):  # an unknown preset, a bad value
        return ""
