"""Fuzzing the signaling endpoints with hypothesis on a served agent: whatever arrives, the
answer is never a 5xx and the server keeps answering. Bounded and derandomized for CI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.admission import AccessPolicy
from tests.conftest import start_agent

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


REQUEST_LIMIT_S = 15.0
"""A request not answered within this is a failure (a hung handler), not a slow test."""


class Served:
    """An agent on loopback driven from synchronous hypothesis tests through its own loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.agent, self.runner = self.run(start_agent(access=AccessPolicy()))
        self.http = self.run(self._session())

    @staticmethod
    async def _session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def run(self, coro):  # noqa: ANN001, ANN201
        return self.loop.run_until_complete(coro)

    def request(self, method: str, path: str, **kw) -> int:  # noqa: ANN003
        async def go() -> int:
            async with self.http.request(method, f"{self.agent.url}{path}", **kw) as r:
                await r.read()
                return r.status

        status = self.run(asyncio.wait_for(go(), REQUEST_LIMIT_S))
        # a fuzzed offer that happened to be acceptable: hang it up at once
        for session in list(self.agent.sessions.values()):
            self.run(session.close("fuzz"))
        return status

    def close(self) -> None:
        assert self.request("GET", "/healthz") == 200
        self.run(self.http.close())
        self.run(self.runner.cleanup())
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.close()


def ok(status: int) -> bool:
    return status < 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"sdp": st.text(max_size=500), "type": st.sampled_from(["offer", "answer", ""])},
            optional={"speaker": json_values, "emotion": json_values},
        ).map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/sdp"]),
)
def test_fuzz_post_offer(served, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    assert ok(served.request("POST", "/offer", data=body, headers=headers))


@FUZZ
@given(
    session_id=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), max_size=80
    ),
    method=st.sampled_from(["DELETE", "GET", "POST", "PATCH"]),
)
def test_fuzz_calls_by_id(served, session_id, method):
    from urllib.parse import quote

    assert ok(served.request(method, f"/v1/calls/{quote(session_id, safe='')}"))


@FUZZ
@given(
    path=st.sampled_from(["/ice-config", "/v1/options", "/healthz"]),
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    body=st.binary(max_size=200),
)
def test_fuzz_read_only_endpoints(served, path, method, query, body):
    assert ok(served.request(method, path, params=query, data=body))


@pytest.fixture(scope="module")
def real_offer(served) -> list[str]:
    """The lines of a real aiortc offer (audio + the events data channel)."""
    from tests.unit.test_signaling import make_offer

    return served.run(make_offer()).splitlines()


MUTATED = settings(FUZZ, max_examples=120)


@MUTATED
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "duplicate", "garble", "swap"]),
            st.integers(min_value=0, max_value=10_000),
            st.integers(min_value=0, max_value=10_000),
            st.text(max_size=8),
        ),
        min_size=1,
        max_size=4,
    ),
    endpoint=st.sampled_from(["offer", "whip"]),
)
def test_fuzz_mutated_real_offers(served, real_offer, edits, endpoint):
    """Lines of a real offer deleted, duplicated, garbled or swapped: a 4xx or an answer, in
    bounded time."""
    lines = list(real_offer)
    for kind, i, j, text in edits:
        i, j = i % len(lines), j % len(lines)
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "garble":
            cut = j % (len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + text + lines[i][cut + len(text) :]
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
    sdp = "\r\n".join(lines) + "\r\n"
    if endpoint == "offer":
        status = served.request("POST", "/offer", json={"sdp": sdp, "type": "offer"})
    else:
        headers = {"Content-Type": "application/sdp"}
        status = served.request("POST", "/v1/calls", data=sdp.encode(), headers=headers)
    assert ok(status)


@settings(FUZZ, max_examples=40)
@given(
    path=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"),
        min_size=1,
        max_size=2000,
    ),
    prefix=st.sampled_from(["/static/", "/", "/v1/calls/", "/v1/calls/x/"]),
    method=st.sampled_from(["GET", "DELETE", "POST", "OPTIONS"]),
)
def test_fuzz_long_and_odd_paths(served, path, prefix, method):
    from urllib.parse import quote

    assert ok(served.request(method, prefix + quote(path, safe="/")))


@settings(FUZZ, max_examples=60)
@given(
    depth=st.integers(min_value=1, max_value=30_000),
    digits=st.integers(min_value=1, max_value=6000),
    shape=st.sampled_from(["array", "object", "number", "offer_field"]),
)
def test_fuzz_deep_json_and_huge_numbers(served, depth, digits, shape):
    number = "9" * digits
    if shape == "array":
        body = "[" * depth + number + "]" * depth
    elif shape == "object":
        body = '{"a":' * depth + number + "}" * depth
    elif shape == "number":
        body = number
    else:
        body = '{"sdp": "v=0", "type": "offer", "speaker": ' + "[" * depth + "]" * depth + "}"
    headers = {"Content-Type": "application/json"}
    assert ok(served.request("POST", "/offer", data=body.encode(), headers=headers))


@settings(FUZZ, max_examples=20)
@given(
    split=st.floats(min_value=0.0, max_value=1.0),
    pause_ms=st.integers(min_value=0, max_value=30),
    endpoint=st.sampled_from(["offer", "whip"]),
)
def test_fuzz_bodies_split_across_writes(served, real_offer, split, pause_ms, endpoint):
    """A real offer whose body arrives in two writes, split anywhere: always answered."""
    from tests.unit.test_hostile_http import raw_request, request_head

    sdp = "\r\n".join(real_offer) + "\r\n"
    if endpoint == "offer":
        path, kind, body = "/offer", "application/json", json.dumps({"sdp": sdp, "type": "offer"})
    else:
        path, kind, body = "/v1/calls", "application/sdp", sdp
    data = body.encode()
    head = request_head("POST", path, kind, len(data))
    status, _, payload = served.run(
        raw_request(served.agent.url, head, data, int(split * len(data)), pause_ms / 1000)
    )
    for session in list(served.agent.sessions.values()):
        served.run(session.close("fuzz"))
    assert status in (200, 201), payload[:200]
