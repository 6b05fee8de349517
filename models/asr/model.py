"""The recognizer: audio -> per-frame CTC logits, offline (`forward`) or chunk by chunk
(`init_state`, `stream`) with the same result.

Pipeline: causal log-mel (models.asr.features), normalised with the training set's per-mel
mean and deviation (buffers set by the trainer), causal conv front end (models.asr.frontend),
unidirectional GRU stack, linear CTC head. Nothing looks ahead, so a stream needs no flush at
its end: every output frame is final as soon as its last feature frame has arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.asr.config import ASRConfig
from models.asr.features import LogMel
from models.asr.frontend import FrontEnd


@dataclass
class ASRState:
    """A stream in progress."""

    samples: Tensor
    """(batch, window - hop .. window - 1): the audio the next feature frame starts with."""
    convs: list[Tensor]
    """The front end's caches."""
    hidden: Tensor
    """(layers, batch, hidden): the GRU state."""
    frames: int
    """Output frames emitted so far."""


class Recognizer(nn.Module):
    """Streaming CTC recognizer over characters."""

    def __init__(self, config: ASRConfig) -> None:
        super().__init__()
        self.config = config
        self.features = LogMel(config.window, config.hop, config.mels, config.sample_rate)
        self.register_buffer("mean", torch.zeros(config.mels))
        self.register_buffer("std", torch.ones(config.mels))
        self.front = FrontEnd(config.mels, config.channels, config.kernel_size, config.strides)
        self.gru = nn.GRU(
            config.channels,
            config.hidden,
            config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def normalised(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.std

    def from_features(
        self, features: Tensor, state: ASRState | None = None
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """Log-mel frames (batch, frames, mels), normalised here -> logits, conv caches,
        GRU hidden (starting from `state`'s, or from a fresh stream)."""
        outputs, convs, hidden = self.outputs(features, state)
        return self.head(outputs), convs, hidden

    def outputs(
        self, features: Tensor, state: ASRState | None = None
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """from_features before the CTC head: the GRU's outputs (batch, frames, hidden)."""
        batch = features.shape[0]
        convs = self.front.empty_caches(batch, features) if state is None else state.convs
        x, convs = self.front(self.normalised(features), convs)
        hidden = None if state is None else state.hidden
        if x.shape[1] == 0:
            if hidden is None:
                hidden = x.new_zeros(self.config.layers, batch, self.config.hidden)
            return x.new_zeros(batch, 0, self.config.hidden), convs, hidden
        y, hidden = self.gru(x, hidden)
        return y, convs, hidden

    def forward(self, audio: Tensor) -> Tensor:
        """Offline: audio (batch, samples) -> CTC logits (batch, frames, vocab)."""
        logits, _, _ = self.from_features(self.features(audio))
        return logits

    def output_frames(self, samples: Tensor) -> Tensor:
        """Output frames of clips of `samples` samples (a tensor of lengths)."""
        return self.front.output_frames(samples // self.config.hop)

    def init_state(self, batch_size: int = 1) -> ASRState:
        """The state at the start of a stream."""
        like = self.head.weight
        return ASRState(
            samples=like.new_zeros(batch_size, self.features.context),
            convs=self.front.empty_caches(batch_size, like),
            hidden=like.new_zeros(self.config.layers, batch_size, self.config.hidden),
            frames=0,
        )

    def stream(self, audio: Tensor, state: ASRState) -> tuple[Tensor, ASRState]:
        """Feed audio (batch, samples) of any length; -> logits (batch, n, vocab) of the output
        frames now complete (n may be 0) and the new state."""
        outputs, state = self.stream_outputs(audio, state)
        return self.head(outputs), state

    def stream_outputs(self, audio: Tensor, state: ASRState) -> tuple[Tensor, ASRState]:
        """stream() before the CTC head: the GRU's outputs (batch, n, hidden)."""
        samples = torch.cat((state.samples, audio), dim=1)
        features = self.features.frames(samples)
        used = features.shape[1] * self.config.hop
        samples = samples[:, used:]
        outputs, convs, hidden = self.outputs(features, state)
        return outputs, ASRState(samples, convs, hidden, state.frames + outputs.shape[1])
