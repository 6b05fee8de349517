"""The inverse-STFT decoder (CodecConfig.decoder "istft"): all of its work at the frame rate.

A causal conv from the latent to `istft_dim` channels, `istft_blocks` causal ConvNeXt blocks,
then per frame a linear layer to the log-magnitude and phase of one `istft_n_fft`-sample STFT
frame, its inverse FFT under a periodic Hann window, and overlap-add with hop `hop`.

Frame j's window covers the n_fft samples that end with frame j's own hop, so it describes
audio the encoder has already seen. A sample is final only once every window over it is in:
the decoder emits, after frame j, the hop samples that frame j completes, which are the input's
samples n_fft - hop earlier. The output is the input delayed by `delay(config)` samples (15 ms
with n_fft = 4 x hop), offline and streamed alike, and the stream state of the head is the
overlap tail of the windows not yet complete.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.codec.layers import CausalConv1d, CausalStack
from models.config import CodecConfig

KERNEL = 7
"""Kernel of the input conv and of each block's depthwise conv (frames)."""
MLP_RATIO = 3
"""Hidden width of each block's pointwise MLP, in multiples of istft_dim."""
LAYER_SCALE = 0.1
"""Initial scale of each block's residual branch."""
MAX_LOG_MAGNITUDE = 4.6
"""Log-magnitudes are clamped here (|X| <= ~100), so exp cannot overflow."""


def delay(config: CodecConfig) -> int:
    """Samples by which the istft decoder's output lags its input: n_fft - hop."""
    return config.istft_n_fft - config.hop


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of (batch, channels, frames); stateless when streamed."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch, 0)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self(x), state


class ConvNeXtBlock(nn.Module):
    """x + scale * MLP(LayerNorm(depthwise causal conv(x))), per channel scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.depthwise = CausalConv1d(dim, dim, KERNEL, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim)
        )
        self.scale = nn.Parameter(torch.full((dim,), LAYER_SCALE))

    def _residual(self, x: Tensor, mixed: Tensor) -> Tensor:
        branch = self.mlp(self.norm(mixed.transpose(1, 2))) * self.scale
        return x + branch.transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self._residual(x, self.depthwise(x))

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        return self.depthwise.initial_state(batch, like)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        mixed, state = self.depthwise.stream(x, state)
        return self._residual(x, mixed), state


class ISTFTHead(nn.Module):
    """(batch, dim, frames) -> (batch, 1, frames * hop): per-frame spectrum, inverse FFT,
    windowed overlap-add; the first frames * hop samples are the complete ones."""

    def __init__(self, dim: int, n_fft: int, hop: int) -> None:
        super().__init__()
        if n_fft < hop or n_fft % hop:
            raise ValueError(f"istft_n_fft must be a multiple of hop {hop}, got {n_fft}")
        self.n_fft = n_fft
        self.hop = hop
        self.overlap = n_fft - hop
        self.bins = n_fft // 2 + 1
        self.project = nn.Linear(dim, 2 * self.bins)
        window = torch.hann_window(n_fft)
        # overlap-added squared windows (constant for Hann at hop n_fft / 4, 2 or 1)
        envelope = window.pow(2).view(-1, hop).sum(0).mean()
        self.register_buffer("window", window / envelope, persistent=False)

    def _spread(self, x: Tensor) -> Tensor:
        """Every frame's windowed waveform, overlap-added: (batch, 1, frames * hop + overlap)."""
        log_magnitude, phase = self.project(x.transpose(1, 2)).float().chunk(2, dim=-1)
        magnitude = log_magnitude.clamp(max=MAX_LOG_MAGNITUDE).exp()
        spectrum = torch.polar(magnitude, phase)
        frames = torch.fft.irfft(spectrum, n=self.n_fft, dim=-1) * self.window
        length = (x.shape[-1] - 1) * self.hop + self.n_fft
        folded = F.fold(
            frames.transpose(1, 2), (1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop)
        )
        return folded[:, :, 0].to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self._spread(x)[..., : x.shape[-1] * self.hop]

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        """No windows from before the first frame."""
        return like.new_zeros(batch, 1, self.overlap)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """The samples the next frames complete, with the previous tail `state` added; returns
        the new tail."""
        spread = self._spread(x)
        spread = torch.cat((spread[..., : self.overlap] + state, spread[..., self.overlap :]), -1)
        length = x.shape[-1] * self.hop
        return spread[..., :length], spread[..., length:]


def build_istft_decoder(config: CodecConfig) -> CausalStack:
    """(batch, latent_dim, frames) -> (batch, 1, frames * hop), delayed by `delay(config)`."""
    dim = config.istft_dim
    return CausalStack(
        [
            CausalConv1d(config.latent_dim, dim, KERNEL),
            ChannelNorm(dim),
            *(ConvNeXtBlock(dim) for _ in range(config.istft_blocks)),
            ChannelNorm(dim),
            ISTFTHead(dim, config.istft_n_fft, config.hop),
        ]
    )
