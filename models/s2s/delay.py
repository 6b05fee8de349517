"""The decoder's token vocabulary and the codebook delay pattern (as in MusicGen).

Vocabulary, the same for every codebook (and every frame of a step):

    0 .. codebook_size - 1   codec codes
    codebook_size            PAD: the input before the first step (BOS) and every delayed slot
                             that has no code yet or any more; never a training target
    codebook_size + 1        EOS: the step after the last step of an answer

Layouts: codes are (batch, Q, frames); grouped by decoder step they are (batch, Q, steps, G)
with frame f = step * G + g. Delay pattern: codebook q of step t sits at decoder position
t + delays[q], so an answer of T steps plus its EOS step fills T + 1 + D positions
(D = max delay), and codebook q of a step is predicted after the codebooks with smaller
delays are known. MusicGen's full delay (0, 1, ..., Q-1) completes a step Q - 1 positions
after it starts; the partial delay (0, 1, 1, ..., 1) used by the presets predicts the coarse
codebook first and all finer ones together one position later, so the first audio needs two
decoder positions instead of eight (MusicGen reports a small quality cost for it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from models.text.tokenizer import EOS


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


def apply_delay(x: Tensor, pad: int, delays: tuple[int, ...]) -> Tensor:
    """(batch, Q, T, ...) -> (batch, Q, T + D, ...) with D = max(delays): codebook q shifted
    delays[q] positions later, PAD in the slots before and after."""
    batch, quantizers, steps_len, *rest = x.shape
    out = x.new_full((batch, quantizers, steps_len + max(delays), *rest), pad)
    for q, delay in enumerate(delays):
        out[:, q, delay : delay + steps_len] = x[:, q]
    return out


def undo_delay(y: Tensor, delays: tuple[int, ...]) -> Tensor:
    """Inverse of `apply_delay`: (batch, Q, P, ...) -> (batch, Q, P - D, ...).

    Works on any trailing dims, so it also realigns logits (batch, Q, P, G, vocab) to steps."""
    steps_len = y.shape[2] - max(delays)
    if steps_len < 0:
        raise ValueError(f"{y.shape[2]} positions are fewer than {max(delays)} delay slots")
    return torch.stack([y[:, q, d : d + steps_len] for q, d in enumerate(delays)], dim=1)


def check_delays(delays: tuple[int, ...], quantizers: int) -> tuple[int, ...]:
    """Delays must name every codebook, start at 0 for codebook 0 and never decrease."""
    if len(delays) != quantizers:
        raise ValueError(f"{len(delays)} codebook delays for {quantizers} codebooks")
    if delays[0] != 0 or any(b < a for a, b in zip(delays, delays[1:], strict=False)):
        raise ValueError(f"codebook delays must start at 0 and not decrease: {delays}")
    return delays


def shift_right(y: Tensor, pad: int) -> Tensor:
    """Decoder inputs from delayed targets: position p sees the tokens of position p - 1
    (PAD, i.e. BOS, at position 0)."""
    return torch.cat([torch.full_like(y[:, :, :1], pad), y[:, :, :-1]], dim=2)


TEXT_PAD = 0
"""The text stream's "nothing said at this step" token (the tokenizer's PAD)."""
TEXT_END = EOS
"""The text stream's token at an answer's EOS step (the tokenizer's EOS): the stream says
where the answer ends, so that a text-only answer (`train monologue`) ends too."""
TEXT_IGNORE = -100
"""Text targets that are not trained (after an answer's EOS step)."""


def text_targets(text: Tensor, lengths: Tensor | None, positions: int) -> Tensor:
    """The text stream's targets at the decoder positions: text (batch, T) tokens per answer
    step -> (batch, positions), step t at position t (no delay, beside codebook 0), PAD at
    each answer's EOS step `lengths[b]` (T by default), TEXT_IGNORE after it."""
    batch, steps_len = text.shape
    if lengths is None:
        lengths = torch.full((batch,), steps_len, dtype=torch.long, device=text.device)
    out = text.new_full((batch, positions), TEXT_IGNORE)
    width = min(steps_len, positions)
    out[:, :width] = text[:, :width]
    t = torch.arange(positions, device=text.device)[None]
    end = lengths.to(text.device)[:, None]
    out = out.masked_fill(t == end, TEXT_END)
    return out.masked_fill(t > end, TEXT_IGNORE)


def text_inputs(targets: Tensor) -> Tensor:
    """Text inputs from `text_targets`: position p reads the token of position p - 1 (PAD at
    position 0 and wherever the target is not trained)."""
    known = targets.masked_fill(targets == TEXT_IGNORE, TEXT_PAD)
    return torch.cat([torch.full_like(known[:, :1], TEXT_PAD), known[:, :-1]], dim=1)
