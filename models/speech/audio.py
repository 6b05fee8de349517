"""PCM helpers: av frames <-> numpy, resampling with av.AudioResampler, fixed-size windows,
audio files.

Audio is mono float32 in [-1, 1]; int16 exists only at av frame and file boundaries.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soundfile

MODEL_RATE = 16_000
"""Sample rate of the VAD, the responders and the models."""


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> float32 in [-1, 1]."""
    return pcm.astype(np.float32) / 32768.0


def to_int16(pcm: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16, clipped."""
    return np.clip(np.round(pcm * 32768.0), -32768, 32767).astype(np.int16)


def frame_from_pcm(pcm: np.ndarray, rate: int, pts: int | None = None) -> av.AudioFrame:
    """A mono s16 av.AudioFrame holding float or int16 samples."""
    samples = pcm if pcm.dtype == np.int16 else to_int16(pcm)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    if pts is not None:
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, rate)
    return frame


class Resampler:
    """Streaming conversion of av frames or numpy chunks to mono float32 at one rate."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def frame(self, frame: av.AudioFrame) -> np.ndarray:
        """Resample one decoded frame (any rate and layout); may return an empty array."""
        frame.pts = None  # the resampler keeps its own continuous timeline
        return self._collect(self._resampler.resample(frame))

    def pcm(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        """Resample a mono chunk sampled at `rate`."""
        return self._collect(self._resampler.resample(frame_from_pcm(pcm, rate)))

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds at the end of a stream."""
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return to_float(np.concatenate([f.to_ndarray().reshape(-1) for f in frames]))


def resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample a whole mono signal."""
    if rate == target:
        return pcm.astype(np.float32)
    resampler = Resampler(target)
    return np.concatenate([resampler.pcm(pcm, rate), resampler.flush()])


def read_audio(path: str | Path, rate: int) -> np.ndarray:
    """Read an audio file as mono float32 at `rate`."""
    data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1), file_rate, rate)


def write_audio(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    """Write mono float32 audio as 16-bit WAV."""
    soundfile.write(str(path), to_int16(pcm), rate, subtype="PCM_16")


class Windower:
    """Cuts a stream of chunks into fixed-size windows, counting samples from the start."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pending = np.zeros(0, dtype=np.float32)
        self.samples_out = 0
        """Samples handed out so far: the stream index just after the last window."""

    def push(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        """Add a chunk; yield every complete window."""
        self._pending = np.concatenate([self._pending, chunk])
        while len(self._pending) >= self.size:
            window, self._pending = self._pending[: self.size], self._pending[self.size :]
            self.samples_out += self.size
            yield window
