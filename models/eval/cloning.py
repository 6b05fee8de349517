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

from models.codec.quiet import QuietCodes
from models.controls import DEFAULT_SPEAKER
from models.data.manifest import Entry
from models.loading import Models
from models.s2s.sampling import Sampling
from models.speaker import SpeakerEncoder
from models.speech.audio import read_audio
from models.speech.clip import embedding_speech

MAX_ANSWER_STEPS = 200
"""Decoder steps of a held-out voice's answer at most: 4 s, enough speech to embed."""


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
    from models.eval.s2s import closest_voice, generate_answers  # s2s.py imports this module

    config = models.config
    voices = held_out_voices(entries, split, config.speakers)
    if len(voices) < 2 or not turns:
        return {}
    rate = config.codec.sample_rate

    def audio(entry: Entry) -> np.ndarray:
        return read_audio(entry.path(root), rate)

    references = {
        voice: speaker_encoder.embed(embedding_speech(audio(answers[0])))
        for voice, answers in voices.items()
    }
    real = [
        closest_voice(speaker_encoder, audio(e), references) == v
        for v, answers in voices.items()
        for e in answers[1:]
    ]
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
                MAX_ANSWER_STEPS,
                sampling,
                generator,
                quiet=quiet,
                voices=reference[None].to(device),
            ).wavs[0]
            hits[voice].append(closest_voice(speaker_encoder, wav, references) == voice)
    every = [h for voice_hits in hits.values() for h in voice_hits]
    return {
        "held_out_voices": len(voices),
        "held_out_voice_accuracy": float(np.mean(every)),
        "held_out_voice_chance": 1 / len(voices),
        "held_out_voice_accuracy_by_voice": {v: float(np.mean(h)) for v, h in hits.items()},
        "held_out_real_clip_accuracy": float(np.mean(real)) if real else None,
    }
