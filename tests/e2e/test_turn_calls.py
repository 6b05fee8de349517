"""Calls that can only go through TURN: headless Chromium with `iceTransportPolicy: "relay"`
over TURN/UDP, TURN/TCP and TURN/TLS, and the aiortc caller with a relay-only policy, each
against a real coturn on loopback and the parrot agent. The selected candidate pair must be
a relay on the caller's side, and the agent must see the call coming from coturn's relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from agent.caller.caller import call, fetch_ice_servers
from agent.caller.icepair import selected_pair
from agent.wire import WIRE_RATE
from models.speech.audio import write_audio
from signaling.admission import AccessPolicy
from signaling.ice import IceConfig
from signaling.origins import OriginPolicy
from tests.conftest import RunningAgent, start_agent
from tests.e2e.test_browser import CHROMIUM, chromium_args
from tests.speech import conversation
from tests.turn_support import HOST, SECRET, running_coturn
from turn.credentials import TurnSettings
from turn.server import Coturn

pytestmark = pytest.mark.slow

IGNORE_SELF_SIGNED = "--ignore-certificate-errors"
"""Chromium checks TURN/TLS certificates; the test coturn's is self-signed."""

SELECTED_PAIR_JS = """async () => {
  const stats = await window.agentCall.pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const side = (id) => {
    const c = stats.get(id);
    return { type: c.candidateType, relayProtocol: c.relayProtocol || null,
             address: c.address || c.ip, port: c.port };
  };
  return { local: side(pair.localCandidateId), remote: side(pair.remoteCandidateId),
           bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived };
}"""


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    """Test mode: the agent's host candidates are reachable from the loopback relay."""
    with running_coturn(test_mode=True) as server:
        yield server


def turn_url(coturn: Coturn, transport: str) -> str:
    udp, tcp, tls = coturn.config.urls(HOST)
    return {"udp": udp, "tcp": tcp, "tls": tls}[transport]


@pytest_asyncio.fixture
async def turn_agent(coturn: Coturn, request: pytest.FixtureRequest) -> AsyncIterator[RunningAgent]:
    """A parrot agent whose /ice-config hands out the TURN URL of the test's transport."""
    settings = TurnSettings(urls=(turn_url(coturn, request.param),), secret=SECRET, ttl_s=600)
    running, runner = await start_agent(ice=IceConfig(turn=settings))
    yield running
    await runner.cleanup()


async def agent_side_pair(agent: RunningAgent) -> dict | None:
    """The agent's selected pair for its one call, once ICE has chosen it."""
    for _ in range(100):
        for session in list(agent.sessions.values()):
            pair = selected_pair(session.pc)
            if pair is not None:
                return pair
        await asyncio.sleep(0.1)
    return None


def in_relay_range(coturn: Coturn, address: list | tuple) -> bool:
    host, port = address
    return host == HOST and coturn.config.min_port <= port <= coturn.config.max_port


@pytest.mark.parametrize(
    "turn_agent, relay_protocol",
    [("udp", "udp"), ("tcp", "tcp"), ("tls", "tls")],
    indirect=["turn_agent"],
)
async def test_chromium_relay_only_call(
    coturn: Coturn, turn_agent: RunningAgent, relay_protocol: str, tmp_path
) -> None:
    from playwright.async_api import async_playwright

    clip = tmp_path / "telugu.wav"
    write_audio(clip, conversation([0.5, "greeting", 3.0], 48000), 48000)
    async with async_playwright() as p:
        args = chromium_args(str(clip))
        if relay_protocol == "tls":
            args.append(IGNORE_SELF_SIGNED)
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            context = await browser.new_context()
            await context.grant_permissions(["microphone"], origin=turn_agent.url)
            page = await context.new_page()
            await page.goto(turn_agent.url)
            await page.wait_for_function("document.querySelectorAll('#speaker option').length > 0")
            await page.evaluate("window.agentCall.config.iceTransportPolicy = 'relay'")
            agent_pair = asyncio.create_task(agent_side_pair(turn_agent))
            await page.click("#call")
            await page.wait_for_function(
                "() => window.agentCall.events.some((e) => e.type === 'response_started')",
                timeout=30_000,
            )
            pair = await page.evaluate(SELECTED_PAIR_JS)
            seen_by_agent = await agent_pair
            await page.click("#hangup")
        finally:
            await browser.close()

    assert pair is not None, "no selected candidate pair"
    assert pair["local"]["type"] == "relay", pair
    assert pair["local"]["relayProtocol"] == relay_protocol, pair
    assert pair["bytesReceived"] > 0 and pair["bytesSent"] > 0, pair
    assert seen_by_agent is not None
    assert seen_by_agent["remote"]["type"] == "relay", seen_by_agent
    assert in_relay_range(coturn, seen_by_agent["remote"]["address"]), seen_by_agent


@pytest.mark.parametrize("turn_agent", ["udp", "tcp"], indirect=True)
async def test_aiortc_caller_relay_only_call(coturn: Coturn, turn_agent: RunningAgent) -> None:
    speech = conversation([0.3, "greeting", 0.5], WIRE_RATE)
    servers = await fetch_ice_servers(turn_agent.url)
    assert servers and servers[0].username and servers[0].credential
    agent_pair = asyncio.create_task(agent_side_pair(turn_agent))
    report, _ = await call(turn_agent.url, speech, ice_servers=servers, relay_only=True)
    seen_by_agent = await agent_pair

    assert report.answered == 1, report.to_json()
    assert report.ice_pair is not None
    assert report.ice_pair["local"]["type"] == "relay", report.ice_pair
    assert in_relay_range(coturn, report.ice_pair["local"]["address"]), report.ice_pair
    assert seen_by_agent is not None
    assert seen_by_agent["remote"]["type"] == "relay", seen_by_agent
    assert in_relay_range(coturn, seen_by_agent["remote"]["address"]), seen_by_agent


async def test_relay_call_with_a_token_and_an_origin_allow_list(coturn: Coturn) -> None:
    """With a token configured the TURN credentials need it too, and a relay call made with
    it still connects and is answered."""
    settings = TurnSettings(urls=(turn_url(coturn, "udp"),), secret=SECRET, ttl_s=600)
    agent, runner = await start_agent(
        ice=IceConfig(turn=settings),
        access=AccessPolicy(api_token="relay-token"),
        origins=OriginPolicy(("https://embed.example",)),
    )
    try:
        with pytest.raises(Exception, match="401"):
            await fetch_ice_servers(agent.url)
        servers = await fetch_ice_servers(agent.url, "relay-token")
        speech = conversation([0.3, "greeting", 0.5], WIRE_RATE)
        report, _ = await call(
            agent.url, speech, ice_servers=servers, relay_only=True, token="relay-token"
        )
        assert report.answered == 1, report.to_json()
        assert report.ice_pair is not None and report.ice_pair["local"]["type"] == "relay"
    finally:
        await runner.cleanup()
