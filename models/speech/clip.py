"""A reference voice clip: encoded audio bytes -> checked 16 kHz mono speech.

A clip is what a browser's file input or MediaRecorder gives (WAV, Ogg/Opus, WebM/Opus, MP3,
FLAC, MP4/AAC). Its container is recognised by its first bytes and only that demuxer is opened:
FFmpeg's format probing would otherwise also try demuxers such as HLS playlists, which open
other files and URLs named inside the data.

The silence check is an energy test, not Silero VAD: Silero would run a model over every
32 ms window of the clip on top of the embedding's own model, within a time budget of 100 ms,
while the failure to catch here is the silent or near-silent clip (a muted microphone, an
empty recording). A loud non-speech clip passes and merely gives a meaningless voice.
"""

from __future__ import annotations

import io

import av
import numpy as np

from models.speech.audio import MODEL_RATE, frame_from_pcm, resample

MAX_CLIP_BYTES = 1024 * 1024
"""Largest encoded clip: 15 s of 16-bit 16 kHz mono WAV is 480 KiB, of 44.1 kHz stereo MP3
at 320 kbps 600 KiB."""
MIN_CLIP_S = 1.0
"""Shortest clip: the speaker encoder's partials are 1.6 s; under a second says little."""
MAX_CLIP_S = 15.0
"""Longest clip: the embedding is a mean over 1.6 s partials; past a few seconds it barely
moves, and each extra second costs decode and embedding time."""
FRAME = 512
"""Samples per frame of the energy test (32 ms, the VAD's window)."""
VOICED_DBFS = -40.0
"""A frame at least this loud (RMS, dB full scale) counts as voiced."""
MIN_VOICED_S = 0.5
"""Voiced frames a clip needs in all."""
EMBED_MAX_S = 5.0
"""Voiced speech of a clip that is embedded. The embedding's cost grows with its 1.6 s
partials (1.3 per second of speech) while its value settles, as a mean of partials does (a
check by hand on three espeak-ng voices agreed; not measured by a repository command)."""

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "wav"),
    (0, b"OggS", "ogg"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"ID3", "mp3"),
    (0, b"fLaC", "flac"),
    (4, b"ftyp", "mp4"),
)
"""(offset, bytes, FFmpeg demuxer) of the containers accepted."""


class ClipError(ValueError):
    """A clip refused: `reason` is machine-readable (`undecodable`, `too_large`, `too_short`,
    `too_long`, `silent`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def container_format(data: bytes) -> str:
    """The FFmpeg demuxer for the clip's container, or ClipError(undecodable)."""
    for offset, magic, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:  # an MPEG audio frame
        return "mp3"
    raise ClipError("undecodable", "not a WAV, Ogg, WebM, MP3, FLAC or MP4 audio file")


def decode_clip(data: bytes) -> np.ndarray:
    """The clip's audio as mono float32 at MODEL_RATE, decoded only as far as MAX_CLIP_S
    (and a frame); ClipError when it is too large or cannot be decoded."""
    if len(data) > MAX_CLIP_BYTES:
        raise ClipError("too_large", f"voice clip over {MAX_CLIP_BYTES} bytes")
    fmt = container_format(data)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=MODEL_RATE)
    limit = int((MAX_CLIP_S + 1) * MODEL_RATE)
    chunks: list[np.ndarray] = []
    have = 0
    try:
        with av.open(io.BytesIO(data), format=fmt) as container:
            if not container.streams.audio:
                raise ClipError("undecodable", "the file has no audio stream")
            for frame in container.decode(audio=0):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    have += chunks[-1].size
                if have > limit:
                    break
            else:
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except ClipError:
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError):
        raise ClipError("undecodable", f"the {fmt} audio cannot be decoded") from None
    if not chunks:
        raise ClipError("undecodable", f"the {fmt} file holds no audio")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def check_clip(pcm: np.ndarray) -> np.ndarray:
    """The clip (mono, MODEL_RATE) if its length is in [MIN_CLIP_S, MAX_CLIP_S] and it has
    MIN_VOICED_S of frames at least VOICED_DBFS loud; ClipError otherwise."""
    seconds = pcm.size / MODEL_RATE
    if seconds < MIN_CLIP_S:
        raise ClipError("too_short", f"voice clip of {seconds:.2f} s; at least {MIN_CLIP_S:g} s")
    if seconds > MAX_CLIP_S:
        raise ClipError("too_long", f"voice clip over {MAX_CLIP_S:g} s")
    if voiced_seconds(pcm) < MIN_VOICED_S:
        raise ClipError("silent", f"voice clip has under {MIN_VOICED_S:g} s of sound")
    return pcm


def _voiced_frames(pcm: np.ndarray) -> np.ndarray:
    """The clip's FRAME-sample frames at least VOICED_DBFS loud, (n, FRAME)."""
    frames = pcm[: pcm.size // FRAME * FRAME].reshape(-1, FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return frames[rms >= 10 ** (VOICED_DBFS / 20)]


def voiced_seconds(pcm: np.ndarray) -> float:
    """Seconds of FRAME-sample frames at least VOICED_DBFS loud."""
    return len(_voiced_frames(pcm)) * FRAME / MODEL_RATE


def embedding_speech(pcm: np.ndarray) -> np.ndarray:
    """What of a clip to embed: its voiced frames joined (pauses say nothing of the voice;
    Resemblyzer trims them too), the first EMBED_MAX_S seconds of them."""
    voiced = _voiced_frames(pcm)[: int(EMBED_MAX_S * MODEL_RATE) // FRAME]
    return voiced.reshape(-1) if len(voiced) else pcm


def read_clip(data: bytes) -> np.ndarray:
    """Decode and check a clip: mono float32 speech at MODEL_RATE, or ClipError."""
    return check_clip(decode_clip(data))


BROWSER_FORMATS = {
    "wav": ("wav", "pcm_s16le", 16_000),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "mp3": ("mp3", "libmp3lame", 44_100),
    "flac": ("flac", "flac", 16_000),
    "mp4": ("mp4", "aac", 44_100),
}
"""name -> (container, codec, sample rate) of what file inputs and MediaRecorder give."""


def encode_clip(pcm: np.ndarray, fmt: str = "wav") -> bytes:
    """16 kHz mono float audio as a file of format `fmt` (a key of BROWSER_FORMATS), as a
    browser would send it (for tests and benchmarks of the clip path)."""
    container, codec, rate = BROWSER_FORMATS[fmt]
    samples = resample(pcm, MODEL_RATE, rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        fifo = av.AudioFifo()
        fifo.write(frame_from_pcm(samples, rate, pts=0))
        size = stream.codec_context.frame_size or 1024
        while fifo.samples:
            frame = fifo.read(min(size, fifo.samples))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()
