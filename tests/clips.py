"""Voice clips for tests: espeak-ng Telugu speech, encoded as a browser would send it."""

from __future__ import annotations

import io

import av
import numpy as np

from models.speech.audio import MODEL_RATE, frame_from_pcm, resample
from tests.speech import SENTENCES, conversation

FORMATS = {
    "wav": ("wav", "pcm_s16le", 16_000),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "mp3": ("mp3", "libmp3lame", 44_100),
}
"""name -> (container, codec, sample rate): what file inputs and MediaRecorder give."""


def speech(seconds: float) -> np.ndarray:
    """Telugu speech (16 kHz) of exactly `seconds`, sentences repeated as needed."""
    needed = int(seconds * MODEL_RATE)
    parts: list[str | float] = []
    pcm = np.zeros(0, np.float32)
    while pcm.size < needed:
        parts += [*SENTENCES, 0.2]
        pcm = conversation(parts, MODEL_RATE)
    return pcm[:needed]


def encode(pcm: np.ndarray, fmt: str = "wav") -> bytes:
    """16 kHz mono float audio as a file of format `fmt` (a key of FORMATS)."""
    container, codec, rate = FORMATS[fmt]
    samples = resample(pcm, MODEL_RATE, rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        fifo = av.AudioFifo()
        fifo.write(frame_from_pcm(samples, rate, pts=0))
        size = stream.codec_context.frame_size or 1024
        while fifo.samples:
            frame = fifo.read(min(size, fifo.samples))
            frame = fifo.read(fifo.samples) if frame is None else frame
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()
