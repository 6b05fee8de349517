"""Rate limit (429), API token (401) and session cap (503) of a served agent on loopback."""

import asyncio

import aiohttp
import pytest

from signaling.admission import AccessPolicy
from signaling.clientip import parse_networks
from signaling.ratelimit import RateLimit
from tests.conftest import start_agent
from tests.unit.test_signaling import make_offer

TOKEN = "s3cret-token-ü"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def post_offer(http, url, sdp="v=0\r\n", headers=None):
    async with http.post(
        f"{url}/offer", json={"sdp": sdp, "type": "offer"}, headers=headers or {}
    ) as r:
        return r.status, await r.json(), r.headers


async def rejected(url, http, reason: str) -> float:
    async with http.get(f"{url}/metrics") as r:
        text = await r.text()
    key = f'telugu_s2s_rejected_requests_total{{reason="{reason}"}} '
    lines = [line for line in text.splitlines() if line.startswith(key)]
    return float(lines[0].split()[-1]) if lines else 0.0


async def test_rate_limit_answers_429_with_retry_after(http):
    agent, runner = await start_agent(access=AccessPolicy(rate_limit=RateLimit(2, 60.0, 2)))
    try:
        # bad requests count too: a flood of junk cannot outrun the limit
        assert (await post_offer(http, agent.url))[0] == 400
        status, answer, _ = await post_offer(http, agent.url, await make_offer())
        assert status == 200 and answer["type"] == "answer"
        for _ in range(3):
            status, payload, headers = await post_offer(http, agent.url, await make_offer())
            assert (status, payload["error"]) == (429, "rate_limited")
            assert 1 <= int(headers["Retry-After"]) <= 30
        async with http.post(
            f"{agent.url}/v1/calls",
            data=await make_offer(),
            headers={"Content-Type": "application/sdp"},
        ) as r:
            assert r.status == 429 and "Retry-After" in r.headers
        assert list(agent.sessions) == [answer["session_id"]]
        assert await rejected(agent.url, http, "rate_limited") == 4
        # other endpoints are not limited
        async with http.get(f"{agent.url}/healthz") as r:
            assert r.status == 200
    finally:
        await runner.cleanup()


async def test_rate_limit_refills(http):
    agent, runner = await start_agent(access=AccessPolicy(rate_limit=RateLimit(1, 0.5, 1)))
    try:
        assert (await post_offer(http, agent.url))[0] == 400
        assert (await post_offer(http, agent.url))[0] == 429
        await asyncio.sleep(0.6)
        assert (await post_offer(http, agent.url))[0] == 400
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_for_counts_only_through_a_trusted_proxy(http, trusted):
    access = AccessPolicy(
        rate_limit=RateLimit(1, 60.0, 1),
        trusted_proxies=parse_networks(["127.0.0.1"]) if trusted else (),
    )
    agent, runner = await start_agent(access=access)
    try:
        statuses = [
            (await post_offer(http, agent.url, headers={"X-Forwarded-For": f"198.51.100.{i}"}))[0]
            for i in range(3)
        ]
        # behind a trusted proxy three clients get a token each; otherwise one address did
        assert statuses == ([400, 400, 400] if trusted else [400, 429, 429])
    finally:
        await runner.cleanup()


async def test_api_token_protects_call_creation(http):
    agent, runner = await start_agent(access=AccessPolicy(api_token=TOKEN))
    try:
        sdp = await make_offer()
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            status, payload, got = await post_offer(http, agent.url, sdp, headers)
            assert (status, payload["error"]) == (401, "unauthorized"), headers
            assert got["WWW-Authenticate"].startswith("Bearer")
        async with http.post(
            f"{agent.url}/v1/calls", data=sdp, headers={"Content-Type": "application/sdp"}
        ) as r:
            assert r.status == 401
        assert agent.sessions == {}
        assert await rejected(agent.url, http, "unauthorized") == 6

        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, answer, _ = await post_offer(http, agent.url, sdp, auth)
        assert status == 200 and answer["session_id"] in agent.sessions
        async with http.post(
            f"{agent.url}/v1/calls",
            data=await make_offer(),
            headers={"Content-Type": "application/sdp", **auth},
        ) as r:
            assert r.status == 201
            location = r.headers["Location"]
        # the page, its options and health need no token; TURN credentials and hang-up do
        for path in ("/", "/v1/options", "/healthz"):
            async with http.get(f"{agent.url}{path}") as r:
                assert r.status == 200, path
        async with http.get(f"{agent.url}/ice-config") as r:
            assert r.status == 401 and "WWW-Authenticate" in r.headers
        async with http.get(f"{agent.url}/ice-config", headers=auth) as r:
            assert r.status == 200
        async with http.delete(f"{agent.url}{location}") as r:
            assert r.status == 401
        assert len(agent.sessions) == 2
        async with http.delete(f"{agent.url}{location}", headers=auth) as r:
            assert r.status == 200
        async with http.delete(f"{agent.url}{answer['resource']}", headers=auth) as r:
            assert r.status == 200
        assert agent.sessions == {}
    finally:
        await runner.cleanup()


async def test_failed_tokens_are_limited_apart_from_the_call_rate(http):
    """A neighbour behind the same address guessing tokens gets 429 on its guesses; callers
    with the token keep their own call rate."""
    access = AccessPolicy(
        rate_limit=RateLimit(3, 60.0, 3), api_token=TOKEN, auth_failures=RateLimit(4, 60.0, 4)
    )
    agent, runner = await start_agent(access=access)
    try:
        wrong = {"Authorization": "Bearer guess"}
        statuses = [(await post_offer(http, agent.url, headers=wrong))[0] for _ in range(8)]
        assert statuses == [401] * 4 + [429] * 4
        auth = {"Authorization": f"Bearer {TOKEN}"}
        statuses = [(await post_offer(http, agent.url, headers=auth))[0] for _ in range(4)]
        assert statuses == [400, 400, 400, 429]  # the call rate, untouched by the guesses
        assert await rejected(agent.url, http, "auth_failures") == 4
        async with http.get(f"{agent.url}/ice-config", headers=wrong) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    finally:
        await runner.cleanup()


async def test_ice_config_is_rate_limited_in_buckets_of_its_own(http):
    agent, runner = await start_agent(access=AccessPolicy(rate_limit=RateLimit(2, 60.0, 2)))
    try:
        statuses = []
        for _ in range(3):
            async with http.get(f"{agent.url}/ice-config") as r:
                statuses.append(r.status)
        assert statuses == [200, 200, 429]
        assert (await post_offer(http, agent.url))[0] == 400  # calls have their own tokens
    finally:
        await runner.cleanup()
