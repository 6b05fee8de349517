"""A chunk-causal Conformer block (Gulati et al., 2020) that streams exactly.

Macaron layout: half-step feed-forward, self-attention, convolution module, half-step
feed-forward, LayerNorm. Unlike the original block, nothing here sees past the end of the
current chunk: attention is limited by `chunk_mask` (a query sees its whole chunk and `window`
steps before the chunk start) and the depthwise convolution is causal (left context only, with
LayerNorm instead of BatchNorm). The same code runs offline and streaming; a `BlockCache`
carries the keys, values and convolution inputs that the next chunk needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.modules.attention import RotaryEmbedding, attend


@dataclass
class BlockCache:
    """What one block keeps between calls: just what the next chunk can see."""

    keys: Tensor
    """(batch, heads, <= window, head_dim): rotated keys of the last `window` steps."""
    values: Tensor
    """(batch, heads, <= window, head_dim)."""
    conv: Tensor
    """(batch, dim, conv_kernel - 1): depthwise convolution inputs of the last steps."""

    @classmethod
    def stack(cls, caches: list[BlockCache]) -> BlockCache:
        """The caches of several streams as the rows of one (same lengths)."""
        return cls(
            torch.cat([c.keys for c in caches]),
            torch.cat([c.values for c in caches]),
            torch.cat([c.conv for c in caches]),
        )

    def row(self, index: int) -> BlockCache:
        """One stream's cache out of a stacked one."""
        rows = slice(index, index + 1)
        return BlockCache(self.keys[rows], self.values[rows], self.conv[rows])


def chunk_mask(q_pos: Tensor, k_pos: Tensor, chunk: int, window: int) -> Tensor:
    """(q, k) boolean mask, True where the query at step q_pos may attend the key at k_pos:
    k in q's chunk, or among the `window` steps before the chunk start."""
    start = torch.div(q_pos, chunk, rounding_mode="floor") * chunk
    k = k_pos[None, :]
    return (k >= (start - window)[:, None]) & (k < (start + chunk)[:, None])


class FeedForward(nn.Sequential):
    """Pre-norm Swish feed-forward."""

    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__(
            nn.LayerNorm(dim),
            nn.Linear(dim, mult * dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(mult * dim, dim),
            nn.Dropout(dropout),
        )


class ChunkedSelfAttention(nn.Module):
    """Multi-head self-attention with RoPE on absolute steps and a chunked sliding window."""

    def __init__(self, dim: int, heads: int, chunk: int, window: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads, self.chunk, self.window, self.dropout = heads, chunk, window, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.rope = RotaryEmbedding(dim // heads)

    def forward(
        self, x: Tensor, start: int | Tensor, keys: Tensor, values: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x: (batch, time, dim) at steps start, start + 1, ...; keys/values: the cache of the
        steps just before `start`. Returns the output and the trimmed new cache.

        `start` may be a (batch,) tensor: rows of different streams at different steps (calls
        batched together), which must share the cache length and be chunk starts, so that the
        mask, relative to each row's start, is the same for all of them."""
        batch, time, dim = x.shape
        q, k, v = self.qkv(self.norm(x)).view(batch, time, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        offsets = torch.arange(time, device=x.device)
        rows = isinstance(start, Tensor)
        rope_pos = start.to(x.device)[:, None] + offsets if rows else offsets + start
        q, k = self.rope(q, rope_pos), self.rope(k, rope_pos)
        start = int(start[0]) if rows else start
        q_pos = offsets + start
        k, v = torch.cat((keys, k), dim=2), torch.cat((values, v), dim=2)
        end = start + time
        first_key, last_chunk = end - k.shape[2], (end - 1) // self.chunk * self.chunk
        if first_key >= last_chunk - self.window and end <= start + self.chunk:
            mask = None  # one chunk whose window covers every key (streaming, one chunk a call)
        else:
            k_pos = torch.arange(first_key, end, device=x.device)
            mask = chunk_mask(q_pos, k_pos, self.chunk, self.window)
        out = attend(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)
        out = self.out(out.transpose(1, 2).reshape(batch, time, dim))
        cut = k.shape[2] - min(self.window, k.shape[2])
        return out, k[:, :, cut:], v[:, :, cut:]


class CausalConvModule(nn.Module):
    """Pointwise conv + GLU, causal depthwise conv, LayerNorm, Swish, pointwise conv."""

    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, 2 * dim)
        self.glu = nn.GLU(dim=-1)
        self.depthwise = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.depth_norm = nn.LayerNorm(dim)
        self.act = nn.SiLU()
        self.project = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """x: (batch, time, dim); context: (batch, dim, kernel - 1), the depthwise inputs of the
        steps before x (zeros at the stream start). Returns the output and the new context."""
        h = torch.cat((context, self.glu(self.expand(self.norm(x))).transpose(1, 2)), dim=2)
        keep = context.shape[2]
        y = self.depthwise(h).transpose(1, 2)
        y = self.drop(self.project(self.act(self.depth_norm(y))))
        return y, h[:, :, h.shape[2] - keep :]


class ConformerBlock(nn.Module):
    """One chunk-causal Conformer block."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_mult: int,
        conv_kernel: int,
        chunk: int,
        window: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dim, self.heads, self.conv_kernel = dim, heads, conv_kernel
        self.ff1 = FeedForward(dim, ff_mult, dropout)
        self.attn = ChunkedSelfAttention(dim, heads, chunk, window, dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.conv = CausalConvModule(dim, conv_kernel, dropout)
        self.ff2 = FeedForward(dim, ff_mult, dropout)
        self.norm = nn.LayerNorm(dim)

    def empty_cache(self, batch_size: int, like: Tensor) -> BlockCache:
        """The cache at the start of a stream: no keys, zero convolution context."""
        head_dim = self.dim // self.heads
        kv = like.new_zeros(batch_size, self.heads, 0, head_dim)
        return BlockCache(kv, kv, like.new_zeros(batch_size, self.dim, self.conv_kernel - 1))

    def forward(
        self, x: Tensor, start: int | Tensor, cache: BlockCache
    ) -> tuple[Tensor, BlockCache]:
        """x: (batch, time, dim) at steps start, start + 1, ...; `start` (an int, or (batch,)
        for rows of several streams) must be a chunk start and x whole chunks (the last one may
        be short at the end of a stream)."""
        x = x + 0.5 * self.ff1(x)
        a, keys, values = self.attn(x, start, cache.keys, cache.values)
        x = x + self.attn_drop(a)
        c, conv = self.conv(x, cache.conv)
        x = x + c
        x = x + 0.5 * self.ff2(x)
        return self.norm(x), BlockCache(keys, values, conv)
