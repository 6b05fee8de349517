"""Zero-shot voices the model never trained on (`eval s2s`, held-out voices).

The corpus's voice bank holds some voices out entirely (models/data/voices.py): their answers
are only in validation and test. Each held-out voice of the split gives one reference clip
(its first answer by key), as a caller would; the model answers `turns_per_voice` user turns
of the split conditioned on that clip's speaker embedding (the encoder hearing as the default
named voice, as in a call). An answer counts when its embedding is more similar to its own
reference than to every other held-out voice's reference (chance: one in the number of
voices). For comparison, the same verdict on the voices' other real clips: how far the
speaker encoder tells these voices apart at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.codec.quiet import QuietCodes
from models.controls import DEFAULT_SPEAKER
from models.data.manifest import Entry
from models.loading import Models
from models.s2s.sampling import Sampling
from models.speaker import SpeakerEncoder
from models.speech.audio import read_audio
from models.speech.clip import embedding_speech

MIN_ANSWER_STEPS = 50


def held_out_voices(
    entries: list[Entry], split: str, named: tuple[str, ...]
) -> dict[str, list[Entry]]:
    """The answers of each voice of `split` that the model has no name for, by key."""
    voices: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: e.key):
        role = entry.dialogue.role if entry.dialogue is not None else None
        if role == "agent" and entry.split == split and entry.speaker not in named:
            voices.setdefault(entry.speaker, []).append(entry)
    return {voice: answers for voice, answers in voices.items() if len(answers) >= 2}


def _closest(embedding: Tensor, references: dict[str, Tensor]) -> str:
    return max(references, key=lambda voice: float(embedding @ references[voice]))


def evaluate_cloning(
    models: Models,
    entries: list[Entry],
    turns: list[Entry],
    root: Path,
    split: str,
    sampling: Sampling,
    generator: torch.Generator,
    speaker_encoder: SpeakerEncoder,
    turns_per_voice: int = 4,
    quiet: QuietCodes | None = None,
) -> dict[str, Any]:
    """Held-out voice figures of a split (empty when it has fewer than two such voices)."""
    from models.eval.s2s import generate_answers

    config = models.config
    voices = held_out_voices(entries, split, config.speakers)
    if len(voices) < 2 or not turns:
        return {}
    rate = config.codec.sample_rate

    def embed(entry: Entry) -> Tensor:
        return speaker_encoder.embed(embedding_speech(read_audio(entry.path(root), rate)))

    references = {voice: embed(answers[0]) for voice, answers in voices.items()}
    real = [_closest(embed(e), references) == v for v, a in voices.items() for e in a[1:]]
    device = next(models.encoder.parameters()).device
    named = torch.tensor([config.speakers.index(DEFAULT_SPEAKER)], device=device)
    neutral = torch.tensor([config.emotions.index("NEUTRAL")], device=device)
    hits: dict[str, list[bool]] = {voice: [] for voice in voices}
    for v, (voice, reference) in enumerate(references.items()):
        for k in range(turns_per_voice):
            user = turns[(v * turns_per_voice + k) % len(turns)]
            wav = generate_answers(
                models,
                read_audio(user.path(root), rate),
                named,
                neutral,
                MIN_ANSWER_STEPS * 4,
                sampling,
                generator,
                quiet=quiet,
                voices=reference[None].to(device),
            ).wavs[0]
            hit = (
                len(wav) > 0
                and np.any(wav)
                and _closest(speaker_encoder.embed(wav), references) == voice
            )
            hits[voice].append(bool(hit))
    every = [h for voice_hits in hits.values() for h in voice_hits]
    return {
        "held_out_voices": len(voices),
        "held_out_voice_accuracy": float(np.mean(every)),
        "held_out_voice_chance": 1 / len(voices),
        "held_out_voice_accuracy_by_voice": {v: float(np.mean(h)) for v, h in hits.items()},
        "held_out_real_clip_accuracy": float(np.mean(real)) if real else None,
    }
