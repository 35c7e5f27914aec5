"""Adam with the reference implementation's weight decay, and the hard projection.

docs/model.md section 4: ``theta -= lr * (adam_step + weight_decay * theta)`` with the usual
bias-corrected Adam step (Kingma & Ba, Algorithm 1; beta1 0.9, beta2 0.999, eps 1e-8),
then ``pi`` is clipped to [0, 1] and ``Xi`` to >= 0. The projection is what puts many
connections exactly on the boundaries (the categories of docs/model.md section 6).

optax-style: :func:`adam_init` builds the state, :func:`adam_update` returns new
parameters and state. For speed the update writes into the arrays it is given (the
training loop owns them); callers that need the old values must copy them first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ... import kernels
from ...layers import BOUNDS, PARAM_NAMES, Layer


@dataclass(frozen=True)
class AdamConfig:
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-4
    #: which parameter kinds get the weight decay: ("m", "xi") as in the paper's 2020
    #: code, all three in its later revision (docs/model.md section 4)
    decay_on: tuple = ("m", "xi")


class AdamState(NamedTuple):
    count: int  # a tuple of one per packed configuration in a packed run (adam_update_groups)
    mu: tuple  # first moments, one Layer per layer (None where a kind is frozen)
    nu: tuple  # second moments


def adam_init(params, *, trainable=PARAM_NAMES) -> AdamState:
    """Zero moments for every trainable parameter array."""

    def zeros(layer):
        xp_zeros = [None if k not in trainable else _zeros_like(getattr(layer, k)) for k in PARAM_NAMES]
        return Layer(*xp_zeros)

    return AdamState(0, tuple(zeros(l) for l in params), tuple(zeros(l) for l in params))


def adam_reset(state: AdamState) -> AdamState:
    """The state of a fresh start: moments zeroed (in place) and the step counter back to 0
    (each packed configuration's, where there is one per configuration).

    The paper's 2020 code rebuilt its optimizer at the start of every epoch, which is this
    (docs/model.md section 4, ``adam_reset = "epoch"``); its later revision never resets.
    """
    for layer in (*state.mu, *state.nu):
        for a in layer:
            if a is not None:
                a[...] = 0
    return AdamState((0,) * len(state.count) if isinstance(state.count, tuple) else 0, state.mu, state.nu)


def _zeros_like(a):
    z = a.copy()
    z[...] = 0
    return z


def _adam_step(grads, state: AdamState, params, *, count: int, lr: float, cfg: AdamConfig, part=slice(None)):
    """Step ``count`` of Adam + decay, then the projection, on replicas ``part`` of every array
    whose gradient is not ``None`` (in place)."""
    c1 = 1 - cfg.b1**count
    c2 = 1 - cfg.b2**count
    for layer, g, mu, nu in zip(params, grads, state.mu, state.nu):
        for k in PARAM_NAMES:
            gk = getattr(g, k)
            if gk is None:
                continue
            # the projection of docs/model.md section 4 is fused into the step
            kernels.adam_leaf(getattr(layer, k)[part], gk[part], getattr(mu, k)[part], getattr(nu, k)[part], lr=lr,
                              c1=c1, c2=c2, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                              wd=cfg.weight_decay if k in cfg.decay_on else 0.0, **BOUNDS[k])


def adam_update(grads, state: AdamState, params, *, lr: float, cfg: AdamConfig = AdamConfig()):
    """Adam + decay step, then the projection, for every array whose gradient is not ``None``.

    Updates ``params`` and the state's moments in place and returns them. The gradients are
    used as scratch space.
    """
    count = state.count + 1
    _adam_step(grads, state, params, count=count, lr=lr, cfg=cfg)
    return params, AdamState(count, state.mu, state.nu)


def adam_update_groups(grads, state: AdamState, params, *, groups, lrs, cfgs):
    """:func:`adam_update` for packed configurations (``mfphys.train.train_packed``): replicas
    ``a:b`` of ``groups[i]`` take learning rate ``lrs[i]`` and decay ``cfgs[i]``, each slice updated
    exactly as :func:`adam_update` updates a run of its own. ``state.count`` is one step counter
    (the groups take their steps together) or a tuple of one per group (packed configurations
    with different training sets take different numbers of steps per epoch); the counter(s) come
    back the same way."""
    one = not isinstance(state.count, tuple)
    counts = tuple(state.count + 1 for _ in groups) if one else tuple(c + 1 for c in state.count)
    for (a, b), lr, cfg, count in zip(groups, lrs, cfgs, counts):
        _adam_step(grads, state, params, count=count, lr=lr, cfg=cfg, part=slice(a, b))
    return params, AdamState(state.count + 1 if one else counts, state.mu, state.nu)
