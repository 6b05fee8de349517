"""The parrot: answers each turn with that turn's own speech. A microphone and path check."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from agent.responders.base import CallOptions, Responder, ResponderSession, UserTurn
from models.speech.audio import MODEL_RATE

CHUNK = MODEL_RATE // 50
"""Answer chunk: 20 ms, so the first frame is ready at once."""
LEAD_IN_LEVEL = 0.01
"""Samples quieter than this (-40 dBFS) before the first loud one are not played back."""


class ParrotSession(ResponderSession):
    """Keeps the last `keep_s` seconds of the call's audio and plays a turn back from it."""

    def __init__(self, keep_s: float = 30.0) -> None:
        self._ring = np.zeros(int(keep_s * MODEL_RATE), dtype=np.float32)
        self._written = 0

    def hear(self, window: np.ndarray, start_sample: int) -> None:
        n = len(window)
        pos = start_sample % len(self._ring)
        first = min(n, len(self._ring) - pos)
        self._ring[pos : pos + first] = window[:first]
        self._ring[: n - first] = window[first:]
        self._written = start_sample + n

    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        start = self._first_sound(max(turn.start_sample, self._written - len(self._ring)), turn)
        for chunk_start in range(start, turn.end_sample, CHUNK):
            indices = np.arange(chunk_start, min(chunk_start + CHUNK, turn.end_sample))
            yield self._ring[indices % len(self._ring)].copy()

    def _first_sound(self, start: int, turn: UserTurn) -> int:
        """Skip the quiet lead-in the VAD's padding keeps, so the answer starts with speech."""
        indices = np.arange(start, turn.end_sample) % len(self._ring)
        loud = np.flatnonzero(np.abs(self._ring[indices]) > LEAD_IN_LEVEL)
        return start + int(loud[0]) if len(loud) else start


class ParrotResponder(Responder):
    """Factory of ParrotSession."""

    name = "parrot"

    def open(self, options: CallOptions) -> ResponderSession:
        return ParrotSession()
