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

    def forward(self, speaker: Tensor, emotion: Tensor) -> Tensor:
        """speaker: (batch,) long indices or (batch, speaker_embedding_dim) float embeddings;
        emotion: (batch,) long indices."""
        if speaker.dtype in (torch.long, torch.int, torch.int32):
            voice = self.speakers(speaker)
        else:
            voice = self.zero_shot(speaker)
        return voice + self.emotions(emotion)
