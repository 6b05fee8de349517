"""The corpus's synthetic voices, and how far apart a speaker encoder holds them.

The four personas (models.controls.SPEAKERS) are espeak-ng voice variants, each with its own
pitch and rate, chosen so that the GE2E speaker encoder (models/speaker.py) keeps them apart:
`telugu-s2s data voices` renders each on the same answers in every emotion and reports, per
voice, how alike its own clips are and how close the nearest other voice comes (the margin).
The variants were picked by that measurement from espeak-ng's 101 variants at three pitches
(docs/data.md); the earlier personas (te+m1, te+m3, te+f2, te+f4) are 0.09-0.11 apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from models.data.wording import digest, ranked_splits


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


BANK_VARIANTS: tuple[str, ...] = (
    "Alex", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo",
    "Jacky", "Lee", "Mario", "Michael", "Mike", "Nguyen", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "adam", "anika", "announcer", "antonio", "aunty", "belinda", "benjamin",
    "boris", "caleb", "david", "ed", "edward", "edward2", "f1", "f2", "f3", "f4", "f5", "fast",
    "gustave", "iven", "iven2", "iven3", "iven4", "john", "linda", "m2", "m3", "m4", "m5", "m6",
    "m7", "m8", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro",
    "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "travis", "victor", "zac",
)  # fmt: skip
"""espeak-ng variants of the voice bank: every variant that sounds like a person (the robotic,
whispering, croaking and klatt ones left out), the personas' own variants left out."""

BANK_PITCH = (25, 75)
BANK_SPEED = (135, 185)
"""Ranges the bank voices' pitch (-p) and rate (-s, wpm) are drawn from, by name."""

BANK_HELD_OUT = {"test": 10, "validation": 5}
"""Bank voices held out entirely (neither their clips nor their embeddings train anything)."""


def voice_bank() -> dict[str, Persona]:
    """Many more voices than the personas, for zero-shot voice cloning: one per variant of
    BANK_VARIANTS, its pitch and rate drawn from its name (the same on every machine)."""
    bank = {}
    for variant in BANK_VARIANTS:
        name = f"bank_{variant.lower()}"
        low, high = BANK_PITCH
        slow, fast = BANK_SPEED
        pitch = low + digest(f"{name}-pitch") % (high - low + 1)
        speed = slow + digest(f"{name}-speed") % (fast - slow + 1)
        bank[name] = Persona(f"te+{variant}", pitch, speed)
    return bank


def bank_splits(names: list[str]) -> dict[str, str]:
    """The split of each bank voice: BANK_HELD_OUT of them (by hash) to test and validation,
    the rest to train."""
    ranked = sorted(names, key=lambda name: digest(f"{name}-split"))
    return ranked_splits(ranked, BANK_HELD_OUT["test"], BANK_HELD_OUT["validation"])


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
