"""Responders by name: the answerers a server can be started with (`--responder`)."""

from __future__ import annotations

from collections.abc import Callable

from agent.responders.base import CallOptions, Responder, ResponderSession, UserTurn
from agent.responders.parrot import ParrotResponder

RESPONDERS: dict[str, Callable[[], Responder]] = {
    "parrot": ParrotResponder,
}


def make_responder(name: str) -> Responder:
    """Build the responder called `name`; ValueError lists the known ones."""
    if name not in RESPONDERS:
        raise ValueError(f"unknown responder {name!r}; known: {', '.join(RESPONDERS)}")
    return RESPONDERS[name]()


__all__ = ["CallOptions", "Responder", "ResponderSession", "UserTurn", "make_responder"]
