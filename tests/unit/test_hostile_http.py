"""What a hostile (or merely unlucky) HTTP client finds: bodies split across writes, inputs
that used to reach a 5xx, Python's exception text, echoed input, squatted slots, cross-origin
pages, tokens and hang-up secrets, security headers, and secrets in the logs."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from agent.config import AgentConfig
from signaling.calls import ClientCaps
from signaling.guards import SHOWN_CHARS
from signaling.origins import OriginPolicy
from tests.conftest import start_agent
from tests.unit.test_signaling import make_offer

PYTHON_TEXT = ("Error(", "Error:", "Traceback", "KeyError", "unpack", "object has no")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def raw_request(url: str, head: bytes, body: bytes, split_at: int, pause_s: float):
    """Send one request over a fresh TCP connection: the head and `body[:split_at]` in one
    write, the rest `pause_s` later in another. Returns (status, headers, body)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body[:split_at])
        await writer.drain()
        await asyncio.sleep(pause_s)
        writer.write(body[split_at:])
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    head_text, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, payload


def request_head(method: str, path: str, content_type: str, length: int) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("endpoint", ["offer", "whip"])
async def test_a_body_split_across_writes_is_read_whole(agent, http, endpoint):
    sdp = await make_offer()
    if endpoint == "offer":
        path, content_type = "/offer", "application/json"
        body = json.dumps({"sdp": sdp, "type": "offer"}).encode()
    else:
        path, content_type = "/v1/calls", "application/sdp"
        body = sdp.encode()
    head = request_head("POST", path, content_type, len(body))
    status, headers, payload = await raw_request(agent.url, head, body, len(body) // 2, 0.02)
    assert status == (200 if endpoint == "offer" else 201), payload[:300]
    resource = json.loads(payload)["resource"] if endpoint == "offer" else headers["Location"]
    async with http.delete(f"{agent.url}{resource}") as r:
        assert r.status == 200
    assert agent.sessions == {}


async def test_a_body_that_never_finishes_is_408_not_a_hang(monkeypatch, agent):
    monkeypatch.setattr("signaling.guards.BODY_TIMEOUT_S", 0.3)
    head = request_head("POST", "/offer", "application/json", 100)
    host, port = agent.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b'{"sdp": ')
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line


async def expect_4xx(response: aiohttp.ClientResponse, status: int, error: str) -> dict:
    assert response.status == status, await response.text()
    payload = await response.json()
    assert payload["error"] == error, payload
    assert not any(text in payload["message"] for text in PYTHON_TEXT), payload
    return payload


async def test_inputs_that_reached_a_5xx_get_a_4xx_of_ours(agent, http):
    async with http.get(f"{agent.url}/static/{'a' * 300}") as r:
        await expect_4xx(r, 404, "not_found")
    async with http.get(f"{agent.url}/static/..%2fpyproject.toml") as r:
        assert r.status == 404
    json_headers = {"Content-Type": "application/json"}
    deep = b"[" * 20_000 + b"]" * 20_000
    async with http.post(f"{agent.url}/offer", data=deep, headers=json_headers) as r:
        await expect_4xx(r, 400, "malformed_json")
    huge = b'{"sdp": "v=0", "type": "offer", "x": ' + b"7" * 5000 + b"}"
    async with http.post(f"{agent.url}/offer", data=huge, headers=json_headers) as r:
        await expect_4xx(r, 400, "malformed_json")
    async with http.get(f"{agent.url}/static/app.js") as r:
        assert r.status == 200 and r.content_type == "application/javascript"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a=setup:actpass", "a=setup:zzz"),
        ("a=setup:actpass", "a=setup:holdconn"),
        ("a=fingerprint:sha-256 ", "a=fingerprint:sha-256"),
        ("m=audio ", "m=audio x"),
        ("a=ice-pwd:", "a=ice-pwdx:"),
    ],
)
async def test_bad_sdp_fields_never_show_python_exception_text(agent, http, old, new):
    sdp = await make_offer()
    assert old in sdp
    async with http.post(
        f"{agent.url}/offer", json={"sdp": sdp.replace(old, new), "type": "offer"}
    ) as r:
        assert r.status == 400, await r.text()
        payload = await r.json()
    assert payload["error"] in ("invalid_sdp", "offer_refused"), payload
    assert not any(text in payload["message"] for text in PYTHON_TEXT), payload
    assert agent.sessions == {}


