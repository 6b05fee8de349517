"""Install the agent's receive path (jitter buffer + decoder stage) into an aiortc receiver.

Replaces (aiortc 1.16): the jitter buffer and decoder queue an `RTCRtpReceiver` builds for
itself (its private `__jitter_buffer` and `__decoder_queue`), with jitter.py's and conceal.py's.
Delete with them, or when aiortc lets a receiver be given its jitter buffer and decoder.
"""

from __future__ import annotations

from aiortc.rtcrtpreceiver import RTCRtpReceiver

from agent.aiortc_fixes.conceal import ConcealingFeed, ConcealStats
from agent.aiortc_fixes.jitter import AudioJitterBuffer, DecoderFeed, MeasuredAiortcBuffer
from agent.config import JitterMode

ReceiveBuffer = AudioJitterBuffer | MeasuredAiortcBuffer


def install_receive_buffer(receiver: RTCRtpReceiver, mode: JitterMode) -> ReceiveBuffer:
    """Give an audio receiver our jitter buffer (and decoder stage) before it starts.

    'adaptive': AudioJitterBuffer + ConcealingFeed (PLC / FEC for lost frames);
    'skip': AudioJitterBuffer, lost frames skipped (aiortc's decoder, no concealment);
    'aiortc': aiortc's own buffer and decoder, with hold-time measurement.
    Must run before the connection starts (right after setRemoteDescription on an answerer,
    before createOffer on an offerer). Returns the buffer, whose `stats` measure hold times.
    """
    for name in ("_RTCRtpReceiver__jitter_buffer", "_RTCRtpReceiver__decoder_queue"):
        if not hasattr(receiver, name):
            raise RuntimeError(f"this aiortc version has no {name}; cannot tune its receiver")
    if getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None:
        raise RuntimeError("the receiver is already running; install the buffer before connecting")
    if mode == "aiortc":
        buffer: ReceiveBuffer = MeasuredAiortcBuffer()
    else:
        buffer = AudioJitterBuffer()
        if mode == "skip":
            feed: DecoderFeed = DecoderFeed(buffer)
        else:
            feed = ConcealingFeed(buffer, lambda: receiver.track._queue)
        receiver._RTCRtpReceiver__decoder_queue = feed
    receiver._RTCRtpReceiver__jitter_buffer = buffer
    return buffer


def concealment(receiver: RTCRtpReceiver) -> ConcealStats | None:
    """The concealment counters of a receiver set up by install_receive_buffer('adaptive')."""
    feed = getattr(receiver, "_RTCRtpReceiver__decoder_queue", None)
    return feed.stats if isinstance(feed, ConcealingFeed) else None
