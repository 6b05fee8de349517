"""Turn taking from per-window speech probabilities: speech start and end of turn.

A pure state machine (no audio, no clocks of its own) so that it can be tested exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from models.speech.vad import WINDOW, WINDOW_MS

EotMode = Literal["silence", "model", "content"]


@dataclass(frozen=True)
class TurnConfig:
    """Voice activity and end-of-turn settings.

    min_silence_ms is chosen by measurement (benchmarks/turn_silence.py, docs/benchmarks.md):
    the shortest candidate that splits at most 5 % of synthesized Telugu turns at their
    internal pauses (150-600 ms). 480 ms split 28 %; 704 ms split none but answers 128 ms later.
    On the corpus of 2026-12-03 (`data synth --seed 0`) it ends 12.7 % of held-out user turns
    inside a pause (`train endpoint`'s curve, docs/benchmarks.md).
    """

    threshold: float = 0.5
    """Silero speech probability at or above which a window counts as speech."""
    min_speech_ms: int = 96
    """Speech needed before a turn starts (3 VAD windows of 32 ms)."""
    min_silence_ms: int = 576
    """Silence after speech that ends the turn."""
    speech_pad_ms: int = 64
    """Audio kept before the first speech window, for the responder."""
    eot: EotMode = "silence"
    """'silence': the turn ends after min_silence_ms of silence. 'model': it also ends as soon
    as the responder's end-of-turn head is confident during a silence of at least
    model_min_silence_ms (the silence rule stays as the fallback). 'content': the same with
    the content end-of-turn head's probability (models.asr.endpoint) instead of the
    responder's."""
    eot_threshold: float = 0.9
    """End-of-turn probability at or above which the head ends the turn ('model')."""
    model_min_silence_ms: int = 96
    """Silence the head needs under it before it may end a turn ('model'): a confident head
    never cuts into speech that Silero still hears."""

    @property
    def neg_threshold(self) -> float:
        """Probability below which a window counts as silence (hysteresis, as Silero does)."""
        return max(self.threshold - 0.15, 0.01)


class TurnEventKind(Enum):
    SPEECH_STARTED = "speech_started"
    END_OF_TURN = "end_of_turn"


@dataclass(frozen=True)
class TurnEvent:
    """A change in who holds the floor.

    Sample indices count 16 kHz samples from the start of the call's stream; times are the
    monotonic clock readings the caller passed with the windows.
    """

    kind: TurnEventKind
    turn: int
    start_sample: int
    """First sample of the turn's speech, padding included."""
    end_sample: int | None = None
    """Sample just after the last speech window (END_OF_TURN only)."""
    speech_end_time: float | None = None
    """When the last speech window arrived (END_OF_TURN only)."""


@dataclass(frozen=True)
class Pause:
    """A silence inside a turn: the turn as it ends if the silence goes on long enough."""

    turn: int
    start_sample: int
    end_sample: int
    """What END_OF_TURN's end_sample will be, unless speech comes back first."""
    silence_ms: int
    """Silence so far (windows below the negative threshold)."""


class TurnDetector:
    """Hysteresis over Silero probabilities, as Silero's own VADIterator does.

    A turn starts after `min_speech_ms` of windows at or above the threshold (counted while
    no window falls below the negative threshold) and ends after `min_silence_ms` of windows
    below the negative threshold. With `eot="model"` it also ends once `model_min_silence_ms`
    of such windows have passed and the responder's end-of-turn probability that came with
    the latest window is at least `eot_threshold`.
    """

    def __init__(self, config: TurnConfig) -> None:
        self.config = config
        self._min_speech = max(1, -(-config.min_speech_ms // WINDOW_MS))
        self._min_silence = max(1, -(-config.min_silence_ms // WINDOW_MS))
        self._model_min_silence = max(1, -(-config.model_min_silence_ms // WINDOW_MS))
        self._pad = config.speech_pad_ms * 16
        self._window = 0
        self._speech_run = 0
        self._run_start = 0
        self._silence_run = 0
        self._last_speech_end = 0
        self._last_speech_time = 0.0
        self.turn = 0
        self.in_speech = False

    def update(self, prob: float, now: float, eot_prob: float | None = None) -> TurnEvent | None:
        """Feed the speech probability of the next window, which arrived at `now`, and the
        responder's end-of-turn probability after it (None: the responder has no head)."""
        start = self._window * WINDOW
        self._window += 1
        cfg = self.config
        if not self.in_speech:
            if prob >= cfg.threshold:
                if self._speech_run == 0:
                    self._run_start = start
                self._speech_run += 1
                if self._speech_run >= self._min_speech:
                    return self._start_turn(start, now)
            elif prob < cfg.neg_threshold:
                self._speech_run = 0
            return None
        # Between the two thresholds a window continues speech, or continues a silence
        # that has begun (Silero's rule).
        if prob >= cfg.threshold or (prob >= cfg.neg_threshold and self._silence_run == 0):
            self._mark_speech(start, now)
            self._silence_run = 0
            return None
        self._silence_run += 1
        if self._silence_run >= self._min_silence or self._model_ends_turn(eot_prob):
            return self._end_turn()
        return None

    def pause(self) -> Pause | None:
        """The silence in progress inside a turn, or None (no turn, or speech going on)."""
        if not self.in_speech or self._silence_run == 0:
            return None
        return Pause(
            self.turn, self._turn_start, self._last_speech_end, self._silence_run * WINDOW_MS
        )

    def _model_ends_turn(self, eot_prob: float | None) -> bool:
        cfg = self.config
        return (
            cfg.eot != "silence"
            and eot_prob is not None
            and eot_prob >= cfg.eot_threshold
            and self._silence_run >= self._model_min_silence
        )

    def _mark_speech(self, start: int, now: float) -> None:
        self._last_speech_end = start + WINDOW
        self._last_speech_time = now

    def _start_turn(self, start: int, now: float) -> TurnEvent:
        self.in_speech = True
        self.turn += 1
        self._silence_run = 0
        self._speech_run = 0
        self._mark_speech(start, now)
        self._turn_start = max(0, self._run_start - self._pad)
        return TurnEvent(TurnEventKind.SPEECH_STARTED, self.turn, self._turn_start)

    def _end_turn(self) -> TurnEvent:
        self.in_speech = False
        self._silence_run = 0
        return TurnEvent(
            TurnEventKind.END_OF_TURN,
            self.turn,
            self._turn_start,
            end_sample=self._last_speech_end,
            speech_end_time=self._last_speech_time,
        )
