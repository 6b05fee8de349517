"""Causal convolution layers that run on a whole signal or chunk by chunk with the same result.

Every layer here has `forward(x)` for a whole (batch, channels, time) signal and
`stream(x, state) -> (y, state)` for the next chunk of it, with `initial_state` giving the state
before the first chunk. A layer's state is one tensor: the left context of a causal conv, or
the overlap tail of a causal transposed conv. Streaming any partition of a signal into chunks
(each a multiple of the layer's stride) gives the whole-signal output, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only: output frame j sees input up to the end of its stride.

    Left padding is (kernel - 1) * dilation - (stride - 1): with stride s, output j covers the
    inputs [j*s - padding, j*s + s - 1], so a frame uses every sample of its own stride and no
    later one, and a length L (multiple of s) gives L / s outputs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, groups=groups
        )
        self.left_context = (kernel_size - 1) * dilation - (stride - 1)
        if self.left_context < 0:
            raise ValueError(f"causal conv needs kernel >= stride, got {kernel_size} < {stride}")

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left_context, 0)))

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        """Zero left context, as the whole-signal padding."""
        return like.new_zeros(batch, self.in_channels, self.left_context)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Convolve the next chunk after the left context `state`; returns the next context."""
        padded = torch.cat((state, x), dim=-1)
        context = padded[..., padded.shape[-1] - self.left_context :]
        return super().forward(padded), context


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """ConvTranspose1d that keeps the causal part: `stride` outputs per input frame.

    Each input frame j spreads over outputs [j*s, j*s + kernel); the whole-signal output keeps
    the first frames * s of them, and streaming carries the last kernel - s (the overlap tail)
    into the next chunk. The bias is added after the overlap-add so it is counted once.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.overlap = kernel_size - stride
        if self.overlap < 0:
            raise ValueError(
                f"causal transposed conv needs kernel >= stride, got {kernel_size} < {stride}"
            )

    def _spread(self, x: Tensor) -> Tensor:
        """Every input frame's kernel-long contribution, overlap-added, without bias."""
        return F.conv_transpose1d(x, self.weight, None, self.stride)

    def _with_bias(self, y: Tensor) -> Tensor:
        return y if self.bias is None else y + self.bias[:, None]

    def forward(self, x: Tensor) -> Tensor:
        return self._with_bias(self._spread(x)[..., : x.shape[-1] * self.stride[0]])

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        """No overlap from before the first frame."""
        return like.new_zeros(batch, self.out_channels, self.overlap)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Outputs of the next frames, with the previous tail `state` added; returns the tail."""
        spread = self._spread(x)
        spread = torch.cat((spread[..., : self.overlap] + state, spread[..., self.overlap :]), -1)
        length = x.shape[-1] * self.stride[0]
        return self._with_bias(spread[..., :length]), spread[..., length:]


class PreActivated(nn.Module):
    """ELU, then a streamable layer."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.activation = nn.ELU()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.activation(x))

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        return self.layer.initial_state(batch, like)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer.stream(self.activation(x), state)


class ResidualUnit(nn.Module):
    """x + pointwise(ELU(dilated causal conv(ELU(x)))), with a bottleneck of channels // 2."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3) -> None:
        super().__init__()
        hidden = max(1, channels // 2)
        self.activation = nn.ELU()
        self.conv = CausalConv1d(channels, hidden, kernel_size, dilation=dilation)
        self.pointwise = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pointwise(self.activation(self.conv(self.activation(x))))

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        return self.conv.initial_state(batch, like)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        hidden, state = self.conv.stream(self.activation(x), state)
        return x + self.pointwise(self.activation(hidden)), state


class CausalStack(nn.Module):
    """Streamable layers applied in order; the streaming state is one tensor per layer."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def initial_states(self, batch: int, like: Tensor) -> list[Tensor]:
        """The state of every layer before the first chunk (zeros of `like`'s dtype, device)."""
        return [layer.initial_state(batch, like) for layer in self.layers]

    def stream(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Run the next chunk through every layer; returns the output and the new states."""
        new_states = []
        for layer, state in zip(self.layers, states, strict=True):
            x, state = layer.stream(x, state)
            new_states.append(state)
        return x, new_states
