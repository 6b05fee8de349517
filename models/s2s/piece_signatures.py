"""Fixed random signatures of the text pieces: the copy path of saying the user's words back.

Saying a name back means emitting, in order, the pieces the user's turn holds. Through the
learned tables alone that is a mapping learnt piece by piece (the user-text embedding of a
piece, through cross-attention, to the output row of the same piece), so a name made of
pieces seldom seen in answers is seldom said back. With `TextConfig.copy_pieces` both ends
share one fixed table instead: `UserText` adds the piece's signature to its memory entry and
the decoder's text output scores every piece by the dot product of a learnt projection of its
state with the piece's signature. Copying then needs one linear map that carries a signature
from the memory to the output, the same for every piece, pieces never seen included.

The table is not learnt and not saved: it is drawn from a fixed seed, the same on every
machine, by each module that needs it. Random vectors of the memory's width are nearly
orthogonal (|cosine| about 1 / sqrt(dim) between two pieces), which is what lets a dot
product pick one piece out of the vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

SIGNATURE_SEED = 0x7E1C0DE
"""The seed of the table: changing it changes every model trained with the copy path."""


def piece_signatures(vocab_size: int, dim: int) -> Tensor:
    """(vocab_size, dim) float32 signatures, entries standard normal (a layer-normed
    vector's scale), drawn from `SIGNATURE_SEED` on the CPU."""
    generator = torch.Generator().manual_seed(SIGNATURE_SEED)
    return torch.randn(vocab_size, dim, generator=generator)
