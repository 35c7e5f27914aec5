"""The feed-forward family (``model`` "ffn", or no attribute): per layer, layer 1 over live inputs."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.run import live_note
from .generic import FamilyPanels


@dataclass(frozen=True)
class FeedForwardPanels(FamilyPanels):
    def order_note(self, run, inputs: str, diagonal: bool) -> str:
        return live_note(run, inputs, diagonal)


FFN = FeedForwardPanels(name="ffn", part_dim="layer", live_inputs=True, from_output=True)