async def test_refused_values_are_echoed_short_and_escaped(agent, http):
    long_name = "<script>" + "x" * 60_000
    body = {"sdp": await make_offer(), "type": "offer", "speaker": long_name}
    async with http.post(f"{agent.url}/offer", json=body) as r:
        payload = await expect_4xx(r, 400, "unknown_speaker")
        assert len(await r.read()) < 1000
    assert "<script>" in payload["message"] and "x" * (SHOWN_CHARS + 1) not in payload["message"]
    async with http.post(
        f"{agent.url}/v1/calls",
        params={"emotion": "\u202e" + "y" * 5000},
        data=body["sdp"],
        headers={"Content-Type": "application/sdp"},
    ) as r:
        payload = await expect_4xx(r, 400, "unknown_emotion")
        assert "\\u202e" in payload["message"] and len(payload["message"]) < 200
    body = {"sdp": "v=0\r\n", "type": "z" * 10_000}
    async with http.post(f"{agent.url}/offer", json=body) as r:
        payload = await expect_4xx(r, 400, "not_an_offer")
        assert len(payload["message"]) < 200


async def test_cross_origin_pages_cannot_start_calls(agent, http):
    sdp = await make_offer()
    body = json.dumps({"sdp": sdp, "type": "offer"})
    evil = {"Origin": "https://evil.example"}
    # what a page elsewhere can send without a preflight: refused on origin and type
    async with http.post(
        f"{agent.url}/offer", data=body, headers={**evil, "Content-Type": "text/plain"}
    ) as r:
        await expect_4xx(r, 403, "origin_not_allowed")
    async with http.post(
        f"{agent.url}/offer", data=body, headers={"Content-Type": "text/plain"}
    ) as r:
        await expect_4xx(r, 415, "unsupported_media_type")
    async with http.get(f"{agent.url}/ice-config", headers=evil) as r:
        await expect_4xx(r, 403, "origin_not_allowed")
    async with http.options(
        f"{agent.url}/offer", headers={**evil, "Access-Control-Request-Method": "POST"}
    ) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    assert agent.sessions == {}
    # the page's own origin (what Chromium sends on the page's fetch) passes
    own = {"Origin": agent.url, "Content-Type": "application/json"}
    async with http.post(f"{agent.url}/offer", data=body, headers=own) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers
        resource = (await r.json())["resource"]
    async with http.delete(f"{agent.url}{resource}", headers={"Origin": agent.url}) as r:
        assert r.status == 200


