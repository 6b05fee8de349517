"""Fixed random signatures of the text pieces: the copy path of saying the user's words back.

Saying a name back means emitting, in order, the pieces the user's turn holds. Through the
learned tables alone that is a mapping learnt piece by piece (the user-text embedding of a
piece, through cross-attention, to the output row of the same piece), so a name made of
pieces seldom seen in answers is seldom said back. With `TextConfig.copy_pieces` both ends
share one fixed table instead: `UserText` adds the piece's signature to its memory entry and
the decoder's text output scores every piece by the dot product of a learnt projection of its
state with the piece's signature. Copying then needs one linear map that carries a signature
from the memory to the output, the same for every piece, pieces never seen included.

`TextConfig.follow_pieces` adds what an induction head does: each memory entry also carries
the signature of the user's piece before it, turned by a fixed rotation (so that "I am X"
and "after X" differ), and the decoder reads back the signature of the piece it just said.
Having said X, it finds the entry that follows X with one query map, the same for every
piece, and says that entry's piece next: a name is said back in order, piece after piece.

The tables are not learnt and not saved: it is drawn from a fixed seed, the same on every
machine, by each module that needs it. Random vectors of the memory's width are nearly
orthogonal (|cosine| about 1 / sqrt(dim) between two pieces), which is what lets a dot
product pick one piece out of the vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

SIGNATURE_SEED = 0x7E1C0DE
"""The seed of the table: changing it changes every model trained with the copy path."""
ROTATION_SEED = 0x7E1C0DF
"""The seed of the rotation of the 'piece before' signatures (`follow_rotation`)."""


def piece_signatures(vocab_size: int, dim: int) -> Tensor:
    """(vocab_size, dim) float32 signatures, entries standard normal (a layer-normed
    vector's scale), drawn from `SIGNATURE_SEED` on the CPU."""
    generator = torch.Generator().manual_seed(SIGNATURE_SEED)
    return torch.randn(vocab_size, dim, generator=generator)


def follow_rotation(dim: int) -> Tensor:
    """(dim, dim) float32 a fixed random orthogonal matrix, drawn from `ROTATION_SEED`."""
    generator = torch.Generator().manual_seed(ROTATION_SEED)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    return rotation
