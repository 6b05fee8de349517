"""The decoder caches of several answers as the rows of one batch, so that the answers of all
the calls a server is generating advance one position per batched decoder step.

`AnswerRows` is a cache with the interface `StreamingDecoder.step_logits` uses, over its rows
in use, [0, active): each row has its own position (its own answer's length), its own
speaker/emotion conditioning and its own encoder memory; shorter rows are masked. An answer
takes one row, two with classifier-free guidance (conditioned, unconditioned: Moshi's batch of
two), and gives them back when it ends: the rows after it move down, so the rows in use stay
contiguous and every step attends slices of the buffers, never copies of them. Buffers grow
(rows, memory length) when an answer needs more than they hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from models.s2s.kv_cache import MemoryCache


@dataclass(eq=False)
class RowsHandle:
    """The rows of one answer: [first, first + count) while it lasts."""

    first: int
    count: int
    memory_length: int


class AnswerRows:
    """Answer caches (self-attention K/V, memory K/V, conditioning, position) of several
    answers, one row each (two with guidance)."""

    static = False
    """Eager slices (the `DecoderCache` flag that `step_logits` reads)."""

    def __init__(
        self,
        layers: int,
        heads: int,
        head_dim: int,
        dim: int,
        positions: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        rows: int = 4,
        memory_steps: int = 256,
    ) -> None:
        self.positions_per_row = positions
        self._shape = (layers, heads, head_dim)
        self._dtype, self._device = dtype, device
        self.keys = self._zeros(rows, positions)
        self.values = self._zeros(rows, positions)
        self.memory_keys = self._zeros(rows, memory_steps)
        self.memory_values = self._zeros(rows, memory_steps)
        self.valid = torch.zeros(rows, memory_steps, dtype=torch.bool, device=device)
        self.conditions = torch.zeros(rows, dim, dtype=dtype, device=device)
        self.row_positions = torch.zeros(rows, dtype=torch.long, device=device)
        self._lengths: list[int] = []
        """Host copy of each row in use's position (filled positions)."""
        self._memory_lengths: list[int] = []
        self._handles: list[RowsHandle] = []
        self.memory = _RowsMemory(self)

    def _zeros(self, rows: int, length: int) -> Tensor:
        layers, heads, head_dim = self._shape
        shape = (layers, rows, heads, length, head_dim)
        return torch.zeros(shape, dtype=self._dtype, device=self._device)

    # -- answers come and go ----------------------------------------------------------------

    @property
    def active(self) -> int:
        """Rows in use."""
        return len(self._lengths)

    def add(self, memory: MemoryCache, conditions: Tensor) -> RowsHandle:
        """Rows for a new answer: one per conditioning vector (count, dim), each attending
        the same memory (a batch-1 MemoryCache, as filled while the user spoke)."""
        if memory.batch != 1:
            raise ValueError("an answer's memory is one call's (batch 1)")
        count, length = conditions.shape[0], memory.length
        self._make_room(self.active + count, length)
        first = self.active
        rows = slice(first, first + count)
        self.memory_keys[:, rows] = 0
        self.memory_values[:, rows] = 0
        self.memory_keys[:, rows, :, :length] = memory.keys[:, :, :, :length]
        self.memory_values[:, rows, :, :length] = memory.values[:, :, :, :length]
        self.valid[rows] = False
        self.valid[rows, :length] = memory.valid[:, :length]
        self.conditions[rows] = conditions
        self.row_positions[rows] = 0
        self._lengths += [0] * count
        self._memory_lengths += [length] * count
        handle = RowsHandle(first, count, length)
        self._handles.append(handle)
        return handle

    def remove(self, handle: RowsHandle) -> None:
        """Give an answer's rows back; the rows after them move down."""
        self._handles.remove(handle)
        first, count, end = handle.first, handle.count, self.active
        tail = slice(first + count, end)
        moved = slice(first, end - count)
        for buffer in (self.keys, self.values, self.memory_keys, self.memory_values):
            buffer[:, moved] = buffer[:, tail].clone()
        for buffer in (self.valid, self.conditions, self.row_positions):
            buffer[moved] = buffer[tail].clone()
        del self._lengths[first : first + count]
        del self._memory_lengths[first : first + count]
        for other in self._handles:
            if other.first > first:
                other.first -= count

    def _make_room(self, rows: int, memory_steps: int) -> None:
        have_rows, have_memory = self.keys.shape[1], self.memory_keys.shape[3]
        if rows <= have_rows and memory_steps <= have_memory:
            return
        new_rows = max(rows, 2 * have_rows) if rows > have_rows else have_rows
        new_memory = have_memory
        if memory_steps > have_memory:
            new_memory = max(memory_steps, 2 * have_memory)
        used = self.active
        self.keys = self._grown(self.keys, new_rows, self.positions_per_row, used)
        self.values = self._grown(self.values, new_rows, self.positions_per_row, used)
        self.memory_keys = self._grown(self.memory_keys, new_rows, new_memory, used)
        self.memory_values = self._grown(self.memory_values, new_rows, new_memory, used)
        valid = torch.zeros(new_rows, new_memory, dtype=torch.bool, device=self._device)
        valid[:used, :have_memory] = self.valid[:used]
        self.valid = valid
        conditions = self.conditions.new_zeros(new_rows, self.conditions.shape[1])
        conditions[:used] = self.conditions[:used]
        self.conditions = conditions
        positions = self.row_positions.new_zeros(new_rows)
        positions[:used] = self.row_positions[:used]
        self.row_positions = positions

    def _grown(self, buffer: Tensor, rows: int, length: int, used: int) -> Tensor:
        grown = self._zeros(rows, length)
        grown[:, :used, :, : buffer.shape[3]] = buffer[:, :used]
        return grown

    # -- what a decoder step reads (rows in use) ---------------------------------------------

    def check_room(self) -> None:
        if not self._lengths:
            raise ValueError("no answer is in progress")
        if max(self._lengths) >= self.positions_per_row:
            raise ValueError(f"an answer filled its {self.positions_per_row} positions")

    @property
    def condition(self) -> Tensor:
        """(active, dim)."""
        return self.conditions[: self.active]

    @property
    def position(self) -> Tensor:
        """(active, 1): each row's position, for the rotary embedding."""
        return self.row_positions[: self.active, None]

    def self_mask(self) -> Tensor:
        """(active, 1, 1, longest + 1): True up to each row's own position."""
        filled = max(self._lengths) + 1
        steps = torch.arange(filled, device=self.row_positions.device)
        return (steps[None, :] <= self.row_positions[: self.active, None])[:, None, None, :]

    def write(self, index: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Store each row's (active, heads, 1, head_dim) K/V of a layer at its own position;
        return the keys and values to attend (up to the longest row, masked)."""
        active = self.active
        rows = torch.arange(active, device=self.row_positions.device)
        at = self.row_positions[:active]
        self.keys[index, rows, :, at] = keys[:, :, 0]
        self.values[index, rows, :, at] = values[:, :, 0]
        filled = max(self._lengths) + 1
        return self.keys[index, :active, :, :filled], self.values[index, :active, :, :filled]

    def advance(self) -> None:
        self.row_positions[: self.active] += 1
        self._lengths = [n + 1 for n in self._lengths]


class _RowsMemory:
    """The rows' memory as `StreamingDecoder.step_logits` reads it (`MemoryCache.layer`)."""

    def __init__(self, rows: AnswerRows) -> None:
        self._rows = rows

    def layer(self, index: int, static: bool) -> tuple[Tensor, Tensor, Tensor]:
        rows = self._rows
        active = rows.active
        longest = max(rows._memory_lengths)
        return (
            rows.memory_keys[index, :active, :, :longest],
            rows.memory_values[index, :active, :, :longest],
            rows.valid[:active, None, None, :longest],
        )
