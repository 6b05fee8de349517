"""Zero-shot voices of a call: a speaker embedding from a clip the caller sends with the offer,
or from the caller's own speech during the call ("answer in my voice").

Everything here that computes (decoding, the embedding) runs on the process's one voice
thread (`VoiceEncoder.executor`), never on the event loop: one at a time, so a burst of
offers with clips takes at most one core from the calls in progress. `CallerSpeech` only
gathers windows the listening thread already judged.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from models.speaker import SpeakerEncoder
from models.speech.audio import MODEL_RATE
from models.speech.clip import embedding_speech, read_clip

VOICE_THREAD_NAME = "voice"
CALLER_VOICED_S = 3.0
"""Voiced speech of the caller gathered before their voice is taken: the speaker encoder
averages 1.6 s partials, 1.3 per second, so 3 s gives it three overlapping partials (a
steadier embedding than one or two), and it is about one sentence, so the caller's voice is
usually ready for the agent's first or second answer."""


@dataclass(frozen=True)
class TakenVoice:
    """A voice ready for a call: its (256,) float32 speaker embedding, where it came from
    (`clip` or `caller`) and the milliseconds from audio to embedding."""

    source: str
    embedding: np.ndarray
    ms: float


class VoiceEncoder:
    """The process's speaker encoder, loaded on first use (from any thread, once), and the
    thread its work runs on."""

    def __init__(self) -> None:
        self._encoder: SpeakerEncoder | None = None
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=VOICE_THREAD_NAME)
        """Where `from_clip` and `from_speech` are run (loop.run_in_executor)."""

    def close(self) -> None:
        """Stop the voice thread once its work in hand is done."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def encoder(self) -> SpeakerEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = SpeakerEncoder()
            return self._encoder

    def embed(self, pcm: np.ndarray) -> np.ndarray:
        """The (256,) float32 embedding of 16 kHz mono speech (its voiced part, at most
        models.speech.clip.EMBED_MAX_S)."""
        return self.encoder().embed(embedding_speech(pcm)).numpy().astype(np.float32)

    def from_clip(self, data: bytes) -> TakenVoice:
        """The voice of an encoded clip (decoded, resampled, checked, embedded);
        models.speech.clip.ClipError when the clip is refused."""
        self.encoder()  # loading the weights is not the clip's time
        started = time.perf_counter()
        embedding = self.embed(read_clip(data))
        return TakenVoice("clip", embedding, _ms_since(started))

    def from_speech(self, pcm: np.ndarray) -> TakenVoice:
        """The voice of the caller's gathered speech (16 kHz mono)."""
        self.encoder()
        started = time.perf_counter()
        embedding = self.embed(pcm)
        return TakenVoice("caller", embedding, _ms_since(started))


class CallerSpeech:
    """Gathers a call's voiced windows (those the VAD judged speech) until CALLER_VOICED_S."""

    def __init__(self, needed_s: float = CALLER_VOICED_S) -> None:
        self._needed = int(needed_s * MODEL_RATE)
        self._windows: list[np.ndarray] = []
        self._have = 0

    def add(self, window: np.ndarray, voiced: bool) -> np.ndarray | None:
        """Keep the window if voiced; the speech gathered once there is enough (then None
        again: the caller takes it once)."""
        if not voiced or self._have >= self._needed:
            return None
        self._windows.append(window)
        self._have += window.size
        if self._have < self._needed:
            return None
        speech = np.concatenate(self._windows)
        self._windows = []
        return speech


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)
