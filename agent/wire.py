"""Audio as WebRTC carries it: Opus at 48 kHz in 20 ms frames, as aiortc delivers and expects
it. The models' side (16 kHz, resampling, files) is models/speech/audio.py."""

from __future__ import annotations

import av
import numpy as np

from models.speech.audio import to_float

WIRE_RATE = 48_000
"""Sample rate of WebRTC Opus audio as aiortc delivers and expects it."""
WIRE_FRAME = 960
"""Samples in one 20 ms frame at WIRE_RATE."""


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded s16 frame (packed mono or stereo, as aiortc delivers) -> mono float32."""
    samples = to_float(frame.to_ndarray().reshape(-1))
    channels = len(frame.layout.channels)
    return samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples


class StreamClock:
    """When each received frame was due on this machine's monotonic clock: the stream's own
    timeline (RTP timestamps, which run on through silence and losses) anchored at the
    earliest arrival it implies, so network jitter does not move it. How late a frame is
    handled, measured from when it was due, is how far the agent is behind real time."""

    def __init__(self) -> None:
        self._first_pts: int | None = None
        self._origin = float("inf")

    def due(self, frame: av.AudioFrame, arrived: float) -> float:
        """When the frame's last sample was due (`arrived`: when it came in)."""
        if frame.pts is None:
            return arrived
        if self._first_pts is None:
            self._first_pts = frame.pts
        rate = frame.sample_rate or WIRE_RATE
        end_s = (((frame.pts - self._first_pts) % 2**32) + frame.samples) / rate
        self._origin = min(self._origin, arrived - end_s)
        return self._origin + end_s
