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
