"""Call lifecycle over HTTP: `POST /offer` (JSON), `POST /v1/calls` (WHIP), and the hang-up
`DELETE /v1/calls/{id}/{secret}`.

`CallManager` owns the live sessions, the session cap and the per-client caps, and takes
the voice of an offer's clip (on a worker thread); the handlers only translate HTTP. A call's
id is public (logged, shown on the page); its resource URL carries a per-call secret as well,
so only whoever made the call can end it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass, replace

from aiohttp import web
from aiortc import RTCSessionDescription

from agent.config import AgentConfig
from agent.listening import ListeningThread
from agent.process.memory import MemoryTrimmer
from agent.process.metrics import AgentMetrics
from agent.responders import CallOptions, Responder
from agent.session import Session
from agent.voice import TakenVoice, VoiceEncoder
from models.asr.endpoint import load_endpoint
from models.controls import DEFAULT_EMOTION, DEFAULT_SPEAKER
from models.speech.clip import ClipError
from signaling.admission import GATE
from signaling.guards import (
    MAX_OFFER_BODY_BYTES,
    ClientError,
    check_emotion,
    check_sdp_offer,
    check_speaker,
    parse_offer_json,
    read_body,
    shown,
)
from signaling.ice import IceConfig

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""Retry-After of the 503 at the session cap."""
ACCEPT_TIMEOUT_S = 10.0
"""Longest the agent spends answering one offer (parsing, candidate resolution, gathering)."""
CALLS_PATH = "/v1/calls"


