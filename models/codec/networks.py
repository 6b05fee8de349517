"""TeluCodec's encoder and decoder, built from a CodecConfig.

Encoder (waveform -> latent frames): stage i is a causal conv to `channels[i]` with kernel
`kernel_sizes[i]` and stride `strides[i]` (ELU before it, except on the raw waveform),
followed by `residual_units` residual units with dilations 1, 3, 9, ...; then ELU and a causal
projection to `latent_dim`.

Conv decoder (latent frames -> waveform), the mirror: a causal projection from `latent_dim` to the
last channel count, then for each stage from last to first: residual units, ELU and a causal
transposed conv with that stage's kernel and stride, down to the previous stage's channels (1
for the first stage, the output waveform, with no final activation). The istft decoder is in
models.codec.istft.
"""

from __future__ import annotations

from torch import nn

from models.codec.istft import build_istft_decoder
from models.codec.layers import (
    CausalConv1d,
    CausalConvTranspose1d,
    CausalStack,
    PreActivated,
    ResidualUnit,
)
from models.config import CodecConfig

PROJECTION_KERNEL = 3
"""Kernel of the causal convs between the last stage and the latent."""


def check_config(config: CodecConfig) -> None:
    """ValueError unless the stages are consistent and every kernel covers its stride."""
    stages = {len(config.channels), len(config.strides), len(config.kernel_sizes)}
    if len(stages) != 1:
        raise ValueError("channels, strides and kernel_sizes need one entry per stage")
    for kernel, stride in zip(config.kernel_sizes, config.strides, strict=True):
        if stride < 1 or kernel < stride:
            raise ValueError(f"each stage needs kernel >= stride >= 1, got {kernel}, {stride}")


def residual_units(channels: int, count: int) -> list[nn.Module]:
    """`count` residual units with dilations 1, 3, 9, ..."""
    return [ResidualUnit(channels, dilation=3**unit) for unit in range(count)]


def build_encoder(config: CodecConfig) -> CausalStack:
    """(batch, 1, frames * hop) -> (batch, latent_dim, frames)."""
    check_config(config)
    layers: list[nn.Module] = []
    in_channels = 1
    stages = zip(config.channels, config.kernel_sizes, config.strides, strict=True)
    for out_channels, kernel, stride in stages:
        conv = CausalConv1d(in_channels, out_channels, kernel, stride=stride)
        layers.append(PreActivated(conv) if layers else conv)
        layers += residual_units(out_channels, config.residual_units)
        in_channels = out_channels
    layers.append(
        PreActivated(CausalConv1d(in_channels, config.latent_dim, PROJECTION_KERNEL)),
    )
    return CausalStack(layers)


def build_decoder(config: CodecConfig) -> CausalStack:
    """(batch, latent_dim, frames) -> (batch, 1, frames * hop): config.decoder "conv" (below)
    or "istft" (models.codec.istft)."""
    check_config(config)
    if config.decoder == "istft":
        return build_istft_decoder(config)
    if config.decoder != "conv":
        raise ValueError(f"decoder must be 'conv' or 'istft', got {config.decoder!r}")
    layers: list[nn.Module] = [
        CausalConv1d(config.latent_dim, config.channels[-1], PROJECTION_KERNEL)
    ]
    out_channels = (1, *config.channels[:-1])
    stages = zip(config.channels, out_channels, config.kernel_sizes, config.strides, strict=True)
    for in_channels, to_channels, kernel, stride in reversed(list(stages)):
        layers += residual_units(in_channels, config.residual_units)
        layers.append(PreActivated(CausalConvTranspose1d(in_channels, to_channels, kernel, stride)))
    return CausalStack(layers)
