"""The parrot: answers each turn with that turn's own speech. A microphone and path check.

With a recognizer it also captions: the words it recognises of each turn are what it heard,
and, as it plays the turn back, what it says."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from agent.responders.base import (
    AnswerAhead,
    CallOptions,
    Responder,
    ResponderSession,
    UserTurn,
)
from agent.responders.hearing import TurnHearing
from models.asr.model import Recognizer
from models.speech.audio import MODEL_RATE

CHUNK = MODEL_RATE // 50
"""Answer chunk: 20 ms, so the first frame is ready at once."""
LEAD_IN_LEVEL = 0.01
"""Samples quieter than this (-40 dBFS) before the first loud one are not played back."""


@dataclass
class Said:
    """The words of one answer played so far."""

    text: str = ""


class ParrotSession(ResponderSession):
    """Keeps the last `keep_s` seconds of the call's audio and plays a turn back from it.

    With a `recognizer`, every window also streams through it (`TurnHearing`): `heard` is the
    turn in progress, `said` the words of the turn played back so far. (With barge-in off, a
    turn that begins before the previous answer is requested loses its first words.)"""

    def __init__(self, keep_s: float = 30.0, recognizer: Recognizer | None = None) -> None:
        self._ring = np.zeros(int(keep_s * MODEL_RATE), dtype=np.float32)
        self._written = 0
        self._hearing = None if recognizer is None else TurnHearing(recognizer)
        self._said: Said | None = None
        """The words of the turn being played back, or of the last one."""

    def hear(self, window: np.ndarray, start_sample: int) -> None:
        n = len(window)
        pos = start_sample % len(self._ring)
        first = min(n, len(self._ring) - pos)
        self._ring[pos : pos + first] = window[:first]
        self._ring[: n - first] = window[first:]
        self._written = start_sample + n
        if self._hearing is not None:
            self._hearing.hear(window, start_sample)

    def heard(self) -> str | None:
        return None if self._hearing is None else self._hearing.heard()

    def recognizer_output(self) -> Tensor | None:
        return None if self._hearing is None else self._hearing.latest_output()

    def said(self) -> str | None:
        return None if self._said is None else self._said.text

    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        words = None
        if self._hearing is not None:
            words = self._hearing.take_turn(turn.start_sample, turn.end_sample)
            self._said = Said()
        yield from self._play(turn, words, self._said)

    def respond_ahead(self, turn: UserTurn) -> AnswerAhead:
        span = (turn.start_sample, turn.end_sample)
        words = None if self._hearing is None else self._hearing.words_in(*span)
        said = None if words is None else Said()

        def commit() -> bool:
            if self._hearing is not None:
                if self._hearing.words_in(*span) != words:
                    return False  # words recognised since it started
                self._hearing.take_turn(*span)
                self._said = said
            return True

        return AnswerAhead(self._play(turn, words, said), commit)

    def _play(
        self, turn: UserTurn, words: list[tuple[str, int]] | None, said: Said | None
    ) -> Iterator[np.ndarray]:
        """The turn's audio from its first sound, the words played so far kept in `said`."""
        start = self._first_sound(max(turn.start_sample, self._written - len(self._ring)), turn)
        for chunk_start in range(start, turn.end_sample, CHUNK):
            chunk_end = min(chunk_start + CHUNK, turn.end_sample)
            indices = np.arange(chunk_start, chunk_end)
            if words is not None and said is not None:
                said.text = " ".join(word for word, end in words if end <= chunk_end)
            yield self._ring[indices % len(self._ring)].copy()
        if words is not None and said is not None:
            said.text = " ".join(word for word, _ in words)

    def _first_sound(self, start: int, turn: UserTurn) -> int:
        """Skip the quiet lead-in the VAD's padding keeps, so the answer starts with speech."""
        indices = np.arange(start, turn.end_sample) % len(self._ring)
        loud = np.flatnonzero(np.abs(self._ring[indices]) > LEAD_IN_LEVEL)
        return start + int(loud[0]) if len(loud) else start


class ParrotResponder(Responder):
    """Factory of ParrotSession. A `recognizer` (16 kHz) is shared by all calls, each
    streaming through it with its own state."""

    name = "parrot"

    def __init__(self, recognizer: Recognizer | None = None) -> None:
        if recognizer is not None and recognizer.config.sample_rate != MODEL_RATE:
            raise ValueError(f"the parrot's recognizer must hear {MODEL_RATE} Hz audio")
        self.recognizer = recognizer
        self.hears_words = recognizer is not None

    def open(self, options: CallOptions) -> ResponderSession:
        return ParrotSession(recognizer=self.recognizer)
