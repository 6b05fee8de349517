"""Voice clips for tests: espeak-ng Telugu speech, encoded as a browser would send it."""

from __future__ import annotations

import numpy as np

from models.speech.audio import MODEL_RATE
from models.speech.clip import BROWSER_FORMATS as FORMATS
from models.speech.clip import encode_clip as encode
from tests.speech import SENTENCES, conversation

__all__ = ["FORMATS", "encode", "speech"]


def speech(seconds: float) -> np.ndarray:
    """Telugu speech (16 kHz) of exactly `seconds`, sentences repeated as needed."""
    needed = int(seconds * MODEL_RATE)
    parts: list[str | float] = []
    pcm = np.zeros(0, np.float32)
    while pcm.size < needed:
        parts += [*SENTENCES, 0.2]
        pcm = conversation(parts, MODEL_RATE)
    return pcm[:needed]
