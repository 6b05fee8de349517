"""The sampling side of generating an answer: what each decoder position reads, what it draws,
and when the answer is over, apart from how its logits are computed.

`StreamingDecoder.generate_steps` runs an `AnswerDraw` against its own cache; a server that
steps the answers of several calls as one batch (agent/responders/answering.py) runs one
`AnswerDraw` per call against rows of a shared cache. Both draw the same tokens from the same
logits: per call, from the call's own generator.

Fewer levels in silence (with the codec's `QuietCodes`): the codebook delays draw a step's
level 0 before its finer levels, so when every frame of a step has a quiet level-0 code, its
finer levels are left out: their logits are not computed (`needs_fine`), nothing is drawn for
them, the step's codes carry PAD there (the codec decodes such frames from the levels present,
`levels_present`), and the next position reads the codec's `fill` codes in their place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from models.codec.quiet import QuietCodes
from models.s2s.delay import TEXT_PAD, Vocabulary
from models.s2s.sampling import Sampling, sample
from models.text.tokenizer import BOS, EOS, UNK

if TYPE_CHECKING:
    from models.s2s.decoder import StreamingDecoder

TEXT_NEVER = (UNK, BOS, EOS)
"""Tokenizer ids the text stream never emits."""


class AnswerStep(NamedTuple):
    """One generated answer step."""

    codes: Tensor
    """(batch, Q, G) codes of the step's frames."""
    text: Tensor | None
    """(batch,) the step's text token (a piece, PAD or EPAD); None without a text stream."""


def levels_present(codes: Tensor, vocab: Vocabulary) -> Tensor | None:
    """(batch, Q, frames) answer codes -> the codec's level mask (False where a level was
    left out, PAD), or None when every level is present."""
    present = codes < vocab.codebook_size
    return None if bool(present.all()) else present


def guided(base: Tensor, conditioned: Tensor, guidance: float) -> Tensor:
    """Classifier-free guidance: unconditioned + guidance x (conditioned - unconditioned)."""
    return base + guidance * (conditioned - base)


