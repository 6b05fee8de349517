"""A call's words as a recognizer hears them, turn by turn (for responders that caption, and
for the S2S model's user text stream).

Every window of the call streams through the recognizer on the listening thread; `take_turn`
(on the answering thread) returns the words inside a finished turn and starts a fresh
transcript with the next window, so `heard` is always the turn in progress."""

from __future__ import annotations

import threading

import numpy as np
from torch import Tensor

from models.asr.decode import Word
from models.asr.model import Recognizer
from models.asr.stream import StreamingTranscriber


class TurnHearing:
    """One call's stream through a shared recognizer (each call has its own state)."""

    def __init__(self, recognizer: Recognizer) -> None:
        self._recognizer = recognizer
        self._rate = recognizer.config.sample_rate
        self._transcriber: StreamingTranscriber | None = None
        """Replaced and fed on the listening thread only; read under the lock."""
        self._lock = threading.Lock()
        self._origin = 0
        """Stream sample at which the transcriber's audio starts."""
        self._new_turn = True
        """Set by `take_turn`: the next window starts a new transcript."""

    def hear(self, window: np.ndarray, start_sample: int) -> None:
        """The next window of the call (16 kHz float32), starting at `start_sample`."""
        with self._lock:
            if self._new_turn or self._transcriber is None:
                self._transcriber = StreamingTranscriber(self._recognizer)
                self._origin, self._new_turn = start_sample, False
            self._transcriber.push(window)

    def heard(self) -> str:
        """The words of the turn in progress so far."""
        with self._lock:
            if self._new_turn or self._transcriber is None:
                return ""
            return self._transcriber.transcript().text

    def latest_output(self) -> Tensor | None:
        """The recognizer's latest GRU output (what the content end-of-turn head reads), None
        before the turn's first output frame."""
        with self._lock:
            if self._new_turn or self._transcriber is None:
                return None
            return self._transcriber.latest

    def take_turn(self, start_sample: int, end_sample: int) -> list[tuple[str, int]]:
        """The words recognised inside [start_sample, end_sample), each with the stream sample
        where it ends; the next window starts a fresh transcript."""
        return self._words(start_sample, end_sample, take=True)

    def words_in(self, start_sample: int, end_sample: int) -> list[tuple[str, int]]:
        """take_turn's words as they stand now, the transcript going on (an answer started
        ahead of the turn's end)."""
        return self._words(start_sample, end_sample, take=False)

    def _words(self, start_sample: int, end_sample: int, take: bool) -> list[tuple[str, int]]:
        with self._lock:
            words = [] if self._transcriber is None else self._transcriber.transcript().words
            origin = self._origin
            self._new_turn = self._new_turn or take
        return [
            (word.word, origin + round(word.end * self._rate))
            for word in words
            if self._inside(word, origin, start_sample, end_sample)
        ]

    def _inside(self, word: Word, origin: int, start: int, end: int) -> bool:
        return (
            origin + round(word.start * self._rate) < end
            and origin + round(word.end * self._rate) > start
        )
