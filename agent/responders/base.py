"""The seam where models plug in: user audio in as it streams, answer PCM out as it is ready.

A `Responder` is created once per server (it holds the models); it opens one
`ResponderSession` per call. A session's methods are called from that call's worker threads,
never from the event loop, so they may compute freely:

- `hear(window, start_sample)` for every 16 kHz window of the call, speech or not, in order;
  a responder with an end-of-turn head returns its latest end-of-turn probability, which the
  agent's turn detector may use (`--eot model`);
- `respond(turn)` after an end of turn: an iterator of answer chunks (16 kHz mono float32),
  each yielded as soon as it is ready; the agent stops iterating (closing the iterator) when
  the user barges in or hangs up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CallOptions:
    """What the caller asked for."""

    speaker: str
    emotion: str


@dataclass(frozen=True)
class UserTurn:
    """One finished user turn, as sample indices in the call's 16 kHz stream."""

    turn: int
    start_sample: int
    end_sample: int


class ResponderSession(ABC):
    """One call's view of a responder."""

    @abstractmethod
    def hear(self, window: np.ndarray, start_sample: int) -> float | None:
        """The next window of the user's audio, starting at stream index `start_sample`.

        Returns the end-of-turn probability of the latest step the responder has encoded, or
        None when it has no end-of-turn head."""

    @abstractmethod
    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        """Answer chunks for a finished turn, 16 kHz mono float32, each as soon as ready."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """The call is over; release what the session holds."""


class Responder(ABC):
    """A kind of answerer, shared by all calls of a server."""

    name: str
    has_eot_head: bool = False
    """Whether its sessions' `hear` returns end-of-turn probabilities."""

    @abstractmethod
    def open(self, options: CallOptions) -> ResponderSession:
        """A fresh session for one call."""
