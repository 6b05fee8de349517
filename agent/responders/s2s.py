"""The S2S responder: TeluCodec codes -> streaming Conformer encoder while the user speaks;
at the end of the turn the GPT decoder answers in the call's speaker and emotion, and each
decoded step is played as soon as it exists (the first audio leaves before the answer is
complete)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch

from agent.responders.base import CallOptions, Responder, ResponderSession, UserTurn
from agent.responders.codec import CodeRecorder
from models.controls import emotion_id, speaker_id
from models.loading import Models

KEEP_S = 60.0
"""Encoder outputs kept for the turns to come (a turn longer than this is cut)."""
MAX_ANSWER_S = 8.0
"""Longest answer by default; an untrained decoder never says end-of-answer."""


class S2SSession(ResponderSession):
    def __init__(
        self,
        models: Models,
        options: CallOptions,
        temperature: float,
        top_k: int,
        max_answer_s: float,
    ) -> None:
        self._models = models
        self._recorder = CodeRecorder(models.codec)
        self._speaker = torch.tensor([speaker_id(options.speaker)])
        self._emotion = torch.tensor([emotion_id(options.emotion)])
        self._temperature = temperature
        self._top_k = top_k
        self._max_steps = max(1, int(max_answer_s * 1000 / models.config.step_ms))
        self._group = models.config.frames_per_step
        self._pending = torch.zeros(models.codec.config.num_quantizers, 0, dtype=torch.long)
        """Codes of frames not yet making a whole step."""
        self._encoder_state = models.encoder.init_state(1)
        keep_steps = int(KEEP_S * 1000 / models.config.step_ms)
        self._memory: deque[torch.Tensor] = deque(maxlen=keep_steps)
        """The latest encoder outputs, one (dim,) tensor per step."""
        self._steps = 0
        """Steps encoded since the call began."""

    def hear(self, window: np.ndarray, start_sample: int) -> None:
        codes = torch.cat([self._pending, self._recorder.hear(window)], dim=1)
        usable = codes.shape[1] // self._group * self._group
        self._pending = codes[:, usable:]
        if usable == 0:
            return
        with torch.inference_mode():
            hidden, _, self._encoder_state = self._models.encoder.stream(
                codes[None, :, :usable], self._encoder_state, self._speaker, self._emotion
            )
        self._memory.extend(hidden[0])
        self._steps += hidden.shape[1]

    def respond(self, turn: UserTurn) -> Iterator[np.ndarray]:
        step_samples = self._recorder.hop * self._group
        oldest = self._steps - len(self._memory)
        first = max(turn.start_sample // step_samples - oldest, 0)
        end = min(-(-turn.end_sample // step_samples) - oldest, len(self._memory))
        turn_memory = list(itertools.islice(self._memory, first, max(first + 1, end)))
        if not turn_memory:
            return
        memory = torch.stack(turn_memory)[None]
        codec_state = None
        with torch.inference_mode():
            steps = self._models.decoder.generate_stream(
                memory,
                self._speaker,
                self._emotion,
                temperature=self._temperature,
                top_k=self._top_k,
                max_steps=self._max_steps,
            )
            for codes in steps:
                pcm, codec_state = self._models.codec.decode_stream(codes, codec_state)
                yield pcm[0].numpy()


class S2SResponder(Responder):
    """Factory of S2SSession around one shared set of models."""

    name = "s2s"

    def __init__(
        self,
        models: Models,
        temperature: float = 0.8,
        top_k: int = 50,
        max_answer_s: float = MAX_ANSWER_S,
    ) -> None:
        self.models = models
        self.temperature = temperature
        self.top_k = top_k
        self.max_answer_s = max_answer_s

    def open(self, options: CallOptions) -> ResponderSession:
        return S2SSession(self.models, options, self.temperature, self.top_k, self.max_answer_s)
