"""The decoder's token vocabulary and the codebook delay pattern (as in MusicGen).

Vocabulary, the same for every codebook (and every frame of a step):

    0 .. codebook_size - 1   codec codes
    codebook_size            PAD: the input before the first step (BOS) and every delayed slot
                             that has no code yet or any more; never a training target
    codebook_size + 1        EOS: the step after the last step of an answer

Layouts: codes are (batch, Q, frames); grouped by decoder step they are (batch, Q, steps, G)
with frame f = step * G + g. Delay pattern: codebook q of step t sits at decoder position
t + q, so an answer of T steps plus its EOS step fills T + Q positions, and codebook q of a
step is predicted after codebooks 0 .. q - 1 of the same step are known.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Vocabulary:
    """Token ids of one codebook: the codes, then PAD, then EOS."""

    codebook_size: int

    @property
    def pad(self) -> int:
        return self.codebook_size

    @property
    def eos(self) -> int:
        return self.codebook_size + 1

    @property
    def size(self) -> int:
        return self.codebook_size + 2


def to_steps(codes: Tensor, frames_per_step: int) -> Tensor:
    """(batch, Q, frames) -> (batch, Q, steps, G); frames must be a multiple of G."""
    batch, quantizers, frames = codes.shape
    if frames % frames_per_step:
        raise ValueError(f"{frames} frames is not a multiple of {frames_per_step} per step")
    return codes.reshape(batch, quantizers, frames // frames_per_step, frames_per_step)


def append_eos(steps: Tensor, vocab: Vocabulary, lengths: Tensor | None = None) -> Tensor:
    """(batch, Q, T, G) codes -> (batch, Q, T + 1, G) with EOS at step `lengths[b]`.

    lengths: (batch,) answer lengths in steps (all T by default); steps after EOS become PAD.
    """
    batch, _, steps_len, _ = steps.shape
    if lengths is None:
        lengths = torch.full((batch,), steps_len, dtype=torch.long, device=steps.device)
    if bool((lengths < 0).any()) or bool((lengths > steps_len).any()):
        raise ValueError(f"lengths must be in [0, {steps_len}]")
    out = torch.nn.functional.pad(steps, (0, 0, 0, 1), value=vocab.pad)
    t = torch.arange(steps_len + 1, device=steps.device)[None, None, :, None]
    end = lengths.to(steps.device)[:, None, None, None]
    out = out.masked_fill(t == end, vocab.eos)
    return out.masked_fill(t > end, vocab.pad)


def apply_delay(x: Tensor, pad: int) -> Tensor:
    """(batch, Q, T, ...) -> (batch, Q, T + Q - 1, ...): codebook q shifted q positions later,
    PAD in the slots before and after."""
    batch, quantizers, steps_len, *rest = x.shape
    out = x.new_full((batch, quantizers, steps_len + quantizers - 1, *rest), pad)
    for q in range(quantizers):
        out[:, q, q : q + steps_len] = x[:, q]
    return out


def undo_delay(y: Tensor) -> Tensor:
    """Inverse of `apply_delay`: (batch, Q, P, ...) -> (batch, Q, P - Q + 1, ...).

    Works on any trailing dims, so it also realigns logits (batch, Q, P, G, vocab) to steps."""
    quantizers, positions = y.shape[1], y.shape[2]
    steps_len = positions - quantizers + 1
    if steps_len < 0:
        raise ValueError(f"{positions} positions are fewer than {quantizers - 1} delay slots")
    return torch.stack([y[:, q, q : q + steps_len] for q in range(quantizers)], dim=1)


def shift_right(y: Tensor, pad: int) -> Tensor:
    """Decoder inputs from delayed targets: position p sees the tokens of position p - 1
    (PAD, i.e. BOS, at position 0)."""
    return torch.cat([torch.full_like(y[:, :, :1], pad), y[:, :, :-1]], dim=2)
