"""Receive-side jitter buffering for audio, installed into aiortc's RTCRtpReceiver.

aiortc's audio receiver holds 4 packets (80 ms at 20 ms a packet) before it releases the
first one, and one more (the packet after) for every frame after that. Every Opus RTP packet
is a whole frame, so in-order packets can go to the decoder the moment they arrive; only a
gap in sequence numbers needs waiting, for a packet that may merely be late.

`AudioJitterBuffer` does that: zero hold on a clean path, a reordering window that grows when
packets do arrive late and shrinks again when they stop, and after a gap it skips the missing
packet and releases everything it held at once, so it never stays behind.
aiortc's receiver takes one frame from the buffer per packet, so the frames released together
are handed to the decoder through `DecoderFeed`, a drop-in for the receiver's decoder queue
(conceal.py's ConcealingFeed also rebuilds the skipped frames; receive.py installs both).

`MeasuredAiortcBuffer` keeps aiortc's own behaviour with the same hold-time measurement, for
before/after comparisons (`--jitter aiortc`).

Replaces (aiortc 1.16): the audio `JitterBuffer(capacity=16, prefetch=4)` that
`RTCRtpReceiver` builds for itself. Delete when aiortc's audio receiver releases in-order
packets without a prefetch hold (`--jitter aiortc` then measures no hold).
"""

from __future__ import annotations

import queue
import statistics
import time
from collections import deque

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

MAX_MISORDER = 100
"""A sequence jump larger than this (either way) is a new stream, not a reordering."""


class HoldStats:
    """How long packets wait in the buffer between arrival and release to the decoder."""

    def __init__(self, keep: int = 512) -> None:
        self._arrivals: dict[int, float] = {}
        self.holds_ms: deque[float] = deque(maxlen=keep)

    def arrived(self, timestamp: int) -> None:
        self._arrivals.setdefault(timestamp, time.monotonic())
        if len(self._arrivals) > 4096:  # a frame that was never released
            self._arrivals.pop(next(iter(self._arrivals)))

    def released(self, timestamp: int) -> None:
        arrived = self._arrivals.pop(timestamp, None)
        if arrived is not None:
            self.holds_ms.append((time.monotonic() - arrived) * 1000.0)

    def median_ms(self, last: int = 50) -> float | None:
        """Median hold of the last `last` released frames."""
        if not self.holds_ms:
            return None
        return statistics.median(list(self.holds_ms)[-last:])


class AudioJitterBuffer(JitterBuffer):
    """Releases in-order audio packets at once; waits on a gap only as long as reordering
    on this path has shown to be needed (`window` packets, adapting between 1 and max_window).
    """

    def __init__(self, max_window: int = 5, calm_packets: int = 500) -> None:
        super().__init__(capacity=16)
        self.stats = HoldStats()
        self.window = 1
        self._max_window = max_window
        self._calm_packets = calm_packets
        self._calm = 0
        self._expected: int | None = None
        self._held: dict[int, RtpPacket] = {}
        self._extra: list[JitterFrame] = []
        self.primary_timestamp = 0
        self.late_packets = 0
        self.skipped_packets = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.stats.arrived(packet.timestamp)
        seq = packet.sequence_number
        if self._expected is None:
            self._expected = seq
        ahead = uint16_add(seq, -self._expected)
        behind = uint16_add(self._expected, -seq)
        if behind and behind <= MAX_MISORDER:
            self._late()
            return False, None
        if ahead > MAX_MISORDER:  # a new stream or a long outage: start again here
            self._held.clear()
            self._expected = seq
        self._held[seq] = packet
        self._adapt()
        ready = self._release()
        if not ready:
            return False, None
        self.primary_timestamp = ready[0].timestamp
        self._extra = ready[1:]
        return False, ready[0]

    def take_extra(self) -> list[JitterFrame]:
        """Frames released together with the last one returned by add()."""
        extra, self._extra = self._extra, []
        return extra

    def _release(self) -> list[JitterFrame]:
        if self._expected not in self._held and len(self._held) > self.window:
            oldest = min(self._held, key=lambda s: uint16_add(s, -self._expected))
            self.skipped_packets += uint16_add(oldest, -self._expected)
            self._expected = oldest
        frames = []
        while self._expected in self._held:
            packet = self._held.pop(self._expected)
            self._expected = uint16_add(self._expected, 1)
            self.stats.released(packet.timestamp)
            frames.append(JitterFrame(data=packet._data, timestamp=packet.timestamp))
        return frames

    def _late(self) -> None:
        """A packet arrived after its gap was skipped: the window was too small."""
        self.late_packets += 1
        self.window = min(self.window + 1, self._max_window)
        self._calm = 0

    def _adapt(self) -> None:
        self._calm += 1
        if self._calm >= self._calm_packets and self.window > 1:
            self.window -= 1
            self._calm = 0


class MeasuredAiortcBuffer(JitterBuffer):
    """aiortc's own audio jitter buffer (capacity 16, prefetch 4), with hold measurement."""

    def __init__(self) -> None:
        super().__init__(capacity=16, prefetch=4)
        self.stats = HoldStats()

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.stats.arrived(packet.timestamp)
        pli, frame = super().add(packet)
        if frame is not None:
            self.stats.released(frame.timestamp)
        return pli, frame


class DecoderFeed(queue.Queue):
    """The receiver's decoder queue, also passing on the frames an AudioJitterBuffer released
    together with the one the receiver took."""

    def __init__(self, buffer: AudioJitterBuffer) -> None:
        super().__init__()
        self._buffer = buffer

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:  # noqa: ANN001
        if item is None:  # the receiver stops: aiortc's decoder thread ends the track
            super().put(item, block, timeout)
            return
        codec, frame = item
        self._deliver(codec, frame)
        for extra in self._buffer.take_extra():
            offset = (extra.timestamp - self._buffer.primary_timestamp) & 0xFFFFFFFF
            extra.timestamp = (frame.timestamp + offset) & 0xFFFFFFFF
            self._deliver(codec, extra)

    def _deliver(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        """Hand one frame on to aiortc's decoder thread."""
        super().put((codec, frame))
