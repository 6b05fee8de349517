"""Every bad input gets a clear 4xx JSON error and changes nothing."""

import json

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from prometheus_client.parser import text_string_to_metric_families

from agent.config import AgentConfig
from models.controls import EMOTIONS, SPEAKERS
from signaling.guards import MAX_OFFER_BODY_BYTES
from tests.conftest import start_agent


async def make_offer(kinds=("audio",), channel=True) -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction="sendrecv")
    if channel:
        pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def post_json(http, url, body, **kw):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}, **kw) as r:
        return r.status, await r.json(), r.headers


async def expect_refused(agent, http, body, status, error):
    got, payload, _ = await post_json(http, f"{agent.url}/offer", body)
    assert (got, payload["error"]) == (status, error), payload
    assert payload["message"]
    assert agent.sessions == {}
    return payload


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        ([1, 2], "malformed_json"),
        ({"type": "offer"}, "missing_fields"),
        ({"sdp": "v=0"}, "missing_fields"),
        ({"sdp": 5, "type": "offer"}, "invalid_field"),
        ({"sdp": "v=0\r\n", "type": "answer"}, "not_an_offer"),
        ({"sdp": "hello", "type": "offer"}, "invalid_sdp"),
        ({"sdp": "v=0\r\nm=audio x y z\r\n", "type": "offer"}, "invalid_sdp"),
        ({"sdp": "v=0\r\ns=-\r\n", "type": "offer"}, "no_audio"),
    ],
)
async def test_malformed_offers_are_refused(agent, http, body, error):
    await expect_refused(agent, http, body, 400, error)


async def test_video_only_offer_is_refused(agent, http):
    sdp = await make_offer(kinds=("video",))
    await expect_refused(agent, http, {"sdp": sdp, "type": "offer"}, 400, "no_audio")


def without(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefix))


async def test_offer_without_dtls_fingerprint_is_refused(agent, http):
    sdp = without(await make_offer(), "a=fingerprint")
    await expect_refused(agent, http, {"sdp": sdp, "type": "offer"}, 400, "no_fingerprint")


async def test_offer_that_parses_but_cannot_be_answered_is_refused(agent, http):
    sdp = without(await make_offer(), "a=ice-ufrag")
    payload = await expect_refused(agent, http, {"sdp": sdp, "type": "offer"}, 400, "offer_refused")
    assert payload["message"] == "the offer cannot be answered"  # ours, not aiortc's exception
    text = await (await http.get(f"{agent.url}/metrics")).text()
    assert "telugu_s2s_active_sessions 0.0" in text


def with_candidates(sdp: str, hosts: list[str]) -> str:
    """The offer with extra host candidates (at the given addresses or names) after its own."""
    lines = sdp.splitlines()
    at = max(i for i, line in enumerate(lines) if line.startswith("a=candidate"))
    extra = [
        f"a=candidate:x{i} 1 udp 2130706431 {host} {40000 + i} typ host"
        for i, host in enumerate(hosts)
    ]
    return "\r\n".join(lines[: at + 1] + extra + lines[at + 1 :]) + "\r\n"


async def test_offer_with_too_many_candidates_is_refused(agent, http):
    sdp = with_candidates(await make_offer(), [f"10.0.0.{i}" for i in range(40)])
    await expect_refused(agent, http, {"sdp": sdp, "type": "offer"}, 400, "too_many_candidates")


async def test_an_offer_the_agent_cannot_answer_in_time_is_refused_and_freed(
    agent, http, monkeypatch
):
    """mDNS candidate names cost the agent about a second to resolve (none answers here)."""
    from signaling import calls

    monkeypatch.setattr(calls, "ACCEPT_TIMEOUT_S", 0.3)
    lines = (await make_offer()).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("a=candidate"):
            fields = line.split()
            fields[4] = f"peer{i}.local"
            lines[i] = " ".join(fields)
    sdp = "\r\n".join(lines) + "\r\n"
    await expect_refused(agent, http, {"sdp": sdp, "type": "offer"}, 400, "offer_timeout")
    text = await (await http.get(f"{agent.url}/metrics")).text()
    assert "telugu_s2s_active_sessions 0.0" in text


async def test_an_offer_aiortc_fails_to_close_is_refused_and_freed(agent, http):
    """Found by fuzzing: a data channel's mid swapped with a candidate line makes aiortc's own
    close() raise on the half-built connection; the offer still gets a 4xx and the call is
    freed (it used to be a 500 and a session whose close() never finished)."""
    lines = (await make_offer()).splitlines()
    mid = lines.index("a=mid:1")
    candidate = next(i for i, line in enumerate(lines) if line.startswith("a=candidate"))
    lines[mid], lines[candidate] = lines[candidate], lines[mid]
    sdp = "\r\n".join(lines) + "\r\n"
    status, payload, _ = await post_json(http, f"{agent.url}/offer", {"sdp": sdp, "type": "offer"})
    assert 400 <= status < 500, payload
    assert agent.sessions == {}
    text = await (await http.get(f"{agent.url}/metrics")).text()
    assert "telugu_s2s_active_sessions 0.0" in text


