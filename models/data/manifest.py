"""The dataset manifest: one JSON object per line, one line per audio file (docs/data.md).

    {"audio": "wav/u_0001.wav", "duration": 2.41, "text": "నమస్కారం", "speaker": "female_1",
     "emotion": "NEUTRAL", "split": "train",
     "dialogue": {"id": "greeting-003", "role": "user", "pair": "greeting-003-agent"}}

`audio` is relative to the manifest's folder (or absolute). `dialogue` is optional: a user
turn and the agent answer it pairs with share an `id` scheme; `pair` names the other entry's
`key`. `key` (optional, defaults to the audio path) identifies an entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Dialogue:
    id: str
    role: str
    """"user" or "agent"."""
    pair: str | None = None
    """The key of the entry this one answers or is answered by."""


@dataclass(frozen=True)
class Entry:
    audio: str
    duration: float
    text: str
    speaker: str
    emotion: str = "NEUTRAL"
    split: str = "train"
    dialogue: Dialogue | None = None
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else a dataset knows (intent, original ids)."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {self.split!r}")
        if self.duration <= 0:
            raise ValueError(f"duration must be positive: {self.audio}")
        if not self.key:
            object.__setattr__(self, "key", self.audio)
        if self.dialogue is not None and self.dialogue.role not in ("user", "agent"):
            raise ValueError(f"dialogue role must be user or agent, not {self.dialogue.role!r}")

    def path(self, root: Path) -> Path:
        """The audio file, resolved against the manifest's folder."""
        audio = Path(self.audio)
        return audio if audio.is_absolute() else root / audio

    def to_json(self) -> str:
        data = asdict(self)
        if self.dialogue is None:
            del data["dialogue"]
        if not self.extra:
            del data["extra"]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        known = {"audio", "duration", "text", "speaker", "emotion", "split", "dialogue", "key"}
        dialogue = data.get("dialogue")
        return cls(
            audio=str(data["audio"]),
            duration=float(data["duration"]),
            text=str(data["text"]),
            speaker=str(data["speaker"]),
            emotion=str(data.get("emotion", "NEUTRAL")),
            split=str(data.get("split", "train")),
            dialogue=Dialogue(**dialogue) if dialogue else None,
            key=str(data.get("key", "")),
            extra={
                **data.get("extra", {}),
                **{k: v for k, v in data.items() if k not in known and k != "extra"},
            },
        )


def write_manifest(path: str | Path, entries: Iterable[Entry]) -> int:
    """Write entries as JSONL; returns how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(entry.to_json() + "\n")
            count += 1
    return count


def read_manifest(path: str | Path, split: str | None = None) -> list[Entry]:
    """All entries (of one split when given); a bad line raises ValueError naming it."""
    return list(iter_manifest(path, split))


def iter_manifest(path: str | Path, split: str | None = None) -> Iterator[Entry]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = Entry.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: bad manifest line: {exc}") from None
            if split is None or entry.split == split:
                yield entry


def dialogue_pairs(entries: list[Entry]) -> list[tuple[Entry, Entry]]:
    """(user turn, agent answer) pairs linked by dialogue.pair."""
    by_key = {e.key: e for e in entries}
    pairs = []
    for entry in entries:
        d = entry.dialogue
        if d and d.role == "user" and d.pair and d.pair in by_key:
            pairs.append((entry, by_key[d.pair]))
    return pairs


def intent_pairs(entries: list[Entry]) -> list[tuple[Entry, Entry]]:
    """(user turn, agent answer) pairs of every user turn with every answer of the same
    `extra["intent"]`, `extra["value"]` (slot intents: the answer says the turn's value; absent
    otherwise) and split: many answers per turn, told apart by their speaker and emotion, which
    condition the model. Entries without an intent are left out."""

    def group(entry: Entry) -> tuple[str, str | None, str]:
        return entry.extra["intent"], entry.extra.get("value"), entry.split

    answers: dict[tuple[str, str | None, str], list[Entry]] = {}
    for entry in entries:
        if entry.dialogue and entry.dialogue.role == "agent" and "intent" in entry.extra:
            answers.setdefault(group(entry), []).append(entry)
    return [
        (entry, answer)
        for entry in entries
        if entry.dialogue and entry.dialogue.role == "user" and "intent" in entry.extra
        for answer in answers.get(group(entry), [])
    ]
