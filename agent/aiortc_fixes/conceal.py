"""Packet loss concealment on the receive path: lost Opus frames are rebuilt, not skipped.

`ConcealingFeed` takes the receiver's place as the decoder stage. It decodes Opus with libopus
(opus_codec.py) and watches the RTP timestamps: when a frame arrives later on the
timeline than the previous one ended, the missing stretch is filled before the frame is
decoded: the last missing frame from the in-band FEC copy the arriving packet carries (when
the sender adds one), anything before that with libopus PLC. Gaps longer than
`max_conceal_ms` (an outage, a new stream) are left as gaps. Decoding a 20 ms Opus frame takes
tens of microseconds, so it runs where aiortc hands the frame over, on the event loop.

Replaces (aiortc 1.16): the receiver's decoder stage (its decoder queue and thread, Opus
through FFmpeg), which skips a lost frame. Delete when aiortc conceals lost audio frames with
PLC and in-band FEC itself.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from agent.aiortc_fixes.jitter import AudioJitterBuffer, DecoderFeed
from agent.aiortc_fixes.opus_codec import RATE, OpusDecoder, has_fec, packet_samples

TIME_BASE = fractions.Fraction(1, RATE)
HALF_RANGE = 2**31


@dataclass
class ConcealStats:
    """What the decoder stage did with the frames of one stream (20 ms units as received)."""

    decoded: int = 0
    concealed: int = 0
    """Frames made up by libopus PLC."""
    recovered: int = 0
    """Frames rebuilt from the FEC copy in the next packet."""
    unconcealed_ms: float = 0.0
    """Missing audio left as a gap (longer than max_conceal_ms)."""
    undecodable: int = 0
    rebuilt_pts: deque[int] = field(default_factory=lambda: deque(maxlen=4096))
    """pts of the recent frames that were concealed or recovered."""


class ConcealingFeed(DecoderFeed):
    """The decoder stage of one audio receiver: Opus decode with PLC and FEC for lost frames.

    Frames go straight to the remote track's queue (`output()`, looked up when the first frame
    arrives: an offerer's receiver has no track before the answer); aiortc's decoder thread
    only receives the final None that ends the track, and any non-Opus frames.
    """

    def __init__(
        self,
        buffer: AudioJitterBuffer,
        output: Callable[[], asyncio.Queue],
        max_conceal_ms: float = 200.0,
    ) -> None:
        super().__init__(buffer)
        self.stats = ConcealStats()
        self._output = output
        self._max_gap = int(max_conceal_ms * RATE / 1000)
        self._decoder = OpusDecoder()
        self._next_ts: int | None = None

    def _deliver(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        if codec.mimeType.lower() != "audio/opus":
            super()._deliver(codec, frame)
            return
        samples = packet_samples(frame.data)
        if samples == 0:
            self.stats.undecodable += 1
            return
        if self._next_ts is not None:
            gap = (frame.timestamp - self._next_ts) & 0xFFFFFFFF
            if 0 < gap <= self._max_gap:
                self._fill(gap, frame, samples)
            elif self._max_gap < gap < HALF_RANGE:
                self.stats.unconcealed_ms += gap * 1000 / RATE
        pcm = self._decoder.decode(frame.data)
        if len(pcm) == 0:
            self.stats.undecodable += 1
            return
        self.stats.decoded += 1
        self._emit(pcm, frame.timestamp)
        self._next_ts = (frame.timestamp + len(pcm)) & 0xFFFFFFFF

    def _fill(self, gap: int, frame: JitterFrame, samples: int) -> None:
        """Rebuild `gap` missing samples before `frame`: PLC, then FEC for the last frame."""
        fec = min(samples, gap) if has_fec(frame.data) else 0
        start = frame.timestamp - gap
        plc = gap - fec
        while plc > 0:
            pcm = self._decoder.conceal(min(plc, samples))
            if len(pcm) == 0:
                break
            self.stats.concealed += 1
            self._emit(pcm, start, rebuilt=True)
            start, plc = start + len(pcm), plc - len(pcm)
        if fec:
            pcm = self._decoder.recover(frame.data, fec)
            if len(pcm):
                self.stats.recovered += 1
                self._emit(pcm, frame.timestamp - fec, rebuilt=True)

    def _emit(self, pcm: np.ndarray, pts: int, rebuilt: bool = False) -> None:
        out = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = RATE
        out.pts = pts & 0xFFFFFFFF
        out.time_base = TIME_BASE
        if rebuilt:
            self.stats.rebuilt_pts.append(out.pts)
        self._output().put_nowait(out)
