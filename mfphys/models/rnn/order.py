"""Order parameters of a recurrent ensemble, per matrix (docs/model-rnn.md section 9).

The feed-forward formulas of docs/model.md section 6 (:mod:`mfphys.order`) applied to each of
the input, recurrent and output matrices, which are :class:`mfphys.model.Layer` arrays like a
feed-forward layer: one formula for both model families. The recurrent diagonal (the
self-connections) is special: the MNIST presets start it at the identity (docs/model-rnn.md
section 7), so its connections start with ``m = 1`` while the rest start at 0; the
``nodiag`` entries count the recurrent matrix without it (the other matrices unchanged).
"""

from __future__ import annotations

import numpy as np

from ... import order
from ...backend import to_host
from .model import MATRICES

#: the label of the entries that leave out the recurrent diagonal
NODIAG = "nodiag"
#: index of the recurrent matrix in :data:`mfphys.rnn.model.MATRICES`
RECURRENT = MATRICES.index("recurrent")


def offdiagonal(n: int) -> np.ndarray:
    """(n, n) bool: every connection of the recurrent matrix but the self-connections."""
    return ~np.eye(n, dtype=bool)


def matrix_reports(params, *, tol: float = order.TOL, xi_tol: float = order.XI_TOL, xi_zero: float = order.XI_ZERO):
    """What ``mfphys order`` shows for a recurrent run: ``(matrix, connections, values)`` entries.

    ``connections`` is ``"all"`` for each of the three matrices, and ``"nodiag"`` for a fourth
    entry: the recurrent matrix without its diagonal. ``values`` are those of
    :func:`mfphys.order.layer_reports` (the :func:`mfphys.order.layer_order` names and the
    ``_exact`` categories), each (R,).
    """
    reports = order.layer_reports(params, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero)
    out = [(MATRICES[l - 1], "all", values) for l, _, values in reports]
    rec = params[RECURRENT]
    nodiag = order.layer_reports((rec,), live_inputs=offdiagonal(rec.m.shape[-1]), tol=tol, xi_tol=xi_tol,
                                 xi_zero=xi_zero)
    out.append(("recurrent", NODIAG, next(v for _, inputs, v in nodiag if inputs == "live")))
    return out


def matrix_order(params, *, tol: float = order.TOL, xi_tol: float = order.XI_TOL, xi_zero: float = order.XI_ZERO):
    """Order parameters of every matrix: name -> (R, 3) arrays (input, recurrent, output).

    Every :func:`matrix_reports` name, and ``<name>_nodiag`` with the recurrent column over the
    off-diagonal connections (the input and output columns unchanged), as the feed-forward
    ``<name>_live`` variables treat layer 1 (docs/file-format.md). Host arrays, whichever
    backend ``params`` live on.
    """
    reports = matrix_reports(params, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero)
    full = [v for _, c, v in reports if c == "all"]
    nodiag = next(v for _, c, v in reports if c == NODIAG)
    out = {k: np.stack([to_host(v[k]) for v in full], axis=-1) for k in full[0]}
    for k in full[0]:
        cols = [to_host(v[k]) for v in full]
        cols[RECURRENT] = to_host(nodiag[k])
        out[f"{k}_{NODIAG}"] = np.stack(cols, axis=-1)
    return out
