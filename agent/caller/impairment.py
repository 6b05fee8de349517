"""A phone-like link in userspace: delay, jitter, reordering and loss under one peer's ICE.

The kernel here has no netem and there is no iptables, so the impairment sits in the test
caller's own UDP sockets: every media datagram (RTP/SRTP and RTCP, first byte 128-191,
RFC 7983) it sends is dropped with probability `loss` or handed to the socket `delay_ms` ±
`jitter_ms` later (uniform, independent per packet, so packets reorder as under netem); every
one it receives is treated the same way before aioice sees it. The agent, in its own process,
receives the impaired stream for real and its answer is impaired on the way back. ICE (STUN)
and DTLS/SCTP datagrams pass untouched, so call setup and the events channel do not flake.

Bounded: at most `max_in_flight` datagrams wait per direction (more are dropped and
counted). Self-cleaning: `close()` cancels everything still waiting. Deterministic: each
direction draws from its own `random.Random(seed)`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection

MEDIA_FIRST_BYTES = range(128, 192)


class ImpairmentUnavailable(RuntimeError):
    """The peer connection's transport cannot be wrapped (an aiortc/aioice without it)."""


@dataclass(frozen=True)
class LinkProfile:
    """One direction's impairment, applied to both directions of the link."""

    name: str = "clean"
    delay_ms: float = 0.0
    """One-way delay, each direction (RTT = 2 x delay_ms)."""
    jitter_ms: float = 0.0
    """Each packet's delay is uniform in delay_ms ± jitter_ms."""
    loss: float = 0.0
    """Probability that a media packet is dropped, each direction."""
    seed: int = 0

    @property
    def clean(self) -> bool:
        return self.delay_ms == 0 and self.jitter_ms == 0 and self.loss == 0


PROFILES: dict[str, LinkProfile] = {
    p.name: p
    for p in (
        LinkProfile("clean"),
        LinkProfile("rtt100-jitter30", delay_ms=50, jitter_ms=30),
        LinkProfile("rtt100-jitter30-loss3", delay_ms=50, jitter_ms=30, loss=0.03),
        LinkProfile("rtt100-jitter30-loss10", delay_ms=50, jitter_ms=30, loss=0.10),
    )
}


@dataclass
class DirectionStats:
    media: int = 0
    dropped: int = 0
    overflow: int = 0


@dataclass
class Direction:
    """Delays or drops the media datagrams going one way."""

    profile: LinkProfile
    seed: int
    max_in_flight: int = 512
    stats: DirectionStats = field(default_factory=DirectionStats)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._waiting: dict[int, asyncio.TimerHandle] = {}
        self._next = 0
        self._closed = False

    def push(self, data: bytes, deliver: Callable[[], None]) -> None:
        """Pass `data` on through `deliver` now, later, or never."""
        if self._closed or not data or data[0] not in MEDIA_FIRST_BYTES:
            deliver()
            return
        self.stats.media += 1
        if self._rng.random() < self.profile.loss:
            self.stats.dropped += 1
            return
        delay_ms = self.draw_delay_ms()
        if delay_ms <= 0:
            deliver()
            return
        if len(self._waiting) >= self.max_in_flight:
            self.stats.overflow += 1
            return
        key, self._next = self._next, self._next + 1
        loop = asyncio.get_running_loop()
        self._waiting[key] = loop.call_later(delay_ms / 1000, self._fire, key, deliver)

    def draw_delay_ms(self) -> float:
        """One packet's delay: uniform in delay_ms ± jitter_ms, never negative."""
        low = max(0.0, self.profile.delay_ms - self.profile.jitter_ms)
        return self._rng.uniform(low, self.profile.delay_ms + self.profile.jitter_ms)

    def _fire(self, key: int, deliver: Callable[[], None]) -> None:
        self._waiting.pop(key, None)
        deliver()

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        """Cancel every datagram still waiting; later ones pass straight through."""
        self._closed = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()


class ImpairedLink:
    """Impairs everything one RTCPeerConnection sends and receives as media."""

    def __init__(self, profile: LinkProfile) -> None:
        self.profile = profile
        self.uplink = Direction(profile, seed=profile.seed * 2 + 1)
        self.downlink = Direction(profile, seed=profile.seed * 2 + 2)
        self._wrapped = 0

    def attach(self, pc: RTCPeerConnection) -> None:
        """Wrap the sockets of `pc`: after setLocalDescription (candidates gathered), before
        setRemoteDescription (media starts)."""
        connections = {id(c): c for c in _ice_connections(pc)}.values()
        for connection in connections:
            for protocol in getattr(connection, "_protocols", []):
                self._wrap(protocol)
        if not self._wrapped:
            raise ImpairmentUnavailable(
                "no aioice sockets found on the peer connection (gather before attaching)"
            )

    def _wrap(self, protocol) -> None:  # noqa: ANN001 - aioice.ice.StunProtocol
        received = protocol.datagram_received
        if not hasattr(protocol, "send_data") or getattr(protocol, "transport", None) is None:
            raise ImpairmentUnavailable("aioice's StunProtocol has no send_data/transport")

        def datagram_received(data: bytes, addr: tuple) -> None:
            self.downlink.push(data, lambda: received(data, addr))

        async def send_data(data: bytes, addr: tuple[str, int]) -> None:
            def deliver() -> None:
                if not protocol.transport.is_closing():
                    protocol.transport.sendto(data, addr)

            self.uplink.push(data, deliver)

        protocol.datagram_received = datagram_received
        protocol.send_data = send_data
        self._wrapped += 1

    def close(self) -> None:
        """Drop whatever is still in flight, both ways."""
        self.uplink.close()
        self.downlink.close()


def _ice_connections(pc: RTCPeerConnection) -> list:
    """The aioice Connections under every transport of `pc`."""
    transports = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    connections = []
    for dtls in transports:
        ice = getattr(dtls, "transport", None)
        connection = getattr(ice, "_connection", None)
        if connection is not None:
            connections.append(connection)
    return connections
