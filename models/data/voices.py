"""The corpus's synthetic voices, and how far apart a speaker encoder holds them.

The four personas (models.controls.SPEAKERS) are espeak-ng voice variants, each with its own
pitch and rate, chosen so that the GE2E speaker encoder (models/speaker.py) keeps them apart:
`telugu-s2s data voices` renders each on the same answers in every emotion and reports, per
voice, how alike its own clips are and how close the nearest other voice comes (the margin).
The variants were picked by that measurement from espeak-ng's 101 variants at three pitches
(docs/data.md); the earlier personas (te+m1, te+m3, te+f2, te+f4) were 0.07-0.11 apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Persona:
    voice: str
    """espeak-ng voice and variant."""
    pitch: int
    """espeak-ng -p, 0-99."""
    speed: int
    """espeak-ng -s, words per minute."""


PERSONAS: dict[str, Persona] = {
    "male_1": Persona("te+m1", 65, 175),  # young, energetic: higher and quick
    "male_2": Persona("te+Marco", 20, 140),  # mature narrator: deep and slow
    "female_1": Persona("te+steph3", 80, 165),  # young, friendly: high and lively
    "female_2": Persona("te+Alicia", 50, 155),  # anchor: lower, measured
}

SHIPPED_PERSONAS: dict[str, Persona] = {
    "male_1": Persona("te+m1", 65, 175),
    "male_2": Persona("te+m3", 25, 140),
    "female_1": Persona("te+f2", 70, 165),
    "female_2": Persona("te+f4", 55, 155),
}
"""The personas the shipped demo model and recognizer (models/checkpoints) learned from: what
their tests speak to them until they are retrained on PERSONAS."""


@dataclass(frozen=True)
class Separation:
    """How one voice stands apart from the others, by cosine similarity of embeddings."""

    voice: str
    own: float
    """Mean similarity of each of its clips to the centroid of its other clips."""
    nearest: str
    """The other voice whose centroid its clips come closest to."""
    nearest_similarity: float
    """Mean similarity of its clips to that centroid."""
    accuracy: float
    """Share of its clips closer to their own (leave-one-out) centroid than to any other."""

    @property
    def margin(self) -> float:
        return self.own - self.nearest_similarity


def _centroid(embeddings: Tensor) -> Tensor:
    return torch.nn.functional.normalize(embeddings.mean(0), dim=0)


def separation(embeddings: dict[str, Tensor]) -> list[Separation]:
    """Each voice's separation from (clips, dim) L2-normalised embeddings per voice (at least
    two voices, two clips each)."""
    if len(embeddings) < 2 or min(len(e) for e in embeddings.values()) < 2:
        raise ValueError("separation needs at least two voices with two clips each")
    centroids = {voice: _centroid(e) for voice, e in embeddings.items()}
    result = []
    for voice, clips in embeddings.items():
        own = torch.stack(
            [
                clips[i] @ _centroid(torch.cat([clips[:i], clips[i + 1 :]]))
                for i in range(len(clips))
            ]
        )
        others = {o: clips @ c for o, c in centroids.items() if o != voice}
        nearest = max(others, key=lambda o: float(others[o].mean()))
        closest_other = torch.stack(list(others.values())).max(0).values
        result.append(
            Separation(
                voice=voice,
                own=float(own.mean()),
                nearest=nearest,
                nearest_similarity=float(others[nearest].mean()),
                accuracy=float((own > closest_other).float().mean()),
            )
        )
    return result
