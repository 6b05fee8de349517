"""Validation of what clients send: body size, JSON, SDP offers, speaker, emotion and the
form of a voice (its audio is checked by `models.speech.clip`, off the event loop).

Every refusal is a `ClientError` carrying the HTTP status and a JSON body whose message is
ours: no Python exception text, and at most a short escaped prefix of what was refused.
Nothing a client sends should reach the peer connection unchecked or turn into a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiortc.sdp import SessionDescription

from models.controls import (
    DEFAULT_EMOTION,
    DEFAULT_SPEAKER,
    UnknownControlError,
    emotion_id,
    speaker_id,
)
from models.speech.clip import MAX_CLIP_BYTES

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_VOICE_CHARS = 4 * -(-MAX_CLIP_BYTES // 3)
"""Longest base64 text of a voice clip (MAX_CLIP_BYTES encoded)."""
MAX_OFFER_BODY_BYTES = MAX_BODY_BYTES + MAX_VOICE_CHARS
"""A JSON offer's body may carry a voice clip; every other body stays under MAX_BODY_BYTES."""
CALLER_VOICE = "caller"
"""The offer's `voice` that asks for answers in the caller's own voice."""
BODY_TIMEOUT_S = 10.0
"""Longest a client may take to send a request body (a slow sender holds a connection)."""
MAX_JSON_DEPTH = 8
"""Deepest nesting of arrays and objects a JSON body may have (an offer needs 1)."""
MAX_JSON_NUMBER_DIGITS = 32
"""Longest number a JSON body may hold (Python refuses to convert over 4,300 digits)."""
SHOWN_CHARS = 32
"""How much of a refused value an error message repeats."""


class ClientError(Exception):
    """A request the server refuses, with the status and JSON body to answer with."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": code, "message": message, **extra}
        self.headers: dict[str, str] = {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


@dataclass(frozen=True)
class OfferRequest:
    sdp: str
    speaker: str
    emotion: str
    voice_clip: bytes | None = None
    """The encoded audio of the voice to answer in (not yet decoded)."""
    caller_voice: bool = False
    """Answer in the caller's own voice once it is heard."""


def shown(value: object) -> str:
    """A refused value as an error message may repeat it: the first SHOWN_CHARS characters,
    escaped to ASCII, with an ellipsis when cut."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:SHOWN_CHARS]
    return ascii(cut) + ("..." if len(text) > SHOWN_CHARS else "")


async def read_body(
    request: web.Request, limit: int = MAX_BODY_BYTES, timeout_s: float | None = None
) -> bytes:
    """The whole request body however many writes it arrives in: 413 when over `limit` bytes
    (declared or actual), 408 when it takes longer than `timeout_s` (BODY_TIMEOUT_S)."""
    timeout_s = BODY_TIMEOUT_S if timeout_s is None else timeout_s
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ClientError(413, "body_too_large", f"request body over {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise ClientError(413, "body_too_large", f"request body over {limit} bytes")
    except TimeoutError:
        raise ClientError(
            408, "body_timeout", f"request body not received within {timeout_s:g} s"
        ) from None
    return bytes(body)


def _bounded_number(text: str) -> int | float:
    if len(text.lstrip("-")) > MAX_JSON_NUMBER_DIGITS:
        raise ClientError(
            400, "malformed_json", f"a number has over {MAX_JSON_NUMBER_DIGITS} digits"
        )
    return float(text) if any(c in text for c in ".eE") else int(text)


def _depth(value: object) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0)."""
    deepest, level = 0, [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        deepest += 1
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]
    return deepest


