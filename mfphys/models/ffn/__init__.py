"""The paper's feed-forward spike-and-slab network (docs/model.md): one model family.

Modules, in import order: ``model`` (mean-field forward pass, gBP backward pass, sampling),
``optim`` (Adam with decay and projection), ``train`` (:class:`~.train.TrainConfig`, the run as
steps on a state, :func:`~.train.train`), ``store`` (its run file), ``budget`` (memory, disk,
time), ``perturb`` (targeted perturbation), ``reproduce`` (the paper's experiments), ``scan``
(its scan options), ``family`` (the :class:`mfphys.family.ModelFamily` object the registry finds).
"""
