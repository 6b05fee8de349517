"""The seam where models plug in: user audio in as it streams, answer PCM out as it is ready.

A `Responder` is created once per server (it holds the models); it opens one
`ResponderSession` per call. A session's methods are called from that call's worker threads,
never from the event loop, so they may compute freely:

- `hear(audio, start_sample)` for all the call's 16 kHz audio, speech or not, in order and
  contiguous, in chunks of one or more 512-sample windows (the server hears the audio of all
  its calls through `Responder.hear_batch`, one batch at a time, from one listening thread
  per process);
  a responder with an end-of-turn head returns its latest end-of-turn probability, which the
  agent's turn detector may use (`--eot model`);
- `respond(turn)` after an end of turn: an iterator of answer chunks (16 kHz mono float32),
  each yielded as soon as it is ready; the agent stops iterating (closing the iterator) when
  the user barges in or hangs up;
- `respond_ahead(turn)` (optional) during a pause, before the end of the turn is decided:
  the answer to the turn as it stands, computed without touching the session's own state
  (its random draws, its words) and paced to keep only its first chunks ready; `commit()` once
  the turn ended there makes it the session's answer, else it is discarded (closed);
- `use_voice(embedding)` (responders that clone voices): answer from now on in the voice of
  that speaker embedding (models.speaker); called from the event loop between answers, so it
  only stores the embedding;
- `heard()` and `said()` (optional) for the live captions: the words of the user's turn in
  progress (listening thread) and of the answer being generated (answering thread), as the
  responder has them now; None from a responder without text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor


@dataclass(frozen=True)
class CallOptions:
    """What the caller asked for: a named voice and an emotion, and optionally a zero-shot
    voice, the (256,) float32 speaker embedding (models.speaker) of a clip the caller gave,
    which the answers use instead of the named voice; or `caller_voice`: answer in the
    caller's own voice once the call has heard enough of it (the named voice until then)."""

    speaker: str
    emotion: str
    voice: np.ndarray | None = field(default=None, compare=False)
    caller_voice: bool = False


@dataclass(frozen=True)
class UserTurn:
    """One finished user turn, as sample indices in the call's 16 kHz stream."""

    turn: int
    start_sample: int
    end_sample: int


@dataclass
class AnswerAhead:
    """An answer started before its turn's end was decided (`ResponderSession.respond_ahead`).

    Read `chunks` like `respond`'s (the responder generates only the first ones until
    `commit`); close them to throw the answer away, which leaves the session as if it had
    never been started."""

    chunks: Iterator[np.ndarray]
    commit: Callable[[], bool]
    """The turn ended where this answer assumed: make it the session's own answer (its random
    draws, its words) and let it run at the pace it is played. False when the session has
    heard something since that the answer did not (it must then be discarded)."""


class ResponderSession(ABC):
    """One call's view of a responder."""

    @abstractmethod
    def hear(self, window: np.ndarray, start_sample: int) -> float | None:
        """The next audio of the user (one or more windows), starting at stream index
        `start_sample`.

        Returns the end-of-turn probability of the latest step the responder has encoded, or
        None when it has no end-of-turn head."""

    @abstractmethod
    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        """Answer chunks for a finished turn, 16 kHz mono float32, each as soon as ready."""

    def respond_ahead(self, turn: UserTurn) -> AnswerAhead | None:
        """The answer `respond(turn)` would give, started now, before the end of the turn is
        decided (None: this responder does not answer ahead). Called on the call's answering
        worker once the session has heard the turn and its look-ahead, while no answer of the
        call is in progress."""
        return None

    def heard(self) -> str | None:
        """The words recognised of the user's speech since the previous turn's answer was
        requested (the turn in progress), as they stand now; None without a recogniser.

        Called from the listening thread after `hear`, for every window while the user
        speaks, so it must be cheap."""
        return None

    def recognizer_output(self) -> Tensor | None:
        """The recognizer's latest GRU output over the turn in progress, as of the windows
        heard so far (what the content end-of-turn head reads); None without a recogniser
        or before its first output frame. Called from the listening thread."""
        return None

    def said(self) -> str | None:
        """The words of the answer the current `respond` iterator has generated so far, or of
        the last answer once it is finished; None without text.

        Called from the answering thread after each chunk and once the iterator is done."""
        return None

    def use_voice(self, embedding: np.ndarray) -> None:
        """Answer from the next answer on in the voice of this (256,) speaker embedding;
        only for a responder whose `clones_voices` is True."""
        raise NotImplementedError("this responder does not clone voices")

    def close(self) -> None:  # noqa: B027 - optional hook
        """The call is over; release what the session holds."""


class Responder(ABC):
    """A kind of answerer, shared by all calls of a server."""

    name: str
    has_eot_head: bool = False
    """Whether its sessions' `hear` returns end-of-turn probabilities."""
    hears_words: bool = False
    """Whether its sessions hear the user through the shipped recognizer (`heard`,
    `recognizer_output`): what the content end-of-turn head needs (`--eot content`)."""
    clones_voices: bool = False
    """Whether its answers can take a zero-shot voice (`CallOptions.voice`, `use_voice`);
    the server refuses a call asking for one from a responder that cannot."""
    lookahead_samples: int = 0
    """Audio a session must hear past the end of a turn before `respond` has all of the
    turn (an encoder's look-ahead and chunk): the server holds the answer until then."""

    @abstractmethod
    def open(self, options: CallOptions) -> ResponderSession:
        """A fresh session for one call."""

    def hear_batch(
        self, sessions: list[ResponderSession], windows: list[np.ndarray], starts: list[int]
    ) -> list[float | None]:
        """The next audio of several calls at once (each session at most once, its audio
        in order): what each `hear` returns. A responder whose models batch across calls
        overrides this; the result must equal hearing them one by one."""
        return [s.hear(w, start) for s, w, start in zip(sessions, windows, starts, strict=True)]
