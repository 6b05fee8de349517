"""Attention kernel selection and rotary position embeddings.

`attend` runs `torch.nn.functional.scaled_dot_product_attention` (which dispatches to
FlashAttention kernels on recent NVIDIA GPUs); the `flash-attn` package is used only when it
is installed, the tensors are on CUDA in fp16/bf16 and no explicit mask is needed.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HAS_FLASH_ATTN = importlib.util.find_spec("flash_attn") is not None


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
) -> Tensor:
    """Attention over (batch, heads, time, head_dim) tensors.

    mask: boolean, True where a query may attend a key, broadcastable to
    (batch, heads, q_time, k_time). `causal` aligns the causal diagonal to the end of the keys
    (so a query block appended after cached keys attends all of them).
    """
    if HAS_FLASH_ATTN and mask is None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        from flash_attn import flash_attn_func

        out = flash_attn_func(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p, causal=causal
        )
        return out.transpose(1, 2)
    if causal and q.shape[-2] != k.shape[-2]:
        q_len, k_len = q.shape[-2], k.shape[-2]
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril(k_len - q_len)
        causal = False
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal
    )


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) applied to queries and keys at given positions."""

    def __init__(self, head_dim: int, base: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError("RoPE needs an even head dimension")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate x (..., time, head_dim) by its absolute positions: (time,) shared by every
        row, or (batch, time) for x (batch, heads, time, head_dim) whose rows stand at
        different positions (streams of several calls in one batch)."""
        angles = positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq
        if positions.dim() == 2:
            angles = angles[:, None]  # (batch, 1, time, head_dim / 2): shared by the heads
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2)
