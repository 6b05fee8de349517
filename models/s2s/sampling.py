"""How answer codes are drawn from the decoder's logits.

The settings are fixed once, where a responder or an evaluation is built (as Moshi's `LMGen`
fixes its own), and the random state is an explicit `torch.Generator` that the caller owns
(one per call in the agent, one per run in `eval s2s`). Nothing here touches torch's global
random state, which every thread of a process shares: a seeded generator gives the same
answer on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Sampling:
    """Settings of one way to draw answers."""

    temperature: float
    """0 is greedy (argmax); above 0, draws from the temperature-scaled softmax."""
    top_k: int | None
    """Draw among the k likeliest tokens only (None: all)."""
    guidance: float
    """Classifier-free guidance on the speaker/emotion conditioning (1: none)."""
    text_temperature: float = 0.0
    """Temperature of the text stream's tokens (0: greedy, the likeliest piece: what the
    answer says matters more than variety in how it is said)."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be >= 1")
        if self.guidance < 1:
            raise ValueError("guidance must be >= 1 (1 = none)")
        if self.text_temperature < 0:
            raise ValueError("text_temperature must be >= 0")

    @property
    def greedy(self) -> bool:
        """Whether no draw is made (then no generator is needed)."""
        return self.temperature == 0

    def for_text(self) -> Sampling:
        """How the text stream's tokens are drawn (guidance is applied to the logits before)."""
        return Sampling(self.text_temperature, None, 1.0)

    def check_generator(self, generator: torch.Generator | None) -> None:
        """ValueError when draws are due and no generator is given."""
        if generator is None and not self.greedy:
            raise ValueError("sampling needs an explicit torch.Generator, never the global one")


ANSWERS = Sampling(temperature=0.8, top_k=50, guidance=3.0)
"""How answers are sampled in a call and in `eval s2s`: greedy decoding of a small model
trained briefly collapses into one repeated code, and classifier-free guidance keeps it to the
requested voice and emotion."""
GREEDY = Sampling(temperature=0.0, top_k=None, guidance=1.0)
"""Argmax decoding without guidance: deterministic, for tests and measurements."""


def sample(logits: Tensor, sampling: Sampling, generator: torch.Generator | None) -> Tensor:
    """Tokens from logits (..., vocab): argmax when greedy, else a draw from `generator` among
    the top_k tokens of the temperature-scaled softmax. ValueError when a draw is due and no
    generator is given."""
    sampling.check_generator(generator)
    if sampling.greedy:
        return logits.argmax(dim=-1)
    if sampling.top_k is None:
        candidates, indices = logits, None
    else:
        candidates, indices = logits.topk(sampling.top_k, dim=-1)
    probs = (candidates / sampling.temperature).softmax(dim=-1)
    choice = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    choice = choice.view(*probs.shape[:-1], 1)
    return (choice if indices is None else indices.gather(-1, choice)).squeeze(-1)
