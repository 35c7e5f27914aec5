"""The feed-forward family's scan options: the grid depth x data size and every TrainConfig
option (docs/scans.md), one cell's configuration and check, and a scan's architecture label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...errors import MfphysError
from ...family import option_kind
from ...layers import architecture
from .train import TrainConfig

#: options that are not TrainConfig fields: the architecture (input_dim, width, ..., 10) as depth x width
ARCH_OPTIONS = {"depth": "int", "width": "int", "input_dim": "int"}
ARCH_DEFAULTS = {"width": 100, "input_dim": 784}
#: every data set mfphys knows (MNIST, Fashion-MNIST, teacher) has 10 classes
N_CLASSES = 10
#: TrainConfig fields a scan does not take as options: layers is built from depth and width
NOT_OPTIONS = ("layers",)
#: options that can only be held fixed: replicas is the replica axis; decay_on is a list itself
NOT_SCANNABLE = ("replicas", "decay_on")
#: always grid dimensions, in this order, even with a single value (the depth x data-size plane)
ALWAYS_SCANNED = ("depth", "n_train")

_TRAIN_DEFAULTS = {f.name: getattr(TrainConfig(), f.name) for f in dataclasses.fields(TrainConfig)
                   if f.name not in NOT_OPTIONS}
#: option name -> kind (int, float, str, bool, tuple; "int?" may be None = all)
OPTIONS = {**ARCH_OPTIONS, **{k: option_kind(v) for k, v in _TRAIN_DEFAULTS.items()}, "n_test": "int?"}
DEFAULTS = {**ARCH_DEFAULTS, **_TRAIN_DEFAULTS}

def layers_of(options: Mapping[str, Any]) -> tuple[int, ...]:
    """Layer widths ``(N0,) + (width,) * depth + (10,)`` of a cell (docs/model.md section 2)."""
    return (int(options["input_dim"]),) + (int(options["width"]),) * int(options["depth"]) + (N_CLASSES,)


def adaptive_alpha(value: float, options: Mapping) -> tuple[float, dict]:
    """The cell nearest to the load ``alpha = P / N0`` (an adaptive scan's axis, docs/scans.md
    "Adaptive scans"): ``n_train`` the nearest integer P, at least 1, and the alpha it really is."""
    n0 = int(options.get("input_dim", ARCH_DEFAULTS["input_dim"]))
    n_train = max(1, int(round(float(value) * n0)))
    return n_train / n0, {"n_train": n_train}


def _ffn_config(opts: Mapping) -> TrainConfig:
    train_opts = {k: v for k, v in opts.items() if k in _TRAIN_DEFAULTS}
    return TrainConfig(**train_opts, layers=layers_of(opts))


def _ffn_check(config: TrainConfig, opts: Mapping) -> None:
    if int(opts["depth"]) < 0:
        raise MfphysError("depth (the number of hidden layers) must be >= 0")
    for k in ("width", "input_dim"):
        if opts[k] <= 0:
            raise MfphysError(f"{k} must be positive, got {opts[k]}")
    config.validate()
    if config.batch_size > config.n_train:
        raise MfphysError(f"--batch-size {config.batch_size} is larger than n_train {config.n_train}")
    if config.dataset != "teacher" and config.layers[0] != 784:
        raise MfphysError(f"{config.dataset} images have 784 pixels: drop --input-dim {config.layers[0]} "
                          "(it is for --dataset teacher)")


#: the options that make a cell's layer widths (:func:`mfphys.scan.layers_of`, docs/model.md section 2)
_ARCH = ("input_dim", "width", "depth")
#: how :func:`scan_architecture` writes an architecture option that takes several values
SYMBOLS = {"input_dim": "N0", "width": "W", "depth": "d"}


def scan_architecture(fixed: Mapping, grid: Mapping) -> str:
    """The architecture label of a scan from its ``scan.json`` (``grid`` and ``fixed`` options).

    When input size, width and depth have one value each, the label of the cells' layer widths
    (:func:`mfphys.model.architecture` of :func:`mfphys.scan.layers_of`): ``784-100-100-10``.
    When the depth is scanned, ``784-100xd-10`` (hidden width x the scanned depth d), with
    ``N0`` or ``W`` in place of a scanned input size or width. Options missing from both take
    :data:`mfphys.scan.ARCH_DEFAULTS`. ``""`` for a scan.json that does not say.
    """
    options, scanned = {}, set()
    for k in _ARCH:
        value = fixed.get(k, grid.get(k, ARCH_DEFAULTS.get(k)))
        if isinstance(value, (list, tuple)):
            if len(value) == 1:
                value = value[0]
            else:
                scanned.add(k)
        options[k] = value
    try:
        if not scanned:
            return architecture(layers_of(options))
        if "depth" not in scanned:  # input size or width scanned at a fixed depth: one symbol per layer
            hidden = [str(SYMBOLS["width"] if "width" in scanned else int(options["width"]))] * int(options["depth"])
        else:
            hidden = [f"{SYMBOLS['width'] if 'width' in scanned else int(options['width'])}xd"]
        first = SYMBOLS["input_dim"] if "input_dim" in scanned else str(int(options["input_dim"]))
        return "-".join([first, *hidden, str(N_CLASSES)])
    except (KeyError, TypeError, ValueError):
        return ""