@dataclass(frozen=True)
class ClientCaps:
    """How many of the server's calls one client address may hold at once (0: no cap).

    `pending` counts calls answered but not yet connected (ICE and DTLS not done): a flood of
    offers that never connect holds at most that many slots per address, each for at most
    `AgentConfig.establish_timeout_s`. `calls` counts all of the address's calls."""

    pending: int
    calls: int

    def __post_init__(self) -> None:
        if self.pending < 0 or self.calls < 0:
            raise ValueError("per-client caps are counts of calls (0: no cap)")

    @classmethod
    def for_capacity(cls, max_sessions: int) -> ClientCaps:
        """The defaults: a quarter of the slots pending, half of them in all, per address."""
        return cls(pending=max(1, max_sessions // 4), calls=max(1, max_sessions // 2))


@dataclass(frozen=True)
class _Holder:
    """Who opened a call, and the secret that ends it."""

    client: str
    secret: str


class CallManager:
    """Opens, tracks and ends the server's sessions; at most `max_sessions` (or `capacity`,
    the calls the process holds in real time, when lower) at once and at most `caps` per
    client address. Past that, new calls get 503 with Retry-After and the calls in progress
    keep their pace."""

    def __init__(
        self,
        responder: Responder,
        config: AgentConfig,
        metrics: AgentMetrics,
        ice: IceConfig,
        max_sessions: int,
        caps: ClientCaps | None = None,
        capacity: int | None = None,
    ) -> None:
        if config.turns.eot == "model" and not responder.has_eot_head:
            raise ValueError(
                f"end of turn by model needs a responder with an end-of-turn head (s2s), "
                f"not {responder.name}"
            )
        endpoint = None
        if config.turns.eot == "content":
            endpoint = load_endpoint(*([config.endpoint] if config.endpoint else []))
            config = replace(config, turns=endpoint.config.turns(config.turns))
        self.responder = responder
        self.config = config
        self.metrics = metrics
        self.ice = ice
        self.max_sessions = max_sessions if capacity is None else min(max_sessions, capacity)
        """Calls admitted at once: the session cap, or the measured capacity when lower."""
        metrics.capacity.set(self.max_sessions)
        self.caps = caps or ClientCaps.for_capacity(max_sessions)
        self.sessions: dict[str, Session] = {}
        self._holders: dict[str, _Holder] = {}
        self.trimmer = MemoryTrimmer()
        self.voices = VoiceEncoder() if responder.clones_voices else None
        """Embeds voice clips and callers' speech (loaded with the first voice)."""
        self.listening = ListeningThread(responder, metrics, config.listen_batch_ms, endpoint)
        """Hears the windows of all the server's calls, in batches."""

    async def open_call(
        self, sdp: str, options: CallOptions, client: str = "", voice_clip: bytes | None = None
    ) -> Session:
        """Answer an offer from `client` (its address) with a new session, its answers in the
        voice of `voice_clip` (encoded audio) when given; ClientError when the server or the
        client's share is full, or the offer or its voice is unusable."""
        self._check_room(client)
        clip_voice = None
        if voice_clip is not None or options.caller_voice:
            self._check_clones()
        if voice_clip is not None:
            clip_voice = await self.take_voice(voice_clip)
            options = replace(options, voice=clip_voice.embedding)
            self._check_room(client)  # other calls may have come in meanwhile
        session_id = secrets.token_hex(16)
        session = Session(
            session_id,
            options,
            self.responder,
            self.config,
            self.metrics,
            self.listening,
            rtc_config=self.ice.for_agent(session_id),
            on_closed=self._forget,
            voices=self.voices,
            clip_voice=clip_voice,
        )
        self.sessions[session_id] = session  # counts against the caps from now on
        self._holders[session_id] = _Holder(client, secrets.token_urlsafe(32))
        try:
            async with asyncio.timeout(ACCEPT_TIMEOUT_S):
                await session.accept(RTCSessionDescription(sdp=sdp, type="offer"))
        except TimeoutError:
            await session.close("offer timed out")
            self.metrics.rejected.labels(reason="bad_offer").inc()
            raise ClientError(
                400, "offer_timeout", f"the offer could not be answered in {ACCEPT_TIMEOUT_S:g} s"
            ) from None
        except Exception as exc:  # aiortc raises assorted errors on offers it cannot answer
            log.info("session %s: offer refused: %s", session_id, shown(repr(exc)))
            await session.close("offer refused")
            self.metrics.rejected.labels(reason="bad_offer").inc()
            raise ClientError(400, "offer_refused", "the offer cannot be answered") from None
        return session

    def _check_room(self, client: str) -> None:
        """Refuse a call the server or the client's share has no room for."""
        if len(self.sessions) >= self.max_sessions:
            self._refuse(503, "at_capacity", f"{self.max_sessions} calls in progress")
        self._check_caps(client)

    def _check_clones(self) -> None:
        if self.voices is None:
            self.metrics.rejected.labels(reason="bad_voice").inc()
            raise ClientError(
                422,
                "voice_not_supported",
                f"the {self.responder.name} responder does not answer in other voices",
            )

    async def take_voice(self, clip: bytes) -> TakenVoice:
        """The voice of an encoded clip, decoded and embedded on the voice thread; 413/422
        with the clip's reason (`voice_undecodable`, `voice_too_short`, ...) when refused."""
        assert self.voices is not None
        loop = asyncio.get_running_loop()
        try:
            voice = await loop.run_in_executor(self.voices.executor, self.voices.from_clip, clip)
        except ClipError as err:
            self.metrics.rejected.labels(reason="bad_voice").inc()
            status = 413 if err.reason == "too_large" else 422
            raise ClientError(status, f"voice_{err.reason}", str(err)) from None
        log.info("voice clip of %d bytes taken in %.1f ms", len(clip), voice.ms)
        self.metrics.voice_ms.labels(source=voice.source).observe(voice.ms)
        return voice

    def _check_caps(self, client: str) -> None:
        """Refuse a client that already holds its share of the calls."""
        held = [self.sessions[i] for i, h in self._holders.items() if h.client == client]
        pending = sum(1 for s in held if not s.connected.is_set())
        if self.caps.pending and pending >= self.caps.pending:
            self._refuse(
                429, "too_many_pending", f"{pending} calls from this address still connecting"
            )
        if self.caps.calls and len(held) >= self.caps.calls:
            self._refuse(429, "too_many_calls", f"{len(held)} calls from this address in progress")

    def _refuse(self, status: int, reason: str, what: str) -> None:
        self.metrics.rejected.labels(reason=reason).inc()
        err = ClientError(status, reason, f"{what}; try again later")
        err.headers["Retry-After"] = str(RETRY_AFTER_S)
        raise err

    def resource(self, session: Session) -> str:
        """The call's resource path (WHIP's Location), which ends it on DELETE."""
        return f"{CALLS_PATH}/{session.id}/{self._holders[session.id].secret}"

    def _forget(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self._holders.pop(session.id, None)
        if self.config.trim_memory:
            self.trimmer.schedule()

    async def hang_up(self, session_id: str, secret: str) -> bool:
        """End the call if `secret` is the one its resource URL carries."""
        holder = self._holders.get(session_id)
        if holder is None or not hmac.compare_digest(
            secret.encode("utf-8", "surrogateescape"), holder.secret.encode()
        ):
            return False
        await self.sessions[session_id].close("hang-up")
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close("server stopping") for s in list(self.sessions.values())))
        await asyncio.get_running_loop().run_in_executor(None, self.listening.stop)
        if self.voices is not None:
            self.voices.close()
        await self.trimmer.close()


CALLS = web.AppKey("calls", CallManager)
"""The application's CallManager."""


def _manager(request: web.Request) -> CallManager:
    return request.app[CALLS]


def _require_content_type(request: web.Request, wanted: str) -> None:
    """Only the endpoint's own type: a browser sends `text/plain` across origins without
    asking first, `application/json` and `application/sdp` only after a CORS preflight."""
    if request.content_type != wanted:
        raise ClientError(415, "unsupported_media_type", f"Content-Type must be {wanted}")


async def post_offer(request: web.Request) -> web.Response:
    """JSON offer in, JSON answer out (the convention of aiortc's examples), with the call's
    id and its resource path (DELETE it to hang up)."""
    client = request.app[GATE].admit(request)
    _require_content_type(request, "application/json")
    offer = parse_offer_json(await read_body(request, MAX_OFFER_BODY_BYTES))
    manager = _manager(request)
    options = CallOptions(offer.speaker, offer.emotion, caller_voice=offer.caller_voice)
    session = await manager.open_call(offer.sdp, options, client, offer.voice_clip)
    answer = session.pc.localDescription
    return web.json_response(
        {
            "sdp": answer.sdp,
            "type": answer.type,
            "session_id": session.id,
            "resource": manager.resource(session),
        },
        headers={"Cache-Control": "no-store"},
    )


async def post_whip(request: web.Request) -> web.Response:
    """WHIP (RFC 9725 style): SDP offer body in, `201 Created` with the answer and Location."""
    client = request.app[GATE].admit(request)
    _require_content_type(request, "application/sdp")
    body = await read_body(request)
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(400, "invalid_sdp", "SDP must be UTF-8 text") from None
    check_sdp_offer(sdp)
    options = CallOptions(
        speaker=check_speaker(request.query.get("speaker", DEFAULT_SPEAKER)),
        emotion=check_emotion(request.query.get("emotion", DEFAULT_EMOTION)),
    )
    manager = _manager(request)
    session = await manager.open_call(sdp, options, client)
    return web.Response(
        status=201,
        body=session.pc.localDescription.sdp.encode(),
        content_type="application/sdp",
        headers={"Location": manager.resource(session), "Cache-Control": "no-store"},
    )


async def delete_call(request: web.Request) -> web.Response:
    """Hang up a call by its resource path (id and secret); the token too when configured."""
    request.app[GATE].authenticate(request)
    found = await _manager(request).hang_up(
        request.match_info["session_id"], request.match_info["secret"]
    )
    if not found:
        raise ClientError(404, "no_such_call", "no call with that resource is in progress")
    return web.Response(status=200)