def parse_json(body: bytes) -> object:
    """A JSON body, or 400 (not UTF-8 JSON, nested over MAX_JSON_DEPTH, a huge number)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(400, "malformed_json", "body is not UTF-8 text") from None
    too_deep = ClientError(400, "malformed_json", f"JSON nested over {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_bounded_number, parse_float=_bounded_number)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # JSONDecodeError; the position is ours to give, not its text
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ClientError(400, "malformed_json", f"body is not valid JSON{where}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


def parse_offer_json(body: bytes) -> OfferRequest:
    """`{"sdp", "type": "offer", "speaker"?, "emotion"?, "voice"?}` -> OfferRequest, or
    ClientError. `voice` is a base64 audio clip or "caller"."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ClientError(400, "malformed_json", "body must be a JSON object")
    missing = [k for k in ("sdp", "type") if k not in data]
    if missing:
        raise ClientError(400, "missing_fields", f"missing fields: {', '.join(missing)}")
    if not isinstance(data["sdp"], str) or not isinstance(data["type"], str):
        raise ClientError(400, "invalid_field", "sdp and type must be strings")
    if data["type"] != "offer":
        raise ClientError(400, "not_an_offer", f"type must be 'offer', not {shown(data['type'])}")
    check_sdp_offer(data["sdp"])
    voice = data.get("voice")
    return OfferRequest(
        sdp=data["sdp"],
        speaker=check_speaker(data.get("speaker", DEFAULT_SPEAKER)),
        emotion=check_emotion(data.get("emotion", DEFAULT_EMOTION)),
        voice_clip=None if voice in (None, CALLER_VOICE) else voice_clip_bytes(voice),
        caller_voice=voice == CALLER_VOICE,
    )


def voice_clip_bytes(voice: object) -> bytes:
    """The bytes of an offer's base64 voice clip, or 400/413 (wrong type, not base64, over
    MAX_CLIP_BYTES)."""
    if not isinstance(voice, str):
        raise ClientError(
            400, "invalid_voice", f"voice must be a base64 audio clip or {CALLER_VOICE!r}"
        )
    if len(voice) > MAX_VOICE_CHARS:
        raise ClientError(413, "voice_too_large", f"voice clip over {MAX_CLIP_BYTES} bytes")
    try:
        clip = base64.b64decode(voice, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, "voice_not_base64", "voice is not base64 text") from None
    if not clip:
        raise ClientError(400, "invalid_voice", "voice clip is empty")
    return clip


MAX_CANDIDATES = 32
"""ICE candidates an offer may carry: each `.local` (mDNS) one costs the agent up to a second
of resolution while it answers, so a long list would hold the request for minutes."""


def check_sdp_offer(sdp: str) -> None:
    """Refuse SDP that does not parse, offers no audio, or carries too many candidates."""
    if not sdp.lstrip().startswith("v=0"):
        raise ClientError(400, "invalid_sdp", "SDP must start with v=0")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on bad input
        log.debug("offer SDP does not parse: %r", exc)
        raise ClientError(400, "invalid_sdp", "SDP does not parse") from None
    candidates = sum(len(media.ice_candidates) for media in description.media)
    if candidates > MAX_CANDIDATES:
        raise ClientError(
            400, "too_many_candidates", f"{candidates} ICE candidates; at most {MAX_CANDIDATES}"
        )
    audio = [media for media in description.media if media.kind == "audio"]
    if not audio:
        raise ClientError(400, "no_audio", "the offer has no audio m-line")
    if not all(media.dtls and media.dtls.fingerprints for media in audio):
        raise ClientError(400, "no_fingerprint", "the offer has no DTLS fingerprint")


def check_speaker(name: object) -> str:
    """A known speaker name, or 400 listing the valid ones."""
    return _check_control(speaker_id, name)


def check_emotion(name: object) -> str:
    """A known emotion name, or 400 listing the valid ones."""
    return _check_control(emotion_id, name)


def _check_control(lookup: Callable[[object], int], name: object) -> str:
    try:
        lookup(name)
    except UnknownControlError as err:
        raise ClientError(
            400, f"unknown_{err.kind}", f"unknown {err.kind} {shown(name)}", valid=err.valid
        ) from None
    return str(name)
