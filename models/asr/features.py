"""Causal log-mel features with torch.stft: frame t covers the `window` samples that end at
sample (t + 1) * hop (the signal is left-padded with zeros), so n samples give n // hop frames
and a stream yields each frame as soon as its last sample arrives."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LOG_FLOOR = 1e-6


def hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_filterbank(mels: int, n_fft: int, sample_rate: int) -> Tensor:
    """(n_fft // 2 + 1, mels) triangular HTK-mel filters from 0 Hz to Nyquist."""
    edges_mel = torch.linspace(0.0, hz_to_mel(sample_rate / 2), mels + 2, dtype=torch.float64)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bins = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMel(nn.Module):
    """Audio (batch, samples) at 16 kHz -> log-mel frames (batch, frames, mels)."""

    def __init__(self, window: int, hop: int, mels: int, sample_rate: int) -> None:
        super().__init__()
        self.window, self.hop = window, hop
        self.register_buffer("taper", torch.hann_window(window), persistent=False)
        filters = mel_filterbank(mels, window, sample_rate)
        self.register_buffer("filters", filters, persistent=False)

    @property
    def context(self) -> int:
        """Samples of left context a frame needs beyond its own hop."""
        return self.window - self.hop

    def frames(self, padded: Tensor) -> Tensor:
        """Log-mel of every whole window of `padded` (batch, samples), windows `hop` apart."""
        if padded.shape[-1] < self.window:
            return padded.new_zeros(padded.shape[0], 0, self.filters.shape[1])
        spec = torch.stft(
            padded,
            self.window,
            self.hop,
            self.window,
            self.taper,
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        return torch.log(power.transpose(1, 2) @ self.filters + LOG_FLOOR)

    def forward(self, audio: Tensor) -> Tensor:
        """Offline: (batch, samples) -> (batch, samples // hop, mels)."""
        return self.frames(nn.functional.pad(audio, (self.context, 0)))
