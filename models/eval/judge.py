"""Verdicts on an answer from the text a recognizer heard in its audio (`eval s2s`).

- intent: the intent whose reference answer texts come closest (character edit distance over
  normalised text, divided by the reference's length; the best reference per intent). Slot
  answers differ from their intent's references only in the value, so the template decides.
- slot said back: the value's normalised text occurs in the transcript with at most
  SLOT_TOLERANCE of its characters wrong (the best-matching stretch of the transcript:
  approximate substring matching).
- CER of the heard answer against the text the model meant (its own text stream).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from models.asr.errors import edit_distance
from models.data.text import normalise

SLOT_TOLERANCE = 0.25
"""Share of a slot value's characters that may be misheard for it to count as said back."""


class IntentTexts:
    """The reference answer texts of each intent (normalised, deduplicated)."""

    def __init__(self, answers: Iterable[tuple[str, str]]) -> None:
        """answers: (intent, answer text) pairs."""
        texts: dict[str, set[str]] = defaultdict(set)
        for name, text in answers:
            texts[name].add(normalise(text))
        self.texts = {name: sorted(found) for name, found in texts.items()}

    def closest(self, heard: str) -> str | None:
        """The intent whose references are nearest to `heard` (None when nothing was heard)."""
        heard = normalise(heard)
        if not heard:
            return None
        return min(self.texts, key=lambda name: self.distance(heard, name))

    def distance(self, heard: str, name: str) -> float:
        return min(edit_distance(ref, heard) / max(1, len(ref)) for ref in self.texts[name])


def substring_distance(needle: str, haystack: str) -> int:
    """Fewest edits that turn some stretch of `haystack` into `needle` (approximate
    substring matching: the stretch may start and end anywhere)."""
    previous = [0] * (len(haystack) + 1)  # matching may start at any position for free
    for i, ch in enumerate(needle, 1):
        current = [i]
        for j, other in enumerate(haystack, 1):
            substitute = previous[j - 1] + (ch != other)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitute))
        previous = current
    return min(previous)


def said_back(value: str, heard: str, tolerance: float = SLOT_TOLERANCE) -> bool:
    """Whether the transcript `heard` contains `value` with at most `tolerance` of its
    characters wrong."""
    value, heard = normalise(value), normalise(heard)
    return bool(value) and substring_distance(value, heard) <= tolerance * len(value)


def cer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters) of normalised texts."""
    reference, hypothesis = normalise(reference), normalise(hypothesis)
    return edit_distance(reference, hypothesis), len(reference)
