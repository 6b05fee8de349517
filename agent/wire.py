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
