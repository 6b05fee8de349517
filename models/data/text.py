"""Transcripts as they are heard: what training heads and corpus statistics compare."""

from __future__ import annotations

import unicodedata

SKIPPED_CATEGORIES = ("P", "S", "C")
"""Unicode categories dropped from transcripts (punctuation, symbols, control): not heard."""


def normalise(text: str) -> str:
    """NFC, lower case, unheard characters dropped, runs of spaces collapsed."""
    kept = (
        " " if ch.isspace() else ch
        for ch in unicodedata.normalize("NFC", text).lower()
        if ch.isspace() or unicodedata.category(ch)[0] not in SKIPPED_CATEGORIES
    )
    return " ".join("".join(kept).split())