async def test_unknown_speaker_and_emotion_list_the_valid_ones(agent, http):
    sdp = await make_offer()
    payload = await expect_refused(
        agent, http, {"sdp": sdp, "type": "offer", "speaker": "robot"}, 400, "unknown_speaker"
    )
    assert payload["valid"] == list(SPEAKERS)
    payload = await expect_refused(
        agent, http, {"sdp": sdp, "type": "offer", "emotion": "ANGRY"}, 400, "unknown_emotion"
    )
    assert payload["valid"] == list(EMOTIONS)


async def test_offer_body_over_its_limit_is_413(agent, http):
    """An offer may carry a voice clip (MAX_OFFER_BODY_BYTES); past that it is refused."""
    body = json.dumps({"sdp": "v=0\r\n" + "a" * MAX_OFFER_BODY_BYTES, "type": "offer"})
    await expect_refused(agent, http, body, 413, "body_too_large")

    async def chunks():  # no Content-Length: the limit still holds
        for _ in range(MAX_OFFER_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024

    headers = {"Content-Type": "application/json"}
    async with http.post(f"{agent.url}/offer", data=chunks(), headers=headers) as r:
        assert r.status == 413 and (await r.json())["error"] == "body_too_large"


async def test_whip_checks_content_type_and_unknown_hang_up_is_404(agent, http):
    sdp = await make_offer()
    async with http.post(
        f"{agent.url}/v1/calls", data=sdp, headers={"Content-Type": "text/plain"}
    ) as r:
        assert r.status == 415 and (await r.json())["error"] == "unsupported_media_type"
    async with http.post(
        f"{agent.url}/v1/calls?speaker=robot", data=sdp, headers={"Content-Type": "application/sdp"}
    ) as r:
        assert r.status == 400 and (await r.json())["valid"] == list(SPEAKERS)
    async with http.delete(f"{agent.url}/v1/calls/nope/secret") as r:
        assert r.status == 404 and (await r.json())["error"] == "no_such_call"
    async with http.delete(f"{agent.url}/v1/calls/nope") as r:  # a resource has a secret
        assert r.status == 404
    async with http.get(f"{agent.url}/offer") as r:
        assert r.status == 405 and "error" in await r.json()
    assert agent.sessions == {}


async def test_session_cap_answers_503_with_retry_after(http):
    agent, runner = await start_agent(max_sessions=1)
    try:
        sdp = await make_offer()
        status, first, _ = await post_json(
            http, f"{agent.url}/offer", {"sdp": sdp, "type": "offer"}
        )
        assert status == 200 and first["type"] == "answer" and first["session_id"]
        status, payload, headers = await post_json(
            http, f"{agent.url}/offer", {"sdp": await make_offer(), "type": "offer"}
        )
        assert status == 503 and payload["error"] == "at_capacity"
        assert int(headers["Retry-After"]) > 0
        assert list(agent.sessions) == [first["session_id"]]
    finally:
        await runner.cleanup()
    assert agent.sessions == {}


async def test_health_options_ice_config_metrics_and_page(agent, http):
    async with http.get(f"{agent.url}/healthz") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with http.get(f"{agent.url}/v1/options") as r:
        options = await r.json()
        assert list(options["speakers"]) == list(SPEAKERS) and options["emotions"] == list(EMOTIONS)
    async with http.get(f"{agent.url}/ice-config") as r:
        assert (await r.json()) == {"iceServers": []}
    async with http.get(f"{agent.url}/metrics") as r:
        text = await r.text()
        assert r.status == 200 and "telugu_s2s_active_sessions 0.0" in text
        assert "telugu_s2s_stage_latency_ms" in text
    async with http.get(f"{agent.url}/") as r:
        assert r.status == 200 and "<html" in (await r.text()).lower()


@pytest.mark.parametrize("opus_fec", [True, False])
async def test_answer_asks_for_opus_fec(http, opus_fec):
    agent, runner = await start_agent(AgentConfig(opus_fec=opus_fec))
    try:
        status, body, _ = await post_json(
            http, f"{agent.url}/offer", {"sdp": await make_offer(), "type": "offer"}
        )
        assert status == 200
        lines = body["sdp"].splitlines()
        opus_pt = next(ln.split()[0].split(":")[1] for ln in lines if "opus/48000" in ln)
        fmtp = [ln for ln in lines if ln.startswith(f"a=fmtp:{opus_pt} ")]
        assert any("useinbandfec=1" in ln for ln in fmtp) == opus_fec
    finally:
        await runner.cleanup()


async def test_a_call_past_the_capacity_gets_503_and_the_admitted_one_stays(http):
    agent, runner = await start_agent(max_sessions=8, capacity=1)
    try:
        status, first, _ = await post_json(
            http, f"{agent.url}/offer", {"sdp": await make_offer(), "type": "offer"}
        )
        assert status == 200
        status, payload, headers = await post_json(
            http, f"{agent.url}/offer", {"sdp": await make_offer(), "type": "offer"}
        )
        assert status == 503 and payload["error"] == "at_capacity"
        assert int(headers["Retry-After"]) > 0
        assert list(agent.sessions) == [first["session_id"]]
        async with http.get(f"{agent.url}/healthz") as resp:
            assert (await resp.json())["capacity"] == 1
        async with http.get(f"{agent.url}/metrics") as resp:
            text = await resp.text()
        values = {
            (s.name, s.labels.get("reason")): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }
        assert values[("telugu_s2s_capacity_calls", None)] == 1.0
        assert values[("telugu_s2s_rejected_requests_total", "at_capacity")] == 1.0
    finally:
        await runner.cleanup()
