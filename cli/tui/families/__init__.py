"""What the TUI draws differently per model family, behind one lookup: :func:`panels_for`.

A run file names its family in its ``model`` attribute (none: ``ffn``), a scan in scan.json's
``model`` key. Each family's :class:`~.generic.FamilyPanels` says which dimension indexes its
weight matrices, which choices its views offer (live inputs, a matrix without its diagonal,
layers counted from the output), which panels it adds to the run view, and what its header's
accuracy line and order-table note say. A family without a module here gets the generic panels
under its own name: the learning curves and the order-parameter table per weight matrix, along
whatever ``layer`` or ``matrix`` dimension its files have (with trajectories and histograms
where they have them), and no family-specific choice or panel.
"""

from __future__ import annotations

import dataclasses

from .ffn import FFN
from .generic import GENERIC, FamilyPanels
from .rnn import RNN

#: the families with panels of their own, by their ``model`` name
FAMILIES = {p.name: p for p in (FFN, RNN)}

__all__ = ["FAMILIES", "GENERIC", "FamilyPanels", "panels_for"]


def panels_for(model: str | None) -> FamilyPanels:
    """The panels of the family ``model`` (``""`` or None: a feed-forward file without the attribute)."""
    name = model or "ffn"
    if name in FAMILIES:
        return FAMILIES[name]
    return dataclasses.replace(GENERIC, name=name, tag=name)  # its name in headings and the sidebar
