"""The words of each turn, from the agent's `caption` events as the caller received them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def caption_texts(events: Iterable[dict[str, Any]], who: str) -> dict[int, str]:
    """Each agent turn's words from `who`'s ("user" or "agent") captions: the final
    caption's text, or the last partial's when no final one came."""
    texts: dict[int, str] = {}
    finished: set[int] = set()
    for event in events:
        if event.get("type") != "caption" or event.get("who") != who:
            continue
        turn, text = event.get("turn"), event.get("text")
        if not isinstance(turn, int) or not isinstance(text, str) or turn in finished:
            continue
        texts[turn] = text
        if event.get("final") is True:
            finished.add(turn)
    return texts


def agent_turn(
    events: Iterable[tuple[float, dict[str, Any]]], after: float, before: float
) -> int | None:
    """The agent's number of the user turn whose speech ended at monotonic time `after`: the
    first turn whose end (`speech_stopped`) arrived after it and before `before`."""
    for arrived, event in events:
        turn = event.get("turn")
        if (
            event.get("type") == "speech_stopped"
            and after < arrived < before
            and isinstance(turn, int)
        ):
            return turn
    return None
