"""Codec training losses: multi-scale mel, multi-resolution STFT, feature matching, hinge GAN.

Every spectral loss computes in float32 whatever the input dtype (bf16 under CUDA autocast), on
(batch, samples) waveforms. The mel filterbank is built here with torch (Slaney or HTK mel
scale, Slaney area normalisation) and matches librosa.filters.mel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MEL_SCALES: tuple[tuple[int, int], ...] = (
    (64, 5),
    (128, 10),
    (256, 20),
    (512, 40),
    (1024, 80),
    (2048, 160),
)
"""(window = n_fft, mel bands) of each mel scale, hop window // 4 (as DAC, bands halved for
16 kHz so no band of the longest window is narrower than its bins)."""

STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = (
    (256, 64, 256),
    (512, 128, 512),
    (1024, 256, 1024),
)
"""(n_fft, hop, window) of each resolution of the multi-resolution STFT loss."""

LOG_FLOOR = 1e-5
"""Mel energies are clamped to this before the log (-100 dB)."""

MAGNITUDE_FLOOR = 1e-7
"""Squared STFT magnitudes are clamped to this, so the sqrt and log have finite gradients."""

# Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: Tensor, htk: bool = False) -> Tensor:
    """Frequencies in Hz to mels on the HTK or the Slaney scale."""
    if htk:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    linear = hz / _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_MEL + torch.log(hz.clamp_min(_SLANEY_BREAK_HZ) / 1000.0) / (
        _SLANEY_LOG_STEP
    )
    return torch.where(hz >= _SLANEY_BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: Tensor, htk: bool = False) -> Tensor:
    """Inverse of hz_to_mel."""
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = mel * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_HZ * torch.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return torch.where(mel >= _SLANEY_BREAK_MEL, logarithmic, linear)


def mel_filterbank(
    n_fft: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    htk: bool = False,
) -> Tensor:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), each scaled to unit area (Slaney)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.tensor([f_min, f_max], dtype=torch.float64)
    low, high = hz_to_mel(edges, htk)
    hz = mel_to_hz(torch.linspace(float(low), float(high), n_mels + 2, dtype=torch.float64), htk)
    widths = hz.diff()
    ramps = hz[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = torch.minimum(rising, falling).clamp_min(0.0)
    filters *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return filters.float()


class STFTMagnitude(nn.Module):
    """|STFT| (batch, n_fft // 2 + 1, frames) in float32 of (batch, samples) audio: Hann window
    of n_fft samples, centred frames (reflect padding)."""

    def __init__(self, n_fft: int, hop: int, window: int | None = None) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.register_buffer("window", torch.hann_window(window or n_fft), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        spec = torch.stft(
            wav.float(),
            self.n_fft,
            self.hop,
            self.window.shape[0],
            self.window,
            center=True,
            return_complex=True,
        )
        return (spec.real**2 + spec.imag**2).clamp_min(MAGNITUDE_FLOOR).sqrt()


class LogMelSpectrogram(nn.Module):
    """log10 mel spectrogram (batch, n_mels, frames) of (batch, samples) audio, hop n_fft // 4."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int) -> None:
        super().__init__()
        self.magnitude = STFTMagnitude(n_fft, n_fft // 4)
        self.register_buffer(
            "filters", mel_filterbank(n_fft, n_mels, sample_rate), persistent=False
        )

    def forward(self, wav: Tensor) -> Tensor:
        return (self.filters @ self.magnitude(wav)).clamp_min(LOG_FLOOR).log10()


class MultiScaleMelLoss(nn.Module):
    """Mean over scales of the L1 distance between log10 mel spectrograms."""

    def __init__(self, sample_rate: int, scales: Sequence[tuple[int, int]] = MEL_SCALES) -> None:
        super().__init__()
        self.spectrograms = nn.ModuleList(
            LogMelSpectrogram(sample_rate, n_fft, n_mels) for n_fft, n_mels in scales
        )

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        losses = [F.l1_loss(mel(estimate), mel(target)) for mel in self.spectrograms]
        return torch.stack(losses).mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over resolutions of spectral convergence plus L1 log-magnitude distance."""

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = STFT_RESOLUTIONS) -> None:
        super().__init__()
        self.magnitudes = nn.ModuleList(STFTMagnitude(*resolution) for resolution in resolutions)

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        losses = []
        for magnitude in self.magnitudes:
            est, ref = magnitude(estimate), magnitude(target)
            convergence = torch.linalg.vector_norm(ref - est) / torch.linalg.vector_norm(ref)
            losses.append(convergence + F.l1_loss(est.log(), ref.log()))
        return torch.stack(losses).mean()


def feature_matching_loss(
    real_features: Sequence[Sequence[Tensor]], fake_features: Sequence[Sequence[Tensor]]
) -> Tensor:
    """Mean over discriminators and layers of L1(fake, real) / mean |real| (as Encodec); the
    real features are targets (no gradient)."""
    losses = []
    for reals, fakes in zip(real_features, fake_features, strict=True):
        for real, fake in zip(reals, fakes, strict=True):
            real = real.detach().float()
            losses.append(F.l1_loss(fake.float(), real) / real.abs().mean().clamp_min(1e-8))
    return torch.stack(losses).mean()


def generator_hinge_loss(fake_logits: Sequence[Tensor]) -> Tensor:
    """Mean over discriminators of mean(relu(1 - D(fake)))."""
    return torch.stack([F.relu(1.0 - logits.float()).mean() for logits in fake_logits]).mean()


def discriminator_hinge_loss(
    real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor]
) -> Tensor:
    """Mean over discriminators of mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    losses = [
        F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()
        for real, fake in zip(real_logits, fake_logits, strict=True)
    ]
    return torch.stack(losses).mean()
