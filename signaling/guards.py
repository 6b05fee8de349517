"""Validation of what clients send: body size, JSON, SDP offers, speaker and emotion.

Every refusal is a `ClientError` carrying the HTTP status and a JSON body; nothing a client
sends should reach the peer connection unchecked or turn into a 500.
"""

from __future__ import annotations

import json
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

MAX_BODY_BYTES = 64 * 1024


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


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 when over `limit` bytes (declared or actual)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ClientError(413, "body_too_large", f"request body over {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ClientError(413, "body_too_large", f"request body over {limit} bytes")
    return body


def parse_offer_json(body: bytes) -> OfferRequest:
    """`{"sdp", "type": "offer", "speaker"?, "emotion"?}` -> OfferRequest, or ClientError."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientError(400, "malformed_json", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClientError(400, "malformed_json", "body must be a JSON object")
    missing = [k for k in ("sdp", "type") if k not in data]
    if missing:
        raise ClientError(400, "missing_fields", f"missing fields: {', '.join(missing)}")
    if not isinstance(data["sdp"], str) or not isinstance(data["type"], str):
        raise ClientError(400, "invalid_field", "sdp and type must be strings")
    if data["type"] != "offer":
        raise ClientError(400, "not_an_offer", f"type must be 'offer', not {data['type']!r}")
    check_sdp_offer(data["sdp"])
    return OfferRequest(
        sdp=data["sdp"],
        speaker=check_speaker(data.get("speaker", DEFAULT_SPEAKER)),
        emotion=check_emotion(data.get("emotion", DEFAULT_EMOTION)),
    )


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
        raise ClientError(400, "invalid_sdp", f"SDP does not parse: {exc!r}") from None
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
        raise ClientError(400, f"unknown_{err.kind}", str(err), valid=err.valid) from None
    return str(name)
