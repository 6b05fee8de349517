"""Live captions: which of the texts a responder reports become `caption` events.

Each side of the call (the user's words, the agent's) has its own `Captions`. The session
polls the responder's text as it streams and offers it here; a partial caption goes out when
the text changed since the last one sent and at least `interval_s` has passed, and one final
caption ends each turn.
"""

from __future__ import annotations

import math
from typing import Any, Literal

Who = Literal["user", "agent"]

INTERVAL_S = 0.15
"""Partial captions of one side are at least this far apart."""
MAX_CHARS = 500
"""A caption carries at most this many characters: the last ones, after an ellipsis."""
ELLIPSIS = "…"


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """`text`, or its last `limit` - 1 characters after an ellipsis when it is longer."""
    return text if len(text) <= limit else ELLIPSIS + text[-(limit - 1) :]


class Captions:
    """One side's captions, turn by turn (turn numbers only grow)."""

    def __init__(self, who: Who, interval_s: float = INTERVAL_S) -> None:
        self.who = who
        self.interval_s = interval_s
        self._turn = 0
        self._latest: str | None = None
        """The text last offered for the turn, sent or not."""
        self._sent: str | None = None
        self._sent_at = -math.inf
        self._finished = False

    def partial(self, turn: int, text: str, now: float) -> dict[str, Any] | None:
        """Offer the turn's text as it stands at monotonic time `now`; the caption event's
        fields to send now, or None (unchanged, too soon, empty, or the turn is over)."""
        if not self._at(turn) or self._finished:
            return None
        self._latest = clip(text)
        if not self._latest or self._latest == self._sent or now - self._sent_at < self.interval_s:
            return None
        self._sent, self._sent_at = self._latest, now
        return self._event(final=False)

    def final(self, turn: int, text: str | None = None, **extra: Any) -> dict[str, Any] | None:
        """The turn's final caption with `text` (None: the text last offered), once per turn;
        None when there is no text or the turn already has its final caption."""
        if not self._at(turn) or self._finished:
            return None
        if text is not None:
            self._latest = clip(text)
        if self._latest is None:
            return None
        self._finished = True
        return {**self._event(final=True), **extra}

    def _at(self, turn: int) -> bool:
        """Move to `turn` if it is new; False for an earlier turn."""
        if turn < self._turn:
            return False
        if turn > self._turn:
            self._turn, self._latest, self._sent = turn, None, None
            self._sent_at, self._finished = -math.inf, False
        return True

    def _event(self, final: bool) -> dict[str, Any]:
        return {"who": self.who, "turn": self._turn, "text": self._latest, "final": final}
