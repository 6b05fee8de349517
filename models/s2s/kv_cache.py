"""Preallocated attention caches of the streaming decoder.

`MemoryCache` holds the cross-attention keys/values of the encoder output, projected once per
layer and appended as the encoder streams. `DecoderCache` holds the self-attention
keys/values of the answer so far and the next position to write.

Both are allocated to a fixed capacity up front. In eager mode a step attends only the filled
prefix (sliced views, cheapest on CPU). With `static=True` every step attends the whole buffer
under a mask built from the device-side position, so all shapes and addresses stay fixed and
the step can be captured as a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MemoryCache:
    """Cross-attention K/V of the encoder output: (layers, batch, heads, capacity, head_dim)."""

    keys: Tensor
    values: Tensor
    valid: Tensor
    """(batch, capacity) bool: True where a decoder query may attend."""
    length: int = 0
    masked: bool = False
    """Whether some appended position is masked out (eager mode then needs a mask)."""

    @classmethod
    def empty(
        cls,
        layers: int,
        batch: int,
        heads: int,
        head_dim: int,
        capacity: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> MemoryCache:
        shape = (layers, batch, heads, capacity, head_dim)
        return cls(
            keys=torch.zeros(shape, device=device, dtype=dtype),
            values=torch.zeros(shape, device=device, dtype=dtype),
            valid=torch.zeros(batch, capacity, dtype=torch.bool, device=device),
        )

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    @property
    def batch(self) -> int:
        return self.keys.shape[1]

    def append(self, keys: Tensor, values: Tensor, mask: Tensor | None = None) -> None:
        """Write (layers, batch, heads, n, head_dim) K/V after the current length.

        mask: optional (batch, n) bool, True for real memory positions."""
        n = keys.shape[3]
        end = self.length + n
        if end > self.capacity:
            raise ValueError(f"memory of {end} steps exceeds the cache capacity {self.capacity}")
        self.keys[:, :, :, self.length : end] = keys
        self.values[:, :, :, self.length : end] = values
        if mask is None:
            self.valid[:, self.length : end] = True
        else:
            self.valid[:, self.length : end] = mask
            self.masked = self.masked or not bool(mask.all())
        self.length = end

    def layer(self, index: int, static: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """Keys, values and attention mask (batch, 1, 1, keys) or None for one layer."""
        if static:
            return self.keys[index], self.values[index], self.valid[:, None, None, :]
        if self.length == 0:
            raise ValueError("the decoder needs at least one memory step")
        end = self.length
        mask = self.valid[:, None, None, :end] if self.masked else None
        return self.keys[index, :, :, :end], self.values[index, :, :, :end], mask


@dataclass
class DecoderCache:
    """Self-attention K/V of the answer, (layers, batch, heads, capacity, head_dim), plus what
    every step reuses: the projected memory and the speaker/emotion conditioning vector."""

    keys: Tensor
    values: Tensor
    memory: MemoryCache
    condition: Tensor
    """(batch, dim), added to every input embedding."""
    position: Tensor
    """(1,) long on the cache's device: the position the next step writes."""
    static: bool = False
    length: int = 0
    """Host-side copy of `position` (filled positions)."""

    @classmethod
    def empty(
        cls,
        memory: MemoryCache,
        condition: Tensor,
        heads: int,
        capacity: int,
        static: bool = False,
    ) -> DecoderCache:
        layers, batch, _, _, head_dim = memory.keys.shape
        shape = (layers, batch, heads, capacity, head_dim)
        device, dtype = memory.keys.device, memory.keys.dtype
        return cls(
            keys=torch.zeros(shape, device=device, dtype=dtype),
            values=torch.zeros(shape, device=device, dtype=dtype),
            memory=memory,
            condition=condition,
            position=torch.zeros(1, dtype=torch.long, device=device),
            static=static,
        )

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def check_room(self) -> None:
        if self.length >= self.capacity:
            raise ValueError(f"the decoder cache is full ({self.capacity} positions)")

    def self_mask(self) -> Tensor | None:
        """Static mode: (1, 1, 1, capacity) True up to the current position; eager: None."""
        if not self.static:
            return None
        filled = torch.arange(self.capacity, device=self.position.device) <= self.position
        return filled[None, None, None, :]

    def write(self, index: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Store one position's (batch, heads, 1, head_dim) K/V of a layer; return the keys and
        values to attend (the whole buffer when static, the filled prefix otherwise)."""
        self.keys[index].index_copy_(2, self.position, keys)
        self.values[index].index_copy_(2, self.position, values)
        if self.static:
            return self.keys[index], self.values[index]
        end = self.length + 1
        return self.keys[index, :, :, :end], self.values[index, :, :, :end]

    def advance(self) -> None:
        self.position.add_(1)
        self.length += 1

    def reset(self) -> None:
        """Forget the answer (keeps the memory): the next step writes position 0."""
        self.position.zero_()
        self.length = 0
