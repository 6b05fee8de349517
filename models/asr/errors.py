"""Character and word error rates (Levenshtein distance over characters or words)."""

from __future__ import annotations

from collections.abc import Sequence

from models.data.text import normalise


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Insertions, deletions and substitutions that turn `hypothesis` into `reference`."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


class ErrorRates:
    """Accumulated CER and WER over pairs of (reference, hypothesis) texts, both normalised."""

    def __init__(self) -> None:
        self.char_errors = self.chars = self.word_errors = self.words = 0

    def add(self, reference: str, hypothesis: str) -> None:
        reference, hypothesis = normalise(reference), normalise(hypothesis)
        self.char_errors += edit_distance(reference, hypothesis)
        self.chars += len(reference)
        self.word_errors += edit_distance(reference.split(), hypothesis.split())
        self.words += len(reference.split())

    @property
    def cer(self) -> float:
        return self.char_errors / max(1, self.chars)

    @property
    def wer(self) -> float:
        return self.word_errors / max(1, self.words)
