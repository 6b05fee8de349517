"""Training-only heads on the encoder's output for a user turn: what was said, and what for.

The S2S loss alone reaches the encoder only through the decoder's cross-attention, and a
briefly trained decoder learns to predict the answer's next codes from the answer so far, the
voice and the emotion, never from the user: on the synthetic corpus its teacher-forced
cross-entropy was the same with the user's own turn as with another's. These heads give the
encoder a direct reason to carry the turn's content (Moshi's "inner monologue" makes the same
point with text tokens):

- a CTC head over the turn's transcript (characters of the manifest's `text`), one label per
  encoder step (20 ms in the presets, well above the ~10 characters a second of speech);
- an intent head over the masked mean of the encoder output, for manifests whose user entries
  carry `extra.intent` (the synthetic corpus does; most real corpora do not, and then it is off).

Neither head is part of the shipped checkpoint: the agent never runs them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.data.text import normalise


def alphabet(texts: Iterable[str]) -> tuple[str, ...]:
    """The sorted characters of the normalised texts (CTC labels 1.., 0 is the blank)."""
    return tuple(sorted({ch for text in texts for ch in normalise(text)}))


class TurnHeads(nn.Module):
    """CTC over the transcript and (when `intents` is not empty) intent classification."""

    def __init__(self, dim: int, letters: tuple[str, ...], intents: tuple[str, ...]) -> None:
        super().__init__()
        self.letters = letters
        self.intents = intents
        self.index = {ch: i + 1 for i, ch in enumerate(letters)}
        self.ctc = nn.Linear(dim, len(letters) + 1)
        self.intent = nn.Linear(dim, len(intents)) if intents else None

    def labels(self, text: str) -> Tensor:
        """A transcript as CTC labels (characters outside the alphabet are skipped)."""
        ids = [self.index[ch] for ch in normalise(text) if ch in self.index]
        return torch.tensor(ids, dtype=torch.long)

    def intent_index(self, intent: str | None) -> int:
        """The intent's class, -1 (ignored) when it is unknown or the head is off."""
        return self.intents.index(intent) if intent in self.intents else -1

    def ctc_loss(self, hidden: Tensor, mask: Tensor, labels: Tensor, lengths: Tensor) -> Tensor:
        """Mean CTC loss (per label) of encoder output (B, S, dim) over its `mask`ed steps (B, S)
        against padded labels (B, L) of `lengths` (B,); turns with an empty transcript are
        skipped."""
        log_probs = F.log_softmax(self.ctc(hidden).float(), dim=-1).transpose(0, 1)
        keep = lengths > 0
        if not bool(keep.any()):
            return hidden.new_zeros(()).float()
        return F.ctc_loss(
            log_probs[:, keep],
            labels[keep],
            mask.sum(dim=1)[keep],
            lengths[keep],
            zero_infinity=True,
        )

    def intent_logits(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """(B, intents) logits from the mean of the encoder output over the `mask`ed steps."""
        if self.intent is None:
            raise ValueError("this run has no intent head (its manifest names no intents)")
        weights = mask.to(hidden.dtype)[..., None]
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return self.intent(pooled).float()

    def intent_loss(self, hidden: Tensor, mask: Tensor, intents: Tensor) -> Tensor:
        """Cross-entropy of the intent logits (turns of unknown intent, -1, ignored)."""
        if self.intent is None or not bool((intents >= 0).any()):
            return hidden.new_zeros(()).float()
        return F.cross_entropy(self.intent_logits(hidden, mask), intents, ignore_index=-1)
