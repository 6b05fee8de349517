"""coturn as configured by turn/: credentials minted by the agent are accepted over UDP, TCP
and TLS; wrong and expired ones are refused; relays to private (and, outside test mode,
loopback) addresses are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aioice.stun import Class, Message, Method, TransactionFailed

from tests.turn_support import HOST, SECRET, allocate, insecure_tls, running_coturn
from turn.credentials import mint, sign
from turn.server import Coturn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    """Production rules (no loopback peers), but reachable on loopback."""
    with running_coturn(test_mode=False) as server:
        yield server


@pytest.fixture(scope="module")
def coturn_test_mode() -> Iterator[Coturn]:
    with running_coturn(test_mode=True) as server:
        yield server


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_minted_credentials_allocate_a_relay(coturn: Coturn, transport: str) -> None:
    cred = mint(SECRET, "session-1", ttl_s=60)
    port = coturn.config.tls_port if transport == "tls" else coturn.config.port
    tls = insecure_tls() if transport == "tls" else None
    client = await allocate(
        (HOST, port), cred.username, cred.password, "udp" if transport == "udp" else "tcp", tls
    )
    try:
        host, relay_port = client.relayed_address
        assert host == HOST
        assert coturn.config.min_port <= relay_port <= coturn.config.max_port
    finally:
        await client.delete()


@pytest.mark.parametrize(
    "username, password",
    [
        pytest.param(f"{int(time.time()) + 600}:s", "d3Jvbmc=", id="wrong-password"),
        pytest.param(f"{int(time.time()) + 600}:s", sign("another-secret", "x"), id="wrong-secret"),
        pytest.param(
            f"{int(time.time()) - 5}:s", sign(SECRET, f"{int(time.time()) - 5}:s"), id="expired"
        ),
    ],
)
async def test_bad_credentials_are_refused(coturn: Coturn, username: str, password: str) -> None:
    with pytest.raises(TransactionFailed) as refused:
        await allocate((HOST, coturn.config.port), username, password)
    assert refused.value.response.error_code == 401


async def test_a_credential_stops_working_when_it_expires(coturn: Coturn) -> None:
    cred = mint(SECRET, "short", ttl_s=1)
    client = await allocate((HOST, coturn.config.port), cred.username, cred.password)
    await client.delete()
    await asyncio.sleep(max(0.0, cred.expires_at - time.time()) + 1.1)
    with pytest.raises(TransactionFailed) as refused:
        await allocate((HOST, coturn.config.port), cred.username, cred.password)
    assert refused.value.response.error_code == 401


async def test_a_live_allocation_outlives_its_credential(coturn: Coturn) -> None:
    """coturn checks the expiry when a relay is allocated, not when it is refreshed: a call
    keeps its relay past the TTL; only a new allocation (a new call, an ICE restart) needs
    fresh credentials."""
    cred = mint(SECRET, "long-call", ttl_s=1)
    client = await allocate((HOST, coturn.config.port), cred.username, cred.password)
    try:
        await asyncio.sleep(max(0.0, cred.expires_at - time.time()) + 1.1)
        refresh = Message(message_method=Method.REFRESH, message_class=Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await client.request_with_retry(refresh)
        assert response.attributes["LIFETIME"] == 600
        with pytest.raises(TransactionFailed) as refused:
            await allocate((HOST, coturn.config.port), cred.username, cred.password)
        assert refused.value.response.error_code == 401
    finally:
        await client.delete()


@pytest.mark.parametrize(
    "peer", ["10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.1.1", "100.64.0.1", HOST]
)
async def test_relays_to_private_and_loopback_peers_are_refused(coturn: Coturn, peer: str) -> None:
    cred = mint(SECRET, "peer-check")
    client = await allocate((HOST, coturn.config.port), cred.username, cred.password)
    try:
        with pytest.raises(TransactionFailed) as refused:
            await client.channel_bind(0x4000, (peer, 9))
        assert refused.value.response.error_code == 403
        await client.channel_bind(0x4001, ("192.0.2.10", 9))  # a public-range peer is fine
    finally:
        await client.delete()


async def test_test_mode_allows_loopback_but_not_private_peers(coturn_test_mode: Coturn) -> None:
    cred = mint(SECRET, "peer-check")
    client = await allocate((HOST, coturn_test_mode.config.port), cred.username, cred.password)
    try:
        await client.channel_bind(0x4000, (HOST, 9))
        with pytest.raises(TransactionFailed) as refused:
            await client.channel_bind(0x4001, ("10.1.2.3", 9))
        assert refused.value.response.error_code == 403
    finally:
        await client.delete()


def test_the_fixture_cleans_up() -> None:
    with running_coturn() as server:
        process = server.process
        run_dir = server.run_dir
        assert process is not None and process.poll() is None
        assert "static-auth-secret" in server.conf_path.read_text()
    assert process.poll() is not None
    assert not run_dir.exists()
