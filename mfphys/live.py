"""Live-input order parameters: which variable to read, and whole-network means that count them.

Inputs that never vary over the training set (about 111 MNIST pixels) keep their initial
layer-1 connections, which count as *variable* with a large negative slab entropy
(docs/order-parameters.md, dead inputs). Run files therefore carry ``<name>_live`` variables,
in which layer 1 counts only the connections from live inputs (deeper layers are unchanged),
and summaries should use them. These are the pure helpers the front ends share for that: no
file is read here.
"""

from __future__ import annotations

import numpy as np

LIVE_SUFFIX = "_live"


def live_name(name: str, available) -> str:
    """``<name>_live`` when ``available`` (variable names) has it, else ``name``.

    The ``_exact`` categories have no live variant (``mfphys.order.run_order``), so they are
    returned as they are.
    """
    live = name + LIVE_SUFFIX
    return live if live in available else name


def layer_connections(widths, n_live_inputs=None) -> np.ndarray:
    """Connections of each layer, ``N_{l-1} N_l`` for widths ``(N_0, ..., N_L)``, as floats.

    With ``n_live_inputs``, layer 1 counts only the connections from live inputs
    (``n_live_inputs * N_1``): the weights of a whole-network mean of ``_live`` variables.
    """
    w = np.asarray(widths, dtype=float)
    out = w[:-1] * w[1:]
    if n_live_inputs is not None and out.size:
        out[0] = float(n_live_inputs) * w[1]
    return out


def network_mean(values, connections, axis: int = -1) -> np.ndarray:
    """A per-layer quantity averaged over the whole network, weighted by ``connections``.

    ``values`` has the layers along ``axis`` (e.g. ``(replica, layer)``), ``connections`` one
    weight per layer; layers whose value is NaN drop out, and a slice without any value is NaN.
    The NumPy twin of ``mfphys.scan.network_mean`` (which works on a scan's xarray view).
    """
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    w = np.broadcast_to(np.asarray(connections, dtype=float), v.shape)
    ok = np.isfinite(v) & np.isfinite(w)
    total = np.where(ok, w, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.where(ok, v * w, 0.0).sum(axis=-1) / np.where(total > 0, total, 1.0), np.nan)