class AnswerDraw:
    """One answer (`batch` samples) position by position: `inputs()` is what the next
    position reads, `take(logits, text_logits)` draws its tokens and returns the answer step
    that position completes (None while the delay pattern fills, or after the end).

    A step's codebook q is drawn at position step + delays[q]; slots of the delay pattern that
    are not free are forced (PAD before a codebook's first step, EOS at the ending step, PAD
    after it, exactly as the training `inputs`). The answer ends at every sample's EOS (only
    codebook 0, frame 0 may say it) or after `max_steps` steps. The text token of a step is
    drawn at the position of its coarse codes with `sampling.text_temperature`, among pieces,
    PAD and EPAD. With `quiet`, the finer levels of a step whose level-0 codes are all quiet
    are left out (the module docstring)."""

    def __init__(
        self,
        decoder: StreamingDecoder,
        batch: int,
        sampling: Sampling,
        generator: torch.Generator | None,
        max_steps: int,
        device: torch.device,
        quiet: QuietCodes | None = None,
    ) -> None:
        self.sampling = sampling
        self.text_sampling = sampling.for_text()
        self.generator = generator
        self.max_delay = decoder.max_delay
        self.positions = max_steps + decoder.max_delay
        """Positions the answer may take (the decoder cache it needs)."""
        pad, eos = decoder.vocab.pad, decoder.vocab.eos
        self._pad, self._eos = pad, eos
        quantizers, frames = decoder.quantizers, decoder.frames_per_step
        allowed = torch.ones(quantizers, frames, decoder.vocab.size, dtype=torch.bool)
        allowed[..., pad] = allowed[..., eos] = False
        allowed[0, 0, eos] = True  # only codebook 0, frame 0 may end the answer
        self._allowed = allowed.to(device)
        self._has_text = decoder.text_output is not None
        self._text_allowed: Tensor | None = None
        if self._has_text:
            self._text_allowed = torch.ones(decoder.text_vocab, dtype=torch.bool, device=device)
            self._text_allowed[list(TEXT_NEVER)] = False
        self._never = torch.iinfo(torch.long).max
        self._end = torch.full((batch,), self._never, dtype=torch.long, device=device)
        self._last_end: int | None = None
        """Set once every sample has ended: the last ending step."""
        self._lag = torch.tensor(decoder.delays, device=device)
        self._codebooks = torch.arange(quantizers, device=device)
        shape = (batch, quantizers, self.positions, frames)
        self._grid = torch.full(shape, pad, dtype=torch.long, device=device)
        self._text_grid = torch.full(
            (batch, self.positions), TEXT_PAD, dtype=torch.long, device=device
        )
        self._quiet = None if quiet is None else QuietCodes(quiet.quiet.to(device), quiet.fill)
        fill = [pad] + ([] if quiet is None else quiet.fill.tolist())
        self._fill = torch.tensor(fill, device=device)[:, None]
        """(Q, 1): what the next position reads in a left-out slot (level 0 is never one)."""
        self._left: Tensor | None = None
        """(batch, Q) bool: the slots of the next position that are left out; None: none."""
        self._tokens = self._grid[:, :, 0].clone()  # position 0 sees PAD (BOS) everywhere
        self._text = self._text_grid[:, 0].clone() if self._has_text else None
        self.position = 0
        """The position the next `take` draws."""

    @property
    def over(self) -> bool:
        """Whether the answer has no position left to draw."""
        done = self.position - self.max_delay
        return self.position >= self.positions or (
            self._last_end is not None and done >= self._last_end
        )

    def needs_fine(self) -> Tensor | None:
        """(batch,) bool: the samples whose next position needs the logits of levels 1..;
        None when all do."""
        if self._left is None:
            return None
        return ~self._left[:, 1:].all(dim=1)

    def _left_out(self) -> Tensor | None:
        """The next position's left-out slots: level q > 0 of a step drawn at an earlier
        position (delays[q] > 0) whose level-0 codes are all quiet."""
        if self._quiet is None:
            return None
        step_of = self.position - self._lag
        earlier = (step_of >= 0) & (self._lag > 0)
        coarse = self._grid[:, 0, step_of.clamp(0, self.positions - 1)]  # (batch, Q, G)
        left = self._quiet.is_quiet(coarse).all(dim=2) & earlier
        return left if bool(left.any()) else None

    def inputs(self) -> tuple[Tensor, Tensor | None]:
        """The next position's input: the previous position's codes (batch, Q, G) and text
        token (batch,) (None without a text stream)."""
        return self._tokens, self._text

    def take(self, logits: Tensor, text_logits: Tensor | None) -> AnswerStep | None:
        """Draw the position's tokens from its code logits (batch, Q, G, vocab) and text
        logits (batch, text vocab); the step it completes, if any."""
        position, pad, eos, left = self.position, self._pad, self._eos, self._left
        allowed = logits.masked_fill(~self._allowed, float("-inf"))
        if left is None:
            sampled = sample(allowed, self.sampling, self.generator)
        else:  # draw the slots present only; PAD marks the others
            sampled = torch.full(allowed.shape[:-1], pad, dtype=torch.long, device=logits.device)
            sampled[~left] = sample(allowed[~left], self.sampling, self.generator)
        step_of = (position - self._lag)[None, :, None]
        ends = self._end[:, None, None]
        tokens = torch.where(step_of == ends, eos, sampled)
        tokens = tokens.masked_fill((step_of < 0) | (step_of > ends), pad)
        ended = (self._end == self._never) & (tokens[:, 0, 0] == eos)
        if bool(ended.any()):
            self._end = torch.where(ended, position, self._end)
            tokens[:, 0] = torch.where(ended[:, None], eos, tokens[:, 0])
            if bool((self._end != self._never).all()):
                self._last_end = int(self._end.max())
        self._grid[:, :, position] = tokens
        self._tokens = tokens if left is None else torch.where(left[..., None], self._fill, tokens)
        if text_logits is not None and self._text_allowed is not None:
            masked = text_logits.masked_fill(~self._text_allowed, float("-inf"))
            text = sample(masked, self.text_sampling, self.generator)
            text = text.masked_fill(position >= self._end, TEXT_PAD)  # TEXT_END says nothing
            self._text_grid[:, position] = text
            self._text = text
        self.position += 1
        self._left = self._left_out()
        done = position - self.max_delay
        if done < 0 or (self._last_end is not None and done >= self._last_end):
            return None
        return AnswerStep(
            self._grid[:, self._codebooks, done + self._lag],
            self._text_grid[:, done] if self._has_text else None,
        )
