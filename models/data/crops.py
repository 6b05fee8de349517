"""Random fixed-length crops of manifest audio, for codec training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from models.data.manifest import Entry
from models.speech.audio import MODEL_RATE, read_audio


def random_crops(
    entries: Sequence[Entry],
    root: str | Path,
    seconds: float,
    count: int,
    rng: np.random.Generator,
    rate: int = MODEL_RATE,
) -> Iterator[np.ndarray]:
    """`count` float32 crops of `seconds` at `rate`, each from a file drawn in proportion to
    its duration (so every second of audio is equally likely); shorter files are zero-padded.
    `root` is the manifest's folder."""
    size = round(seconds * rate)
    durations = np.array([e.duration for e in entries])
    for _ in range(count):
        entry = entries[int(rng.choice(len(entries), p=durations / durations.sum()))]
        pcm = read_audio(entry.path(Path(root)), rate)
        if len(pcm) <= size:
            yield np.pad(pcm, (0, size - len(pcm)))
        else:
            start = int(rng.integers(len(pcm) - size + 1))
            yield pcm[start : start + size]
