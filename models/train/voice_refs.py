"""Reference voices for zero-shot training: the speaker embedding of every answer clip.

An answer conditioned zero-shot is conditioned, as in a call, on the embedding of one OTHER
clip of its voice (a reference the caller would give), drawn anew each time the example is
used: the decoder's zero-shot projection learns to map any clip of a voice to that voice, not
to copy the one clip it answers with. Answers by voices the model has no name for (the voice
bank) are always conditioned so; answers by the named personas with probability
`zero_shot_share`, so that the projection also learns where the named voices lie.

Embeddings (GE2E, models/speaker.py) of each clip's voiced speech, as a call embeds a caller's
clip (`models.speech.clip.embedding_speech`), are computed once per manifest and cached beside
the codes (`VOICES_FILE`), keyed by entry key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from models.data.manifest import Entry

log = logging.getLogger(__name__)

VOICES_FILE = "voice_embeddings.pt"


@dataclass(frozen=True)
class VoicePool:
    """The embeddings (clips, dim) of one voice's answer clips; an example knows its own row."""

    embeddings: Tensor

    def draw(self, own: int, generator: torch.Generator | None) -> Tensor:
        """A clip's embedding other than row `own` (the own clip when it is the only one):
        random with a generator, the first other row without one (validation)."""
        count = len(self.embeddings)
        if count == 1:
            return self.embeddings[0]
        if generator is None:
            pick = 1 if own == 0 else 0
        else:
            pick = int(torch.randint(count - 1, (), generator=generator))
            pick += pick >= own
        return self.embeddings[pick]


def answer_embeddings(entries: list[Entry], root: Path, cache: Path) -> dict[str, Tensor]:
    """Speaker embedding of every agent entry, by key (computed once, cached in `cache`)."""
    agents = [e for e in entries if e.dialogue is not None and e.dialogue.role == "agent"]
    stored: dict[str, Tensor] = torch.load(cache) if cache.exists() else {}
    missing = [e for e in agents if e.key not in stored]
    if missing:
        # Imported only here: a run whose cache is complete trains without the audio stack
        # (a GPU machine given the manifest, the codec and the caches).
        from models.speaker import SpeakerEncoder
        from models.speech.audio import read_audio
        from models.speech.clip import embedding_speech

        log.info("speaker embeddings of %d answers", len(missing))
        encoder = SpeakerEncoder()
        for entry in missing:
            pcm = embedding_speech(read_audio(entry.path(root), 16_000))
            stored[entry.key] = encoder.embed(pcm).clone()
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(stored, cache)
    return {e.key: stored[e.key] for e in agents}


def voice_pools(
    entries: list[Entry], embeddings: dict[str, Tensor]
) -> tuple[dict[str, VoicePool], dict[str, int]]:
    """Each speaker's pool of answer embeddings (in key order), and each answer's row in it."""
    by_speaker: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: e.key):
        if entry.key in embeddings:
            by_speaker.setdefault(entry.speaker, []).append(entry)
    pools, rows = {}, {}
    for speaker, group in by_speaker.items():
        pools[speaker] = VoicePool(torch.stack([embeddings[e.key] for e in group]))
        rows |= {e.key: i for i, e in enumerate(group)}
    return pools, rows
