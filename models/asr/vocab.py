"""Transcripts <-> CTC labels: 0 is the blank, 1.. the letters, the last one `<unk>`.

Texts are normalised as everywhere in the project (models.data.text.normalise: NFC, lower
case, punctuation and symbols dropped, spaces collapsed)."""

from __future__ import annotations

import torch
from torch import Tensor

from models.data.text import normalise

BLANK = 0


class Vocabulary:
    """The characters a recognizer writes."""

    def __init__(self, letters: tuple[str, ...]) -> None:
        self.letters = letters
        self.index = {ch: i + 1 for i, ch in enumerate(letters)}
        self.unk = len(letters) + 1

    def encode(self, text: str) -> Tensor:
        """A transcript as labels (characters outside the alphabet become `<unk>`)."""
        ids = [self.index.get(ch, self.unk) for ch in normalise(text)]
        return torch.tensor(ids, dtype=torch.long)

    def letter(self, label: int) -> str:
        """The text of one non-blank label (`<unk>` is written as U+FFFD)."""
        return self.letters[label - 1] if 0 < label <= len(self.letters) else "\ufffd"
