"""The order parameters recorded while a run trains (docs/file-format.md, "Dynamics"): shared by
every model family, so that a run file's ``dyn_*`` and ``snap_*`` variables mean the same in each.

Part of the shared core: it names no model family.
"""

from __future__ import annotations

from typing import NamedTuple

from .order import snapshot_epochs

#: the order parameters are recorded every this many epochs (and at epoch 0 and the last);
#: its cost at this default is measured in bench/README.md ("Checkpoints and dynamics")
DYNAMICS_EVERY = 5


class Dynamics(NamedTuple):
    """The order parameters recorded during training (docs/file-format.md, "Dynamics").

    ``samples[i]`` maps every name of :func:`mfphys.order.training_order` to its (R, M)
    values after epoch ``epochs[i]`` (0: the initial parameters); ``snaps[i]`` holds the
    histograms ``hist_pi``, ``hist_m``, ``hist_xi`` (R, M, bins) and their edges ``pi_edges``,
    ``m_edges``, ``xi_edges`` (bins + 1,) after epoch ``snap_epochs[i]``. Host arrays.
    """

    epochs: tuple = ()
    samples: tuple = ()
    snap_epochs: tuple = ()
    snaps: tuple = ()


def dynamics_due(epoch: int, epochs: int, every: int) -> bool:
    """Whether the order parameters are recorded after ``epoch`` of ``epochs``: every ``every``
    epochs (0: not by count) and at the log-spaced snapshot epochs 0, 1, 2, 5, 10, 20, 50, ...
    and the last (:func:`mfphys.order.snapshot_epochs`), where the categories change fastest."""
    return (every > 0 and epoch % every == 0) or epoch in snapshot_epochs(epochs)
