"""A real coturn on loopback for tests, and a minimal TURN client (aioice's)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from turn.coturn import CoturnConfig
from turn.server import Coturn, free_port, free_range

SECRET = "test-secret-" + "x" * 20
HOST = "127.0.0.1"


@contextmanager
def running_coturn(test_mode: bool = True, **overrides: object) -> Iterator[Coturn]:
    """coturn on free loopback ports; the process is killed and its directory removed after."""
    port = free_port()
    tls_port = free_port()
    low, high = free_range(16)
    config = CoturnConfig(
        listening_ips=(HOST,),
        relay_ips=(HOST,),
        port=port,
        tls_port=tls_port,
        min_port=low,
        max_port=high,
        test_mode=test_mode,
        **overrides,  # type: ignore[arg-type]
    )
    server = Coturn(config, SECRET)
    with server:
        yield server


def insecure_tls() -> ssl.SSLContext:
    """TLS without certificate checks (the test server's certificate is self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def allocate(
    server: tuple[str, int],
    username: str,
    password: str,
    transport: str = "udp",
    tls: ssl.SSLContext | None = None,
) -> TurnClientUdpProtocol | TurnClientTcpProtocol:
    """A TURN allocation (RFC 8656 Allocate); raises aioice's TransactionFailed when refused.
    The caller deletes it with `await client.delete()`."""
    loop = asyncio.get_running_loop()
    kwargs = {"username": username, "password": password, "lifetime": 600}
    kwargs["channel_refresh_time"] = 500
    client: TurnClientUdpProtocol | TurnClientTcpProtocol
    if transport == "udp":
        _, client = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(server, **kwargs), remote_addr=server
        )
    else:
        _, client = await loop.create_connection(
            lambda: TurnClientTcpProtocol(server, **kwargs), *server, ssl=tls
        )
    try:
        await asyncio.wait_for(client.connect(), 10)
    except BaseException:
        client.transport.close()
        raise
    return client