async def test_an_allowed_origin_gets_cors_and_its_preflight_answered(http):
    site = "https://embed.example"
    agent, runner = await start_agent(origins=OriginPolicy((site,)))
    try:
        preflight = {
            "Origin": site,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        }
        async with http.options(f"{agent.url}/offer", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == site
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
        headers = {"Origin": site, "Content-Type": "application/sdp"}
        async with http.post(
            f"{agent.url}/v1/calls", data=await make_offer(), headers=headers
        ) as r:
            assert r.status == 201
            assert r.headers["Access-Control-Allow-Origin"] == site
            assert "Location" in r.headers["Access-Control-Expose-Headers"]
            location = r.headers["Location"]
        async with http.get(f"{agent.url}/ice-config", headers={"Origin": site}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == site
        async with http.delete(f"{agent.url}{location}", headers={"Origin": site}) as r:
            assert r.status == 200
        async with http.get(f"{agent.url}/v1/options", headers={"Origin": "http://other"}) as r:
            assert r.status == 403
    finally:
        await runner.cleanup()


def test_origin_policy_refuses_what_is_not_an_origin():
    for bad in ("embed.example", "https://embed.example/path", "ftp://x"):
        with pytest.raises(ValueError):
            OriginPolicy((bad,))
    policy = OriginPolicy(("HTTPS://Embed.example:443",))
    assert policy.allows("https://embed.example", "agent:8080")
    assert not policy.allows("http://embed.example", "agent:8080")
    assert policy.allows("http://agent:8080", "agent:8080")  # the page's own
    assert policy.allows("https://agent", "agent:443")
    assert not policy.allows("null", "agent:8080")
    assert OriginPolicy(("*",)).allows("https://anything.example", "agent:8080")


async def test_hang_up_needs_the_call_secret(agent, http):
    async with http.post(
        f"{agent.url}/offer", json={"sdp": await make_offer(), "type": "offer"}
    ) as r:
        answer = await r.json()
    call_id, resource = answer["session_id"], answer["resource"]
    secret = resource.rsplit("/", 1)[-1]
    assert resource == f"/v1/calls/{call_id}/{secret}" and len(secret) >= 40
    assert len(call_id) == 32  # 128 random bits, hex
    for guess in (
        f"/v1/calls/{call_id}",
        f"/v1/calls/{call_id}/x",
        f"/v1/calls/{call_id}/{call_id}",
    ):
        async with http.delete(f"{agent.url}{guess}") as r:
            assert r.status == 404, guess
    assert call_id in agent.sessions
    async with http.delete(f"{agent.url}{resource}") as r:
        assert r.status == 200
    assert agent.sessions == {}


async def test_logs_never_show_the_call_secret(agent, http, caplog):
    caplog.set_level(logging.DEBUG)
    async with http.post(
        f"{agent.url}/v1/calls",
        data=await make_offer(),
        headers={"Content-Type": "application/sdp"},
    ) as r:
        location = r.headers["Location"]
    async with http.delete(f"{agent.url}{location}") as r:
        assert r.status == 200
    secret = location.rsplit("/", 1)[-1]
    access = [rec.getMessage() for rec in caplog.records if rec.name == "aiohttp.access"]
    assert any("DELETE /v1/calls/" in line and "/***" in line for line in access), access
    assert secret not in caplog.text


async def test_responses_carry_security_headers_and_no_banner(agent, http):
    for path in ("/", "/static/app.js", "/healthz", "/static/missing", "/nowhere"):
        async with http.get(f"{agent.url}{path}") as r:
            csp = r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert "'unsafe-inline'" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Server"] == "telugu-s2s", path
            assert "aiohttp" not in str(r.headers) and "Python" not in str(r.headers)


async def test_offers_that_never_connect_cannot_take_every_slot(http):
    """Two flooding addresses hold at most their pending share; a third address still calls,
    and the squatted slots come back when the establish timeout passes."""
    config = AgentConfig(establish_timeout_s=1.0)
    agent, runner = await start_agent(config, max_sessions=8)
    try:
        caps = ClientCaps.for_capacity(8)
        flooders = ["127.0.0.2", "127.0.0.3"]
        statuses: dict[str, list[int]] = {}
        for address in flooders:
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            async with aiohttp.ClientSession(connector=connector) as flood:
                statuses[address] = []
                for _ in range(6):  # offers whose peers are gone: they never connect
                    body = {"sdp": await make_offer(), "type": "offer"}
                    async with flood.post(f"{agent.url}/offer", json=body) as r:
                        statuses[address].append(r.status)
        for address in flooders:
            assert statuses[address] == [200] * caps.pending + [429] * (6 - caps.pending)
        assert len(agent.sessions) == 2 * caps.pending
        async with http.post(
            f"{agent.url}/offer", json={"sdp": await make_offer(), "type": "offer"}
        ) as r:
            assert r.status == 200  # a normal caller gets in
        sessions = list(agent.sessions.values())
        await asyncio.wait_for(asyncio.gather(*(s.closed.wait() for s in sessions)), 5)
        assert {s.close_reason for s in sessions} == {"not connected within 1 s"}
        assert agent.sessions == {}
    finally:
        await runner.cleanup()


async def test_per_client_caps_can_be_lifted(http):
    agent, runner = await start_agent(max_sessions=4, caps=ClientCaps(pending=0, calls=0))
    try:
        for _ in range(4):
            async with http.post(
                f"{agent.url}/offer", json={"sdp": await make_offer(), "type": "offer"}
            ) as r:
                assert r.status == 200
        async with http.post(
            f"{agent.url}/offer", json={"sdp": await make_offer(), "type": "offer"}
        ) as r:
            assert r.status == 503
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: \x01" + b"<echo>" * 500 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_malformed_http_gets_a_short_4xx_of_ours_and_one_log_line(agent, raw, caplog):
    caplog.set_level(logging.DEBUG)
    host, port = agent.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400") or head.startswith(b"HTTP/1.1 400"), head
    assert b"Server: telugu-s2s" in head and b"aiohttp" not in head
    assert json.loads(body)["error"] == "bad_request" and len(body) < 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
