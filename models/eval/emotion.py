"""A small emotion classifier, to check that generated answers carry the requested emotion.

Features of an utterance: per-band mean, standard deviation and mean absolute frame-to-frame
change of the 40-band log-mel spectrogram (models.speaker's, 10 ms frames) over its voiced
frames (within 40 dB of the loudest), plus the mean, spread and range of the frame energy, the
voiced fraction and the duration. A one-hidden-layer MLP on the standardised features is trained
full-batch with AdamW on the corpus's agent answers of the train split; its accuracy on the
test split's answers says how far its verdict on generated answers can be trusted.

`render` (optional, audio -> audio) is applied to every answer before its features are taken:
`eval s2s` passes its codec's round trip, so that the classifier learns from answers as the
codec renders them, the way generated answers reach it, and does not read codec artifacts as
emotion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.controls import EMOTIONS
from models.data.manifest import Entry, read_manifest
from models.speaker import SAMPLE_RATE, mel_spectrogram
from models.speech.audio import read_audio

log = logging.getLogger(__name__)

VOICED_DB = 40.0
"""Frames within this many dB of the loudest frame are voiced."""
HIDDEN = 64
EPOCHS = 400
Render = Callable[[np.ndarray], np.ndarray]
"""What happens to an answer before the classifier hears it (e.g. a codec round trip)."""


def features(wav: np.ndarray) -> Tensor:
    """(125,) statistics of a 16 kHz utterance's log-mel spectrogram (see the module doc)."""
    wav = torch.as_tensor(wav, dtype=torch.float32)
    if wav.numel() < 400:
        wav = torch.nn.functional.pad(wav, (0, 400 - wav.numel()))
    mel = mel_spectrogram(wav).clamp(min=1e-10).log10() * 10  # (frames, 40) in dB
    energy = mel.max(dim=1).values
    voiced = energy > energy.max() - VOICED_DB
    frames = mel[voiced]
    delta = frames.diff(dim=0).abs().mean(dim=0) if len(frames) > 1 else torch.zeros(40)
    loud = energy[voiced]
    summary = torch.stack(
        (
            loud.mean(),
            loud.std() if len(loud) > 1 else torch.tensor(0.0),
            loud.max() - loud.min(),
            voiced.float().mean(),
            torch.tensor(len(wav) / SAMPLE_RATE),
        )
    )
    std = frames.std(dim=0) if len(frames) > 1 else torch.zeros(40)
    return torch.cat((frames.mean(dim=0), std, delta, summary))


class EmotionClassifier(nn.Module):
    """Standardised features -> MLP -> one logit per emotion of `emotions`."""

    def __init__(self, n_features: int, emotions: Sequence[str] = EMOTIONS) -> None:
        super().__init__()
        self.emotions = tuple(emotions)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, HIDDEN),
            nn.GELU(),
            nn.Dropout(0.2),
            nn.Linear(HIDDEN, len(emotions)),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(batch, n_features) -> logits (batch, emotions)."""
        return self.net((x - self.mean) / self.std)

    @torch.no_grad()
    def predict(self, wavs: Sequence[np.ndarray]) -> list[str]:
        """The likeliest emotion of each 16 kHz utterance."""
        self.eval()
        logits = self(torch.stack([features(w) for w in wavs]))
        return [self.emotions[i] for i in logits.argmax(dim=1).tolist()]


def fit_emotion_classifier(
    wavs: Sequence[np.ndarray],
    labels: Sequence[str],
    emotions: Sequence[str] = EMOTIONS,
    epochs: int = EPOCHS,
    seed: int = 0,
) -> EmotionClassifier:
    """Train a classifier on 16 kHz utterances and their emotion names."""
    if not wavs or len(wavs) != len(labels):
        raise ValueError(f"need as many labels as utterances (got {len(wavs)}, {len(labels)})")
    unknown = sorted(set(labels) - set(emotions))
    if unknown:
        raise ValueError(f"unknown emotions {unknown}; known: {', '.join(emotions)}")
    x = torch.stack([features(w) for w in wavs])
    y = torch.tensor([list(emotions).index(label) for label in labels])
    torch.manual_seed(seed)
    model = EmotionClassifier(x.shape[1], emotions)
    model.mean.copy_(x.mean(dim=0))
    model.std.copy_(x.std(dim=0).clamp(min=1e-3) if len(x) > 1 else torch.ones(x.shape[1]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    model.train()
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def agent_answers(manifest: str | Path, split: str) -> list[Entry]:
    """The agent answers of a split (every entry of it when the manifest has no dialogues)."""
    entries = read_manifest(manifest, split)
    answers = [e for e in entries if e.dialogue is not None and e.dialogue.role == "agent"]
    return answers if any(e.dialogue for e in entries) else entries


def _load(entries: list[Entry], root: Path, render: Render | None = None) -> list[np.ndarray]:
    wavs = [read_audio(e.path(root), SAMPLE_RATE) for e in entries]
    return wavs if render is None else [render(w) for w in wavs]


def accuracy(
    classifier: EmotionClassifier, wavs: Sequence[np.ndarray], labels: Sequence[str]
) -> float:
    """Fraction of utterances whose predicted emotion is their label."""
    if not wavs:
        raise ValueError("no utterances to score")
    predicted = classifier.predict(wavs)
    return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(wavs)


def train_emotion_classifier(
    manifest: str | Path,
    split: str = "train",
    max_answers: int | None = 2_000,
    seed: int = 0,
    render: Render | None = None,
) -> EmotionClassifier:
    """A classifier trained on (at most `max_answers`, chosen at random) agent answers of a
    split of the manifest, each passed through `render` when given."""
    entries = agent_answers(manifest, split)
    if not entries:
        raise ValueError(f"{manifest} has no {split} answers to train the emotion classifier on")
    if max_answers is not None and len(entries) > max_answers:
        chosen = np.random.default_rng(seed).choice(len(entries), max_answers, replace=False)
        entries = [entries[i] for i in sorted(chosen)]
    wavs = _load(entries, Path(manifest).parent, render)
    return fit_emotion_classifier(wavs, [e.emotion for e in entries], seed=seed)


def evaluate_emotion_classifier(
    classifier: EmotionClassifier,
    manifest: str | Path,
    split: str = "test",
    render: Render | None = None,
) -> dict[str, Any]:
    """The classifier's accuracy on a split's agent answers (each passed through `render` when
    given), with the chance level of always answering the split's most common emotion."""
    entries = agent_answers(manifest, split)
    if not entries:
        return {"answers": 0, "accuracy": None, "majority": None}
    labels = [e.emotion for e in entries]
    score = accuracy(classifier, _load(entries, Path(manifest).parent, render), labels)
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    return {"answers": len(entries), "accuracy": score, "majority": majority}
