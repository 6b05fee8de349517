"""Loss concealment on the receive path: real Opus packets, real libopus, real buffer."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from agent.aiortc_fixes.conceal import ConcealingFeed
from agent.aiortc_fixes.jitter import AudioJitterBuffer
from agent.aiortc_fixes.opus_codec import has_fec
from agent.aiortc_fixes.opus_send import SpeechOpusEncoder
from agent.wire import WIRE_FRAME, WIRE_RATE, frame_to_mono
from models.speech.audio import frame_from_pcm

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def voiced(frames: int) -> np.ndarray:
    """A vowel-like signal: a 140 Hz harmonic series with a slow loudness contour."""
    t = np.arange(frames * WIRE_FRAME) / WIRE_RATE
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    return (0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def encode(encoder: OpusEncoder, frames: int) -> list[bytes]:
    pcm = voiced(frames)
    packets: list[bytes] = []
    for i in range(frames):
        chunk = pcm[i * WIRE_FRAME : (i + 1) * WIRE_FRAME]
        payloads, _ = encoder.encode(frame_from_pcm(chunk, WIRE_RATE, pts=i * WIRE_FRAME))
        packets += payloads
    return packets


@pytest.fixture(scope="module")
def fec_packets() -> list[bytes]:
    return encode(SpeechOpusEncoder(), 40)


@pytest.fixture(scope="module")
def plain_packets() -> list[bytes]:
    return encode(OpusEncoder(), 40)


class Receiver:
    """What aiortc's RTCRtpReceiver does with each packet: buffer, then the decoder stage."""

    def __init__(self) -> None:
        self.buffer = AudioJitterBuffer()
        self.out: asyncio.Queue = asyncio.Queue()
        self.feed = ConcealingFeed(self.buffer, lambda: self.out)

    def receive(self, packets: list[bytes], order: list[int]) -> list:
        for seq in order:
            rtp = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * WIRE_FRAME)
            rtp._data = packets[seq]
            _, frame = self.buffer.add(rtp)
            if frame is not None:
                self.feed.put((OPUS, frame))
        frames = []
        while not self.out.empty():
            frames.append(self.out.get_nowait())
        return frames


def assert_continuous(frames: list, first: int, last: int) -> None:
    """Frames cover packets first..last, back to back, 20 ms each."""
    assert [f.pts for f in frames] == [seq * WIRE_FRAME for seq in range(first, last + 1)]
    assert all(f.samples == WIRE_FRAME for f in frames)


def test_speech_encoder_sends_fec(fec_packets, plain_packets):
    assert sum(map(has_fec, fec_packets)) > len(fec_packets) // 2  # libopus decides per frame
    assert not any(map(has_fec, plain_packets))
    assert max(map(len, fec_packets)) < max(map(len, plain_packets))  # 32 vs 96 kbps


def test_clean_stream_decodes_every_packet(fec_packets):
    receiver = Receiver()
    frames = receiver.receive(fec_packets, list(range(20)))
    assert_continuous(frames, 0, 19)
    stats = receiver.feed.stats
    assert (stats.decoded, stats.concealed, stats.recovered) == (20, 0, 0)


def test_single_loss_is_rebuilt_from_fec_in_the_next_packet(fec_packets):
    receiver = Receiver()
    order = [s for s in range(20) if s != 10]
    frames = receiver.receive(fec_packets, order)
    assert_continuous(frames, 0, 19)
    assert receiver.feed.stats.recovered == 1 and receiver.feed.stats.concealed == 0
    rebuilt = frame_to_mono(frames[10])
    assert np.sqrt(np.mean(rebuilt**2)) > 0.02  # speech, not silence
    assert list(receiver.feed.stats.rebuilt_pts) == [10 * WIRE_FRAME]


def test_burst_loss_gets_plc_then_fec(fec_packets):
    receiver = Receiver()
    order = [s for s in range(25) if s not in (10, 11, 12)]
    frames = receiver.receive(fec_packets, order)
    assert_continuous(frames, 0, 24)
    assert (receiver.feed.stats.concealed, receiver.feed.stats.recovered) == (2, 1)


def test_without_fec_the_lost_frame_is_plc(plain_packets):
    receiver = Receiver()
    frames = receiver.receive(plain_packets, [s for s in range(20) if s != 7])
    assert_continuous(frames, 0, 19)
    assert (receiver.feed.stats.concealed, receiver.feed.stats.recovered) == (1, 0)
    assert np.sqrt(np.mean(frame_to_mono(frames[7]) ** 2)) > 0.01


def test_reordering_within_the_window_needs_no_concealment(fec_packets):
    receiver = Receiver()
    order = [0, 1, 2, 4, 3, 5, 6, 8, 7, 9]
    frames = receiver.receive(fec_packets, order)
    assert_continuous(frames, 0, 9)
    assert receiver.feed.stats.concealed == receiver.feed.stats.recovered == 0


def test_packet_later_than_the_window_is_concealed_once_and_then_dropped(fec_packets):
    receiver = Receiver()
    frames = receiver.receive(fec_packets, [0, 1, 3, 4, 2, 5, 6])
    assert_continuous(frames, 0, 6)  # 2 rebuilt from 3's FEC; the late 2 is not played twice
    assert receiver.feed.stats.recovered == 1
    assert receiver.buffer.late_packets == 1 and receiver.buffer.window == 2


def test_an_outage_longer_than_the_limit_stays_a_gap(fec_packets):
    receiver = Receiver()
    receiver.feed = ConcealingFeed(receiver.buffer, lambda: receiver.out, max_conceal_ms=100)
    frames = receiver.receive(fec_packets, [0, 1, 2, 3, *range(12, 20)])
    assert [f.pts // WIRE_FRAME for f in frames] == [0, 1, 2, 3, *range(12, 20)]
    assert receiver.feed.stats.unconcealed_ms == pytest.approx(160.0)
    assert receiver.feed.stats.concealed == 0
