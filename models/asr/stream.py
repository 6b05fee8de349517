"""A recognizer session as the agent runs it: audio chunks in, the transcript so far out."""

from __future__ import annotations

import numpy as np
import torch

from models.asr.decode import GreedyDecoder, Transcript
from models.asr.model import Recognizer
from models.asr.vocab import Vocabulary

CHUNK_S = 0.02
"""The agent's audio chunk: 20 ms."""


class StreamingTranscriber:
    """One stream through a recognizer: `push` 16 kHz float chunks, read `transcript`."""

    def __init__(self, model: Recognizer) -> None:
        self.model = model
        self.state = model.init_state(1)
        self.decoder = GreedyDecoder(Vocabulary(model.config.letters), model.config.frame_s)
        self.latest: torch.Tensor | None = None
        """The GRU's output at the latest output frame (hidden,), None before the first."""

    @torch.inference_mode()
    def push(self, pcm: np.ndarray) -> None:
        """Feed mono float32 samples at the model's rate."""
        audio = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32))[None]
        outputs, self.state = self.model.stream_outputs(audio, self.state)
        if outputs.shape[1]:
            self.latest = outputs[0, -1].clone()
        self.decoder.push(self.model.head(outputs)[0])

    def transcript(self) -> Transcript:
        """Everything recognised so far."""
        return self.decoder.transcript()


def transcribe(model: Recognizer, pcm: np.ndarray, chunk_s: float = CHUNK_S) -> Transcript:
    """A whole clip (mono float32 at the model's rate), streamed in `chunk_s` chunks."""
    session = StreamingTranscriber(model)
    size = max(1, round(chunk_s * model.config.sample_rate))
    for start in range(0, len(pcm), size):
        session.push(pcm[start : start + size])
    return session.transcript()
