"""The spike-and-slab layer every model family is built of, and the pieces all families share.

Symbols follow docs/model.md (stated once here, used everywhere):

=========  ==========================================================================
code       meaning (docs/model.md section)
=========  ==========================================================================
``pi``     probability that a connection is absent (spike at 0), in [0, 1]      (1)
``m``      mean of the Gaussian slab                                             (1)
``xi``     variance ``Xi`` of the slab, >= 0                                     (1)
``mu``     weight mean ``(1 - pi) m``                                            (1)
``var``    weight variance ``(1 - pi) Xi + pi (1 - pi) m^2``                     (1)
``G``      mean of the pre-activation ``h`` (``mu @ a / sqrt(n)``)               (2)
``Delta``  variance of ``h`` (``var @ a^2 / n``); ``s = sqrt(Delta)``            (2)
``eps``    the standard-normal noise of ``h = G + s eps``, fixed in the backward (3)
``delta``  ``dLoss/dh`` for the mini-batch-mean cross-entropy                   (3)
=========  ==========================================================================

Shapes: every parameter array of a weight matrix is ``(R, N_out, N_in)`` with a leading
replica axis ``R``. Part of the shared core: it names no model family. All functions are pure
and take/return plain ``xp`` arrays (NumPy or CuPy); the namespace is taken from the arguments.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .backend import namespace_of

#: the three parameters of a spike-and-slab connection, in the order of :class:`Layer`
PARAM_NAMES = ("pi", "m", "xi")
#: the hard projection of docs/model.md section 4: pi in [0, 1], Xi >= 0
BOUNDS = {"pi": {"lo": 0.0, "hi": 1.0}, "m": {}, "xi": {"lo": 0.0}}


def architecture(layers) -> str:
    """The architecture label of layer widths, input first: (784, 100, 10) -> ``784-100-10``."""
    return "-".join(str(int(n)) for n in layers)


class Layer(NamedTuple):
    """Spike-and-slab parameters of one layer, each ``(R, N_out, N_in)``."""

    pi: object
    m: object
    xi: object


Params = tuple  # tuple[Layer, ...], input layer first


# --- moments (the one place mu and var are computed) ----------------------------------------


def moments(pi, m, xi):
    """Weight mean and variance of the spike-and-slab distribution (docs/model.md section 1)."""
    q = 1 - pi
    return q * m, q * (xi + pi * m * m)


def onehot(y, n_classes: int, dtype):
    """One-hot encoding of integer labels ``y`` (any leading shape)."""
    xp = namespace_of(y)
    return (y[..., None] == xp.arange(n_classes)).astype(dtype)


def log_softmax(z):
    xp = namespace_of(z)
    z = z - z.max(axis=-1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy(logits, y):
    """Per-replica mean cross-entropy and softmax probabilities; ``y`` (R, B) ints."""
    logp = log_softmax(logits)
    oh = onehot(y, logits.shape[-1], logits.dtype)
    loss = -(oh * logp).sum(axis=-1).mean(axis=-1)
    return loss, namespace_of(logits).exp(logp), oh


def sample_weights(params: Params, rngs, n_draws: int, xp=np):
    """Concrete weights ``w ~ pi delta(w) + (1 - pi) Normal(m, Xi)`` (docs/model.md section 5).

    ``params`` are host (NumPy) arrays; ``rngs`` one NumPy Generator per replica, so the
    draws do not depend on the backend. Returns one (R, K, N_out, N_in) array per layer in
    ``xp``.
    """
    out = []
    for layer in params:
        pi, m, xi = (np.asarray(v) for v in layer)
        ws = []
        for r, rng in enumerate(rngs):
            shape = (n_draws,) + pi.shape[1:]
            present = rng.random(shape) >= pi[r]
            z = rng.standard_normal(shape)
            ws.append(present * (m[r] + np.sqrt(xi[r]) * z))
        out.append(xp.asarray(np.stack(ws).astype(pi.dtype)))
    return tuple(out)


def sample_weights_on_device(params: Params, rngs, n_draws: int):
    """:func:`sample_weights` drawn where ``params`` live, from one device generator per replica
    (``Backend.device_rng``: ``random_sample`` and ``standard_normal`` with a ``dtype``), in the
    parameters' dtype: no host draw and no copy (docs/gpu.md). Other numbers than the host
    draws of the same seeds, from the same law."""
    from .backend import namespace_of

    out = []
    for layer in params:
        pi, m, xi = layer
        xp = namespace_of(m)
        shape = (n_draws,) + tuple(pi.shape[1:])
        ws = []
        for r, rng in enumerate(rngs):
            present = rng.random_sample(shape, dtype=m.dtype) >= pi[r]
            w = rng.standard_normal(shape, dtype=m.dtype)
            w *= xp.sqrt(xi[r])
            w += m[r]
            w *= present
            ws.append(w)
        out.append(xp.stack(ws))
    return tuple(out)


def vote_counts(logits):
    """Votes of the K sub-networks for each class: (R, K, P, C) -> (R, P, C) integer counts.

    Counts add over blocks of draws, so a vote over many draws can be taken block by block."""
    pred = logits.argmax(axis=-1)  # (R, K, P)
    return onehot(pred, logits.shape[-1], np.int32).sum(axis=-3)


def vote(logits):
    """Majority vote of the K sub-networks' predicted labels: (R, K, P, C) -> (R, P)."""
    return vote_counts(logits).argmax(axis=-1)
