"""Call lifecycle over HTTP: `POST /offer` (JSON), `POST /v1/calls` (WHIP), `DELETE /v1/calls/{id}`.

`CallManager` owns the live sessions and the session cap; the handlers only translate HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web
from aiortc import RTCSessionDescription

from agent.config import AgentConfig
from agent.process.memory import MemoryTrimmer
from agent.process.metrics import AgentMetrics
from agent.responders import CallOptions, Responder
from agent.session import Session
from models.controls import DEFAULT_EMOTION, DEFAULT_SPEAKER
from signaling.admission import GATE
from signaling.guards import (
    ClientError,
    check_emotion,
    check_sdp_offer,
    check_speaker,
    parse_offer_json,
    read_body,
)
from signaling.ice import IceConfig

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""Retry-After of the 503 at the session cap."""
ACCEPT_TIMEOUT_S = 10.0
"""Longest the agent spends answering one offer (parsing, candidate resolution, gathering)."""


class CallManager:
    """Opens, tracks and ends the server's sessions; at most `max_sessions` at once."""

    def __init__(
        self,
        responder: Responder,
        config: AgentConfig,
        metrics: AgentMetrics,
        ice: IceConfig,
        max_sessions: int,
    ) -> None:
        if config.turns.eot == "model" and not responder.has_eot_head:
            raise ValueError(
                f"end of turn by model needs a responder with an end-of-turn head (s2s), "
                f"not {responder.name}"
            )
        self.responder = responder
        self.config = config
        self.metrics = metrics
        self.ice = ice
        self.max_sessions = max_sessions
        self.sessions: dict[str, Session] = {}
        self.trimmer = MemoryTrimmer()

    async def open_call(self, sdp: str, options: CallOptions) -> Session:
        """Answer an offer with a new session; ClientError when full or the offer is unusable."""
        if len(self.sessions) >= self.max_sessions:
            self.metrics.rejected.labels(reason="capacity").inc()
            err = ClientError(
                503, "at_capacity", f"{self.max_sessions} calls in progress; try again later"
            )
            err.headers["Retry-After"] = str(RETRY_AFTER_S)
            raise err
        session_id = uuid.uuid4().hex
        session = Session(
            session_id,
            options,
            self.responder,
            self.config,
            self.metrics,
            rtc_config=self.ice.for_agent(session_id),
            on_closed=self._forget,
        )
        self.sessions[session_id] = session  # counts against the cap from now on
        try:
            async with asyncio.timeout(ACCEPT_TIMEOUT_S):
                await session.accept(RTCSessionDescription(sdp=sdp, type="offer"))
        except TimeoutError:
            await session.close("offer timed out")
            self.metrics.rejected.labels(reason="bad_offer").inc()
            raise ClientError(
                400, "offer_timeout", f"the offer could not be answered in {ACCEPT_TIMEOUT_S:g} s"
            ) from None
        except Exception as exc:
            await session.close("offer refused")
            self.metrics.rejected.labels(reason="bad_offer").inc()
            raise ClientError(
                400, "offer_refused", f"the offer cannot be answered: {exc}"
            ) from None
        return session

    def _forget(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        if self.config.trim_memory:
            self.trimmer.schedule()

    async def hang_up(self, session_id: str) -> bool:
        session = self.sessions.get(session_id)
        if session is None:
            return False
        await session.close("hang-up")
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close("server stopping") for s in list(self.sessions.values())))
        await self.trimmer.close()


CALLS = web.AppKey("calls", CallManager)
"""The application's CallManager."""


def _manager(request: web.Request) -> CallManager:
    return request.app[CALLS]


async def post_offer(request: web.Request) -> web.Response:
    """JSON offer in, JSON answer out (the convention of aiortc's examples)."""
    request.app[GATE].admit(request)
    offer = parse_offer_json(await read_body(request))
    session = await _manager(request).open_call(
        offer.sdp, CallOptions(speaker=offer.speaker, emotion=offer.emotion)
    )
    answer = session.pc.localDescription
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": session.id})


async def post_whip(request: web.Request) -> web.Response:
    """WHIP (RFC 9725 style): SDP offer body in, `201 Created` with the answer and Location."""
    request.app[GATE].admit(request)
    if request.content_type != "application/sdp":
        raise ClientError(415, "unsupported_media_type", "Content-Type must be application/sdp")
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
    session = await _manager(request).open_call(sdp, options)
    return web.Response(
        status=201,
        body=session.pc.localDescription.sdp.encode(),
        content_type="application/sdp",
        headers={"Location": f"/v1/calls/{session.id}"},
    )


async def delete_call(request: web.Request) -> web.Response:
    """Hang up a call by its id."""
    if not await _manager(request).hang_up(request.match_info["session_id"]):
        raise ClientError(404, "no_such_call", "no call with that id is in progress")
    return web.Response(status=200)
