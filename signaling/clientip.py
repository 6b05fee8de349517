"""Which address a request comes from, for the per-client rate limit.

By default the TCP peer's address. `X-Forwarded-For` is read only when the TCP peer is one of
the explicitly trusted proxies: then the client is the right-most address in the header that
is not itself a trusted proxy (the left part of the header is whatever the client wrote).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str]) -> tuple[IpNetwork, ...]:
    """`["10.0.0.0/8", "127.0.0.1"]` -> networks; ValueError on a bad address."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: object, proxies: tuple[IpNetwork, ...]) -> bool:
    return any(address in network for network in proxies)


def client_address(request: web.Request, trusted_proxies: tuple[IpNetwork, ...] = ()) -> str:
    """The client's address as text; "unknown" when the transport has none."""
    peer = _address(request.remote or "")
    if peer is None:
        return request.remote or "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return str(peer)
    hops = [h for value in request.headers.getall("X-Forwarded-For", []) for h in value.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage from here leftwards: stop at the last address we can vouch for
        if not _trusted(address, trusted_proxies):
            return str(address)
        peer = address
    return str(peer)
