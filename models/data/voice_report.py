"""`telugu-s2s data voices`: how far apart the speaker encoder holds the corpus's voices.

Each voice speaks the same answers of the text bank, the emotions rotating (their prosody moves
pitch, range and rate, as in the corpus); the GE2E encoder embeds every clip, and
`models.data.voices.separation` gives each voice's own similarity, its nearest other voice and
the margin between the two.
"""

from __future__ import annotations

import numpy as np
import torch

from models.controls import EMOTIONS
from models.data.bank import INTENTS
from models.data.synth import render_answer
from models.data.voices import Persona, Separation, separation
from models.speaker import SpeakerEncoder

CLIPS = 18
"""Clips per voice: every emotion twice, on different answers."""


def voice_embeddings(
    voices: dict[str, Persona], encoder: SpeakerEncoder, clips: int = CLIPS, seed: int = 0
) -> dict[str, torch.Tensor]:
    """(clips, dim) embeddings of each voice speaking the same `clips` answers."""
    answers = [INTENTS[(7 * i) % len(INTENTS)].answer for i in range(clips)]
    out = {}
    for name, persona in voices.items():
        rng = np.random.default_rng(seed)
        out[name] = torch.stack(
            [
                encoder.embed(render_answer(text, persona, EMOTIONS[i % len(EMOTIONS)], rng)[1])
                for i, text in enumerate(answers)
            ]
        )
    return out


def voice_report(voices: dict[str, Persona], clips: int = CLIPS) -> list[Separation]:
    """The separation of `voices`, rendered and embedded here."""
    return separation(voice_embeddings(voices, SpeakerEncoder(), clips))


def format_report(rows: list[Separation]) -> str:
    lines = [f"{'voice':14} {'own':>6} {'nearest':>10} {'its sim':>8} {'margin':>7} {'apart':>6}"]
    for r in rows:
        lines.append(
            f"{r.voice:14} {r.own:6.3f} {r.nearest:>10} {r.nearest_similarity:8.3f} "
            f"{r.margin:7.3f} {r.accuracy:6.1%}"
        )
    return "\n".join(lines)
