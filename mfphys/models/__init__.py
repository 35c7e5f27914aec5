"""The model families, one folder each (docs/design.md "Adding a model family").

``ffn``: the paper's feed-forward network (docs/model.md); ``rnn``: the recurrent follow-up
(docs/model-rnn.md). Each folder holds the family's numerics, training steps, run-file schema,
budget, scan options, perturbation and experiments, and its :class:`mfphys.family.ModelFamily`
object in ``family.py``; the registry (:mod:`mfphys.registry`) finds them.
"""
