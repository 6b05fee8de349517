"""Causal strided 1-D convolutions over feature frames, offline or chunk by chunk.

Each conv sees its input left-padded with kernel_size - 1 zero frames, so output j depends on
input frames up to j * stride only. A stream keeps the input frames the next output still
needs (its cache): feeding any split of the frames gives the offline outputs exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv(nn.Module):
    """Conv1d over (batch, frames, channels) with causal left padding and a stride."""

    def __init__(self, inputs: int, outputs: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv1d(inputs, outputs, kernel_size, stride)

    def empty_cache(self, batch: int, like: Tensor) -> Tensor:
        """The cache at the start of a stream: kernel_size - 1 zero frames."""
        return like.new_zeros(batch, self.kernel_size - 1, self.conv.in_channels)

    def forward(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """Frames (batch, n, in) after `cache` -> every output now complete and the new cache
        (the input frames from the next output's first one on)."""
        x = torch.cat((cache, x), dim=1)
        count = (x.shape[1] - self.kernel_size) // self.stride + 1
        if count <= 0:
            return x.new_zeros(x.shape[0], 0, self.conv.out_channels), x
        y = self.conv(x[:, : (count - 1) * self.stride + self.kernel_size].transpose(1, 2))
        return F.gelu(y.transpose(1, 2)), x[:, count * self.stride :]


class FrontEnd(nn.Module):
    """A stack of causal convs: feature frames -> subsampled frames of `channels`."""

    def __init__(self, mels: int, channels: int, kernel_size: int, strides: tuple[int, ...]):
        super().__init__()
        sizes = [mels, *(channels for _ in strides)]
        self.convs = nn.ModuleList(
            CausalConv(a, b, kernel_size, s)
            for a, b, s in zip(sizes[:-1], sizes[1:], strides, strict=True)
        )

    def empty_caches(self, batch: int, like: Tensor) -> list[Tensor]:
        return [conv.empty_cache(batch, like) for conv in self.convs]

    def forward(self, x: Tensor, caches: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        new = []
        for conv, cache in zip(self.convs, caches, strict=True):
            x, cache = conv(x, cache)
            new.append(cache)
        return x, new

    def output_frames(self, frames: Tensor) -> Tensor:
        """Output lengths of inputs of `frames` frames (a tensor of lengths)."""
        for conv in self.convs:
            frames = torch.where(
                frames > 0, (frames + conv.kernel_size - 1 - conv.kernel_size) // conv.stride + 1, 0
            )
        return frames
