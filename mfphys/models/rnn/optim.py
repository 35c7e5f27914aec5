"""Optimisers of the recurrent model: Adam or RMSprop with per-tensor settings, clipping, projection.

docs/model-rnn.md section 6. Every tensor (a parameter kind of one matrix) has its own learning
rate; the weight decay is either decoupled (added to the step, as in the feed-forward model,
docs/model.md section 4) or an L2 term added to the gradient; a gradient may be clipped to a
bound on its spectral norm, per matrix and per replica. After every step ``pi`` is clipped to
[0, 1], ``Xi`` to >= 0 (``mfphys.optim.BOUNDS``) and masked input connections are clamped again.

Settings are given in the reference scaling (``c = 1``). In the ``"fan_in"`` scaling a tensor
that is ``k`` times larger (``k = sqrt(n)`` for ``m``, ``n`` for ``Xi``, 1 for ``pi``) has a ``k``
times smaller gradient; it gets a ``k`` times larger learning rate, a ``k`` times smaller clip
bound and decoupled decay, a ``k^2`` times smaller L2 coefficient, and an ``eps`` scaled to
match, so both scalings follow the same trajectory (:func:`tensor_settings`).

optax-style: :func:`opt_init` builds the state, :func:`opt_update` applies one step. For speed
the update writes into the parameter arrays it is given; the gradients are scratch space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ... import kernels
from ...backend import namespace_of
from ...errors import MfphysError
from ...layers import BOUNDS, PARAM_NAMES, Layer
from .model import RnnParams, RnnSpec, clamp_masked

OPTIMIZERS = ("adam", "rmsprop")
DECAYS = ("decoupled", "l2")


@dataclass(frozen=True)
class OptConfig:
    """One optimiser protocol, in the reference scaling (docs/model-rnn.md section 6).

    ``lr_m``, ``lr_xi``, ``lr_pi``: learning rates of the input, recurrent and output matrices.
    ``b2`` is the decay of the squared-gradient average (Adam's beta2, RMSprop's beta).
    ``decay`` ``"decoupled"`` subtracts ``lr * weight_decay * theta``; ``"l2"`` adds
    ``weight_decay * theta`` to the gradient; either only on the kinds in ``decay_on``.
    ``clip``: bound on each gradient's spectral norm (``None``: no clipping). The learning rates
    of the kinds in ``halve_on`` are halved every ``halve_every`` epochs (0: constant).
    """

    name: str = "adam"
    lr_m: tuple = (1e-3, 1e-3, 1e-3)
    lr_xi: tuple = (1e-3, 1e-3, 1e-3)
    lr_pi: tuple = (1e-3, 1e-3, 1e-3)
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-4
    decay: str = "decoupled"
    decay_on: tuple = ("m", "xi")
    clip: float | None = 10.0
    halve_every: int = 40
    halve_on: tuple = ("pi", "m", "xi")

    def __post_init__(self):
        for name in ("lr_m", "lr_xi", "lr_pi", "decay_on", "halve_on"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.name not in OPTIMIZERS:
            raise MfphysError(f"unknown optimizer {self.name!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.decay not in DECAYS:
            raise MfphysError(f"unknown decay {self.decay!r}: choose one of {', '.join(DECAYS)}")
        for name in ("lr_m", "lr_xi", "lr_pi"):
            v = getattr(self, name)
            if len(v) != 3 or not all(math.isfinite(a) and a >= 0 for a in v):
                raise MfphysError(f"{name} takes three learning rates >= 0 (input, recurrent, output), got {v}")
        for name in ("decay_on", "halve_on"):
            if not set(getattr(self, name)) <= set(PARAM_NAMES):
                raise MfphysError(f"{name} takes names among pi,m,xi, got {getattr(self, name)}")
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1 and self.eps > 0 and self.weight_decay >= 0):
            raise MfphysError("optimizer settings out of range: need 0 <= b1, b2 < 1, eps > 0, weight_decay >= 0")
        if self.clip is not None and not self.clip > 0:
            raise MfphysError(f"clip must be a positive bound or None, got {self.clip}")
        if self.halve_every < 0:
            raise MfphysError(f"halve_every must be >= 0 (0 = constant), got {self.halve_every}")

    def lr_factor(self, epoch: int, kind: str) -> float:
        """The schedule's factor at ``epoch`` (1-based): halved at epochs ``halve_every``, ``2 halve_every``, ...

        (the reference protocols' ``0.5 ** (epoch // halve_every)``)."""
        if self.halve_every <= 0 or kind not in self.halve_on:
            return 1.0
        return 0.5 ** (epoch // self.halve_every)


class TensorSettings(NamedTuple):
    """The settings of one tensor in the model's own scaling."""

    lr: float
    decay: float  # decoupled decay or L2 coefficient (0 where the kind is not decayed)
    clip: float | None
    eps: float


def tensor_settings(cfg: OptConfig, spec: RnnSpec) -> tuple[dict, ...]:
    """Per matrix, ``kind -> TensorSettings`` in ``spec.scaling`` (docs/model-rnn.md section 6).

    A tensor ``k`` times larger than in the reference scaling (``k = sqrt(n)`` for ``m``, ``n``
    for ``Xi``) moves ``k`` times further per step and has a ``k`` times smaller gradient. Adam and
    RMSprop steps do not see the gradient's size, so ``lr`` scales by ``k``; the clip bound on the
    gradient by ``1/k``; a decoupled decay by ``1/k`` (``lr * decay`` unchanged); an L2
    coefficient by ``1/k^2``; ``eps`` like the denominator it is added to.
    """
    out = []
    for j, n in enumerate(spec.n_eff):
        per = {}
        for kind, lrs in (("pi", cfg.lr_pi), ("m", cfg.lr_m), ("xi", cfg.lr_xi)):
            k = {"pi": 1.0, "m": math.sqrt(n), "xi": float(n)}[kind]
            decay = cfg.weight_decay if kind in cfg.decay_on else 0.0
            decay = decay / k if cfg.decay == "decoupled" else decay / (k * k)
            eps = cfg.eps / k if cfg.name == "adam" else cfg.eps / (k * k)  # RMSprop: eps inside the root
            per[kind] = TensorSettings(lrs[j] * k, decay, None if cfg.clip is None else cfg.clip / k, eps)
        out.append(per)
    return tuple(out)


class OptState(NamedTuple):
    count: int
    mu: RnnParams  # first moments (Adam; None for RMSprop and frozen kinds)
    nu: RnnParams  # averages of squared gradients (None for frozen kinds)


def opt_init(params: RnnParams, cfg: OptConfig, trainable) -> OptState:
    """Zero moments for every trained tensor; ``trainable`` per matrix, as ``RnnSpec.trainable``."""

    def zeros(layer, kinds, needed=True):
        return Layer(*(namespace_of(layer.m).zeros_like(getattr(layer, k)) if (needed and k in kinds) else None
                       for k in PARAM_NAMES))

    mu = RnnParams(*(zeros(l, kinds, cfg.name == "adam") for l, kinds in zip(params, trainable)))
    nu = RnnParams(*(zeros(l, kinds) for l, kinds in zip(params, trainable)))
    return OptState(0, mu, nu)


def spectral_norm(g):
    """Largest singular value of each matrix of a stack ``(R, a, b)`` -> ``(R,)``."""
    xp = namespace_of(g)
    return xp.linalg.svd(g, compute_uv=False)[..., 0]


#: squarings of ``g^T g`` in :func:`spectral_norm_estimate`: components of eigenvalues below
#: ``(1 - d) lambda_max`` are damped by ``(1 - d)^(2^SQUARINGS)``
SQUARINGS = 12


def spectral_norm_estimate(g, squarings: int = SQUARINGS):
    """Largest singular value of each matrix of ``g`` (R, a, b) -> (R,), in float64, without a host sync.

    On a GPU the exact :func:`spectral_norm` is a per-matrix cuSOLVER loop for matrices over
    32 x 32, and deciding when it is needed is a host round trip. Here: ``A = g^T g`` (the smaller
    side), squared ``squarings`` times (each rescaled by its trace), so that ``A^(2^k)`` is
    nearly the projector on the top eigenvector; its largest column ``v`` gives the Rayleigh
    quotient ``||g v|| / ||v||``, which never exceeds ``||g||_2`` and reaches it to rounding
    unless the top singular values are within a fraction ``~2^-k`` of each other (then it is
    off by at most that fraction of their gap). Batched products only: a fixed number of kernels.
    """
    xp = namespace_of(g)
    g = g.astype(xp.float64)
    if g.shape[-2] < g.shape[-1]:
        g = xp.swapaxes(g, -1, -2)  # (R, a, b) with b <= a: A is b x b
    A = xp.matmul(xp.swapaxes(g, -1, -2), g)
    for _ in range(squarings):
        tr = xp.trace(A, axis1=-2, axis2=-1)
        A = A / xp.where(tr > 0, tr, 1)[:, None, None]
        A = xp.matmul(A, A)
    col = xp.argmax((A * A).sum(axis=-2), axis=-1)  # the largest column of A^(2^k)
    v = xp.take_along_axis(A, col[:, None, None], axis=-1)  # (R, b, 1)
    gv = xp.matmul(g, v)
    num, den = (gv * gv).sum(axis=(-2, -1)), (v * v).sum(axis=(-2, -1))
    return xp.sqrt(num / xp.where(den > 0, den, 1))


def clip_spectral(g, bound: float):
    """Scale each matrix of ``g`` (R, a, b) in place so that its spectral norm is at most ``bound``.

    NumPy: the exact norm (the reference, replayed against the reference code). The Frobenius
    norm bounds the spectral norm from above, so the singular values are computed only where
    the Frobenius norm reaches the bound (rare: it keeps the step cheap). On a GPU: the batched
    :func:`spectral_norm_estimate` for every matrix and a select, so that the step never waits
    for the device (docs/model-rnn.md section 6, "Gradient clipping").
    """
    xp = namespace_of(g)
    if xp is not np:
        sigma = spectral_norm_estimate(g)
        scale = xp.where(sigma >= bound, bound / xp.where(sigma > 0, sigma, 1), 1).astype(g.dtype)
        g *= scale[:, None, None]
        return g
    fro = xp.sqrt((g * g).sum(axis=(-2, -1)))
    big = fro >= bound
    if not bool(big.any()):
        return g
    sigma = xp.where(big, spectral_norm(g), 0)
    scale = xp.where(sigma >= bound, bound / xp.where(sigma > 0, sigma, 1), 1).astype(g.dtype)
    g *= scale[:, None, None]
    return g


def clip_spectral_together(gs, bounds) -> None:
    """:func:`clip_spectral` of several same-shaped gradients (the kinds of one matrix) in place,
    with one batched :func:`spectral_norm_estimate` on a GPU: a third of the kernel launches of
    clipping them one by one. On NumPy each is clipped exactly, one by one."""
    xp = namespace_of(*gs)
    if xp is np or len({g.shape for g in gs}) > 1:
        for g, bound in zip(gs, bounds):
            clip_spectral(g, bound)
        return
    R = gs[0].shape[0]
    sigma = spectral_norm_estimate(xp.concatenate(gs, axis=0))
    for i, (g, bound) in enumerate(zip(gs, bounds)):
        s = sigma[i * R:(i + 1) * R]
        g *= xp.where(s >= bound, bound / xp.where(s > 0, s, 1), 1).astype(g.dtype)[:, None, None]


def rmsprop_leaf(theta, g, nu, *, lr, b2, eps, lo=-math.inf, hi=math.inf):
    """``nu = b2 nu + (1 - b2) g^2``, ``theta -= lr g / sqrt(nu + eps)``, clip to [lo, hi]; in place."""
    xp = namespace_of(theta)
    nu *= b2
    nu += (1 - b2) * g * g
    denom = nu + eps
    xp.sqrt(denom, out=denom)
    g /= denom
    g *= lr
    theta -= g
    if lo > -math.inf or hi < math.inf:
        xp.clip(theta, lo, hi, out=theta)


def opt_update(grads: RnnParams, state: OptState, params: RnnParams, *, cfg: OptConfig, settings,
               lr_scale=None, input_mask=None):
    """One step for every tensor whose gradient is not ``None``; then the projection and the mask.

    ``settings`` from :func:`tensor_settings`; ``lr_scale`` maps a kind to the schedule's factor
    (``OptConfig.lr_factor``). Order per tensor: clip the loss gradient, add the L2 term, step,
    project. Updates ``params`` and ``state`` in place and returns them.
    """
    count = state.count + 1
    c1, c2 = 1 - cfg.b1**count, 1 - cfg.b2**count
    for layer, g, mu, nu, per in zip(params, grads, state.mu, state.nu, settings):
        clipped = [k for k in PARAM_NAMES if getattr(g, k) is not None and per[k].clip is not None]
        if clipped:  # the kinds are independent: clipping them first, together, changes nothing
            clip_spectral_together([getattr(g, k) for k in clipped], [per[k].clip for k in clipped])
        for kind in PARAM_NAMES:
            gk = getattr(g, kind)
            if gk is None:
                continue
            s = per[kind]
            theta = getattr(layer, kind)
            lr = s.lr * (1.0 if lr_scale is None else lr_scale[kind])
            if cfg.decay == "l2" and s.decay:
                gk += s.decay * theta
            if cfg.name == "adam":
                # Adam + decoupled decay + projection: the feed-forward model's fused step
                kernels.adam_leaf(theta, gk, getattr(mu, kind), getattr(nu, kind), lr=lr, c1=c1, c2=c2, b1=cfg.b1,
                                  b2=cfg.b2, eps=s.eps, wd=s.decay if cfg.decay == "decoupled" else 0.0,
                                  **BOUNDS[kind])
            else:
                rmsprop_leaf(theta, gk, getattr(nu, kind), lr=lr, b2=cfg.b2, eps=s.eps, **BOUNDS[kind])
    clamp_masked(params, input_mask)
    return params, OptState(count, state.mu, state.nu)

