"""Multi-scale STFT discriminator (as in Encodec): 2D convs on complex spectrograms.

Each scale takes the normalised complex STFT of the waveform at one resolution (window n_fft,
hop n_fft // 4, no centring), stacks its real and imaginary parts as two channels of a
(time, frequency) image and runs weight-normalised 2D convs with LeakyReLU: one (3, 9) conv,
three (3, 9) convs striding 2 in frequency with time dilations 1, 2, 4, one (3, 3) conv, and a
(3, 3) conv to one logit channel. The STFT is taken in float32; the convs may run under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

N_FFTS: tuple[int, ...] = (2048, 1024, 512, 256, 128)
"""Windows of the scales (Encodec's five)."""

DILATIONS: tuple[int, ...] = (1, 2, 4)
NEGATIVE_SLOPE = 0.2


def _conv(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: int = 1,
) -> nn.Module:
    """Weight-normalised Conv2d padded to keep the time length ('same' in time)."""
    padding = ((kernel[0] - 1) * dilation // 2, (kernel[1] - 1) // 2)
    conv = nn.Conv2d(
        in_channels, out_channels, kernel, stride=stride, dilation=(dilation, 1), padding=padding
    )
    return weight_norm(conv)


class STFTDiscriminator(nn.Module):
    """One scale: (batch, samples) -> logits (batch, 1, frames, bins') and feature maps."""

    def __init__(self, n_fft: int, filters: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList(
            [
                _conv(2, filters, (3, 9)),
                *(_conv(filters, filters, (3, 9), (1, 2), dilation) for dilation in DILATIONS),
                _conv(filters, filters, (3, 3)),
            ]
        )
        self.post = _conv(filters, 1, (3, 3))
        self.activation = nn.LeakyReLU(NEGATIVE_SLOPE)

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        if wav.shape[-1] < self.n_fft:
            raise ValueError(f"need at least {self.n_fft} samples, got {wav.shape[-1]}")
        spec = torch.stft(
            wav.float(),
            self.n_fft,
            self.hop,
            self.n_fft,
            self.window,
            center=False,
            normalized=True,
            return_complex=True,
        )
        x = torch.stack((spec.real, spec.imag), dim=1).transpose(2, 3)  # (batch, 2, time, freq)
        features = []
        for conv in self.convs:
            x = self.activation(conv(x))
            features.append(x)
        return self.post(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """One STFTDiscriminator per window in `n_ffts`, each with `filters` channels."""

    def __init__(self, filters: int = 32, n_ffts: Sequence[int] = N_FFTS) -> None:
        super().__init__()
        self.scales = nn.ModuleList(STFTDiscriminator(n_fft, filters) for n_fft in n_ffts)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        """Logits of every scale, and every scale's feature maps (after each activation)."""
        logits, features = [], []
        for scale in self.scales:
            scale_logits, scale_features = scale(wav)
            logits.append(scale_logits)
            features.append(scale_features)
        return logits, features
