"""The user's words as decoder memory: the stream of text the recognizer hears, as tokens.

The streaming recognizer (models.asr) writes the user's words while they speak; the tokenizer
(models.text) cuts them into pieces. Each piece becomes one memory entry beside the encoder's
acoustic steps: its embedding plus the embedding of its index in the turn (the decoder's
cross-attention has no positions of its own, and an answer that says a name back must read
the name's pieces in order). Entries are appended to the decoder's memory cache as words are
recognised. The turn's words are cut into pieces, embedded and projected when the turn ends:
a few milliseconds (`benchmarks/models.py` counts it in the first audio), because a word's
pieces can change until its last letter is heard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import S2SConfig
from models.s2s.piece_signatures import follow_rotation, piece_signatures
from models.text.tokenizer import Tokenizer


def user_pieces(tokenizer: Tokenizer, text: str, limit: int) -> Tensor:
    """(n,) the pieces of a user turn's words that the memory holds: the last `limit`
    (`TextConfig.max_user_tokens`). Training, the agent and `eval s2s` all cut turns here."""
    return torch.tensor(tokenizer.encode(text)[-limit:], dtype=torch.long)


class UserText(nn.Module):
    """Piece ids (batch, n) at turn positions `start ...` -> memory (batch, n, encoder dim);
    with `copy_pieces`, each entry also carries its piece's fixed signature, and with
    `follow_pieces` the turned signature of the piece before it in `tokens`."""

    def __init__(self, config: S2SConfig) -> None:
        super().__init__()
        text, dim = config.text, config.encoder.dim
        if not text.enabled:
            raise ValueError("the configuration has no text streams (text.vocab_size = 0)")
        self.max_tokens = text.max_user_tokens
        self.pieces = nn.Embedding(text.vocab_size, dim)
        self.positions = nn.Embedding(text.max_user_tokens, dim)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.pieces.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        signatures = piece_signatures(text.vocab_size, dim) if text.copy_pieces else None
        self.signatures: Tensor | None
        self.register_buffer("signatures", signatures, persistent=False)
        rotation = follow_rotation(dim) if text.follow_pieces else None
        self.rotation: Tensor | None
        self.register_buffer("rotation", rotation, persistent=False)

    def forward(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Memory entries of `tokens` whose first sits at position `start` of the turn
        (positions past max_user_tokens reuse the last one)."""
        index = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        index = index.clamp(max=self.max_tokens - 1)
        entries = self.norm(self.pieces(tokens) + self.positions(index)[None])
        if self.signatures is not None:
            entries = entries + self.signatures[tokens].to(entries.dtype)
        if self.signatures is not None and self.rotation is not None:
            before = self.signatures[tokens[:, :-1]] @ self.rotation  # none before the first
            entries = entries + F.pad(before, (0, 0, 1, 0)).to(entries.dtype)
        return entries
