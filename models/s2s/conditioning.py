"""Speaker and emotion conditioning: one vector per utterance, added to a model's inputs.

A speaker is either one of the named voices (an index into a learned table) or a zero-shot
speaker embedding (from `models.speaker`, computed on reference audio) mapped into the same
space by a linear layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.config import S2SConfig


class Conditioning(nn.Module):
    """speaker (+) emotion -> a (batch, dim) vector."""

    def __init__(self, config: S2SConfig, dim: int) -> None:
        super().__init__()
        self.speakers = nn.Embedding(len(config.speakers), dim)
        self.emotions = nn.Embedding(len(config.emotions), dim)
        self.zero_shot = nn.Linear(config.speaker_embedding_dim, dim)

    def forward(
        self,
        speaker: Tensor,
        emotion: Tensor,
        voice: Tensor | None = None,
        zero_shot: Tensor | None = None,
    ) -> Tensor:
        """speaker: (batch,) long indices or (batch, speaker_embedding_dim) float embeddings;
        emotion: (batch,) long indices. A batch of both kinds (training): speaker indices,
        `voice` (batch, speaker_embedding_dim) embeddings and `zero_shot` (batch,) bool, True
        where the row takes its embedding instead of its index."""
        if speaker.dtype in (torch.long, torch.int, torch.int32):
            named = self.speakers(speaker)
            if voice is None or zero_shot is None:
                return named + self.emotions(emotion)
            chosen = torch.where(zero_shot[:, None], self.zero_shot(voice.to(named.dtype)), named)
            return chosen + self.emotions(emotion)
        return self.zero_shot(speaker) + self.emotions(emotion)
