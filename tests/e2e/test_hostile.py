"""Hostile clients against a real agent: a tampered DTLS fingerprint, junk on the data
channel, a flood of /offer while a real call goes on. The server stays up, frees what the
bad calls held, and the honest call still gets its answer."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from agent.caller.caller import FileTrack, call
from agent.events import EVENTS_LABEL
from agent.wire import WIRE_RATE
from signaling.admission import AccessPolicy
from signaling.clientip import parse_networks
from signaling.ratelimit import RateLimit
from tests.conftest import start_agent
from tests.e2e.test_calls import agent_threads, wait_until
from tests.speech import conversation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def greeting() -> np.ndarray:
    return conversation([0.5, "greeting", 2.5], WIRE_RATE)


class Peer:
    """A real aiortc caller whose offer and data channel the test controls."""

    def __init__(self, pcm48: np.ndarray) -> None:
        self.pc = RTCPeerConnection()
        self.events: list[dict] = []
        self.channel = self.pc.createDataChannel(EVENTS_LABEL)
        self.channel.on("message", lambda m: self.events.append(json.loads(m)))
        self.pc.addTrack(FileTrack(pcm48))
        self.resource = ""

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def post(self, http: aiohttp.ClientSession, url: str, sdp: str) -> str:
        async with http.post(f"{url}/offer", json={"sdp": sdp, "type": "offer"}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
        self.resource = body["resource"]
        return body["session_id"]


def tamper_fingerprint(sdp: str) -> str:
    """Flip the last hex digit of every DTLS fingerprint: the certificate no longer matches."""

    def flip(match: re.Match) -> str:
        digit = match.group(2)
        return match.group(1) + ("0" if digit != "0" else "1")

    return re.sub(r"(a=fingerprint:\S+ (?:[0-9A-F]{2}:)*[0-9A-F])([0-9A-F])", flip, sdp)


async def test_tampered_dtls_fingerprint_ends_the_call_cleanly(agent, greeting):
    peer = Peer(greeting)
    sdp = await peer.offer()
    tampered = tamper_fingerprint(sdp)
    assert tampered != sdp
    async with aiohttp.ClientSession() as http:
        session_id = await peer.post(http, agent.url, tampered)
        session = agent.sessions[session_id]
        await wait_until(lambda: session.closed.is_set(), 15)
        assert session.close_reason == "connection failed", session.close_reason
        assert session.pc.connectionState == "closed"
        assert agent.sessions == {}
        await wait_until(lambda: not agent_threads(), 5)
        async with http.get(f"{agent.url}/metrics") as r:
            assert "telugu_s2s_active_sessions 0.0" in await r.text()
    await peer.pc.close()


JUNK: list[str | bytes] = [
    "not json",
    "{",
    "null",
    "[1, 2, 3]",
    json.dumps({"type": "hang_up"}),
    json.dumps({"type": "session", "session_id": "someone-else"}),
    json.dumps({"type": "x" * 10_000}),
    "\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace") * 100,
    "స" * 20_000,  # 60 KB of UTF-8
    b"\x00\xff" * 30_000,
    b"",
]


async def test_junk_on_the_data_channel_is_ignored_and_the_call_goes_on(agent, greeting):
    peer = Peer(greeting)
    extra = peer.pc.createDataChannel("not-events")
    async with aiohttp.ClientSession() as http:
        session_id = await peer.post(http, agent.url, await peer.offer())
        await wait_until(lambda: "session" in peer.kinds(), 10)
        for round_ in range(20):  # a flood while the user speaks and the agent answers
            for message in JUNK:
                for channel in (peer.channel, extra):
                    if channel.readyState == "open":
                        channel.send(message)
            await asyncio.sleep(0.1 if round_ < 10 else 0.3)
        await wait_until(lambda: "latency" in peer.kinds(), 15)
        await wait_until(lambda: "response_done" in peer.kinds(), 10)
        session = agent.sessions[session_id]
        assert not session.closed.is_set() and session.pc.connectionState == "connected"
        assert peer.kinds().count("session") == 1
        assert extra.readyState == "closed"  # the agent refuses channels it does not use
        async with http.delete(f"{agent.url}{peer.resource}") as r:
            assert r.status == 200
    await peer.pc.close()
    await wait_until(lambda: not agent_threads(), 5)


async def flood(url: str, requests: int, headers: dict[str, str]) -> list[int]:
    """Many bad or unwanted call requests, 20 at a time; their statuses."""
    bodies: list[tuple[bytes, str]] = [
        (b"{not json", "application/json"),
        (json.dumps({"sdp": "v=0\r\nm=audio 9 X 0\r\n", "type": "offer"}).encode(), "text/x"),
        (b"x" * 200_000, "application/json"),
        (b"v=0\r\n" * 10, "application/sdp"),
    ]
    statuses: list[int] = []
    gate = asyncio.Semaphore(20)
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(i: int) -> None:
            body, content_type = bodies[i % len(bodies)]
            path = "/offer" if i % 2 else "/v1/calls"
            async with gate:
                try:
                    async with http.post(
                        f"{url}{path}", data=body, headers={"Content-Type": content_type}
                    ) as r:
                        statuses.append(r.status)
                except aiohttp.ClientError:
                    statuses.append(-1)  # the server may cut off a body over the limit

        await asyncio.gather(*(one(i) for i in range(requests)))
    return statuses


@pytest.mark.parametrize("rate_limited", [False, True])
async def test_offer_flood_leaves_a_concurrent_call_unaffected(greeting, rate_limited):
    access = AccessPolicy(
        rate_limit=RateLimit(5, 60.0, 5) if rate_limited else None,
        trusted_proxies=parse_networks(["127.0.0.1"]),
    )
    agent, runner = await start_agent(access=access)
    try:
        flooder = {"X-Forwarded-For": "198.51.100.66"}
        (report, _), statuses = await asyncio.gather(
            call(agent.url, greeting), flood(agent.url, 400, flooder)
        )
        assert report.answered == 1  # the honest caller got its answer
        assert set(statuses) <= {400, 413, 415, 429, -1}, set(statuses)
        assert statuses.count(-1) < len(statuses) // 4
        if rate_limited:
            assert statuses.count(429) >= len(statuses) - 5
        async with aiohttp.ClientSession() as http, http.get(f"{agent.url}/healthz") as r:
            assert r.status == 200
        await wait_until(lambda: not agent.sessions, 5)
    finally:
        await runner.cleanup()


async def test_offers_that_never_connect_from_two_addresses_leave_a_caller_able_to_call(greeting):
    """The squatting seen from outside: two addresses post real offers within the default rate
    limit and never complete ICE; a third caller still gets through and is answered."""
    agent, runner = await start_agent(access=AccessPolicy(rate_limit=RateLimit(20, 60.0, 20)))
    try:
        statuses: list[int] = []
        for address in ("127.0.0.2", "127.0.0.3"):
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            async with aiohttp.ClientSession(connector=connector) as flood:
                for _ in range(12):
                    squatter = RTCPeerConnection()
                    squatter.addTransceiver("audio")
                    await squatter.setLocalDescription(await squatter.createOffer())
                    body = {"sdp": squatter.localDescription.sdp, "type": "offer"}
                    async with flood.post(f"{agent.url}/offer", json=body) as r:
                        statuses.append(r.status)
                    await squatter.close()
        assert statuses.count(200) <= 4 and set(statuses) <= {200, 429}, statuses
        report, _ = await call(agent.url, greeting)
        assert report.answered == 1
        await wait_until(lambda: not agent.sessions, 15)  # the squatted slots came back
    finally:
        await runner.cleanup()
