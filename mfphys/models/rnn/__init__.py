"""The spike-and-slab recurrent network (docs/model-rnn.md): a second model family.

Every input, recurrent and output connection is a spike-and-slab variable as in the
feed-forward model; the ensemble is trained by backprop through time through the mean-field
dynamics. Modules, in import order: ``model`` (dynamics, losses, BPTT), ``noise``, ``optim``,
``config``, ``tasks`` (sequential MNIST, multisensory integration, the reference presets),
``evaluate`` (mean-field and sampled networks), ``train`` (the loop)::

    from mfphys.rnn import preset, train_rnn
    import dataclasses
    result = train_rnn(dataclasses.replace(preset("row_mnist"), epochs=5, replicas=2))
    print(result.history["test_acc"][:, -1], result.evaluation["acc_quenched"].mean())
"""

from __future__ import annotations

from .config import RnnConfig
from .model import MATRICES, MatrixInit, Noise, RnnParams, RnnSpec
from .optim import OptConfig
from .tasks import PRESETS, Multisensory, preset
from .train import RnnEpoch, RnnResult, train_rnn

__all__ = ["MATRICES", "PRESETS", "MatrixInit", "Multisensory", "Noise", "OptConfig", "RnnConfig", "RnnEpoch",
           "RnnParams", "RnnResult", "RnnSpec", "preset", "train_rnn"]
