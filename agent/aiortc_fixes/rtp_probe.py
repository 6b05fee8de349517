"""When did the first RTP packet of an answer leave? A tap on the DTLS transport's RTP send.

aiortc's RTCRtpSender stamps each packet with `origin + frame timestamp`, where the frame
timestamp counts from the track's first frame (pts 0). The probe learns `origin` from the
first packet it sees and then reports the first packet at or after a given track pts.

Replaces (aiortc 1.16): the missing report of when a packet left; it wraps the private
`RTCDtlsTransport._send_rtp`. Delete when aiortc reports send times of RTP packets (the
`send` stage of the latency event needs them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import is_rtcp


class FirstPacketProbe:
    """Reports send times of the packets carrying chosen frames of one outgoing stream."""

    def __init__(self, payload_type: int | None = None) -> None:
        self._origin: int | None = None
        self._waiting: list[tuple[int, Callable[[float], None]]] = []
        self._payload_type = payload_type

    def attach(self, transport: RTCDtlsTransport) -> None:
        """Wrap the transport's RTP send (an instance attribute shadows the method)."""
        send = transport._send_rtp

        async def send_and_observe(data: bytes) -> None:
            await send(data)
            if len(data) >= 12 and not is_rtcp(data):
                self._observe(data, time.monotonic())

        transport._send_rtp = send_and_observe  # type: ignore[method-assign]

    def when_sent(self, pts: int, callback: Callable[[float], None]) -> None:
        """Call `callback(send_time)` once the packet of the frame at `pts` has been sent."""
        self._waiting.append((pts, callback))

    def _observe(self, data: bytes, now: float) -> None:
        if self._payload_type is not None and data[1] & 0x7F != self._payload_type:
            return
        timestamp = int.from_bytes(data[4:8], "big")
        if self._origin is None:
            self._origin = timestamp
        relative = (timestamp - self._origin) & 0xFFFFFFFF
        still = []
        for pts, callback in self._waiting:
            if relative >= pts:
                callback(now)
            else:
                still.append((pts, callback))
        self._waiting = still
