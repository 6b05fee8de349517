"""Responders by name: the answerers a server can be started with (`--responder`)."""

from __future__ import annotations

from pathlib import Path

from agent.responders.base import (
    AnswerAhead,
    CallOptions,
    Responder,
    ResponderSession,
    UserTurn,
)
from agent.responders.parrot import ParrotResponder

RESPONDERS = ("parrot", "codec", "s2s")
"""parrot: each turn played back (captioned by the shipped recognizer); codec: the same
through TeluCodec; s2s: the transformer."""


def make_responder(
    name: str,
    checkpoint: str | Path | None = None,
    preset: str = "demo",
    fewer_levels: bool = True,
    captions: bool = True,
    decoder_precision: str = "float32",
) -> Responder:
    """Build the responder called `name`; the model responders load `checkpoint` (or the
    preset's untrained weights). ValueError lists the known names. fewer_levels: the s2s
    answers leave out the finer codec levels of their silent steps. captions=False: the parrot
    plays turns back without its recognizer (the model responders hear through theirs to
    answer, so their captions cost nothing and stay). decoder_precision: the s2s decoder's
    weights when answering (`models.speed.DECODER_PRECISIONS`; float32 by default: int8 made
    the step a fifth faster but a server no cheaper, docs/benchmarks.md)."""
    if name == "parrot":
        if not captions:
            return ParrotResponder()
        from models.asr.checkpoint import load_recognizer

        return ParrotResponder(load_recognizer())
    if name not in RESPONDERS:
        raise ValueError(f"unknown responder {name!r}; known: {', '.join(RESPONDERS)}")
    from agent.responders.codec import CodecResponder
    from agent.responders.s2s import S2SResponder
    from models.loading import load
    from models.speed import with_decoder_precision

    models = load(checkpoint, preset)
    if name == "codec":
        return CodecResponder(models)
    models = with_decoder_precision(models, decoder_precision)
    return S2SResponder(models, fewer_levels=fewer_levels)


__all__ = [
    "AnswerAhead",
    "CallOptions",
    "Responder",
    "ResponderSession",
    "UserTurn",
    "make_responder",
]
