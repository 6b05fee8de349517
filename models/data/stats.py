"""What a manifest holds: files and hours by split, role, speaker and emotion, and, for corpora
whose user turns carry `extra.intent`, how much a held-out turn's wording shares with training.

The wording figure bounds what any model trained on the manifest can learn about held-out
turns: each validation or test user turn is given the intent of the train user turn whose
text is most alike (Jaccard similarity of character trigrams, punctuation and case ignored).
A model that understood exactly the words it heard in training, and nothing more, would do
about this well; well below 100 % means the held-out wording is mostly new.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from models.data.manifest import Entry
from models.data.text import normalise


def trigrams(text: str) -> frozenset[str]:
    """The character trigrams of the normalised text (the text itself when shorter)."""
    text = normalise(text)
    return frozenset(text[i : i + 3] for i in range(max(1, len(text) - 2)))


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def nearest_intent_accuracy(entries: list[Entry]) -> dict[str, float]:
    """For validation and test: the share of distinct user texts whose most alike train user
    text (`trigrams`) is of the same intent. Empty when no user turn names an intent."""
    texts: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in entries:
        if e.dialogue is not None and e.dialogue.role == "user" and "intent" in e.extra:
            texts[e.split].add((normalise(e.text), str(e.extra["intent"])))
    train = [(trigrams(text), intent) for text, intent in sorted(texts["train"])]
    if not train:
        return {}
    result = {}
    for split in ("validation", "test"):
        held_out = sorted(texts[split])
        if held_out:
            hits = 0
            for text, intent in held_out:
                grams = trigrams(text)
                hits += max(train, key=lambda t: _similarity(grams, t[0]))[1] == intent
            result[split] = hits / len(held_out)
    return result


def manifest_stats(entries: list[Entry]) -> dict[str, Any]:
    """Counts and hours of a manifest's entries, by split, role, speaker and emotion, with the
    number of intents and `nearest_intent_accuracy`."""
    by: dict[str, Counter[str]] = {k: Counter() for k in ("split", "role", "speaker", "emotion")}
    hours: dict[str, Counter[str]] = {k: Counter() for k in by}
    for e in entries:
        role = e.dialogue.role if e.dialogue is not None else "-"
        for kind, value in (
            ("split", e.split),
            ("role", role),
            ("speaker", e.speaker),
            ("emotion", e.emotion),
        ):
            by[kind][value] += 1
            hours[kind][value] += e.duration / 3600
    intents = {str(e.extra["intent"]) for e in entries if "intent" in e.extra}
    return {
        "files": len(entries),
        "hours": sum(e.duration for e in entries) / 3600,
        **{
            kind: {
                name: {"files": count, "hours": hours[kind][name]}
                for name, count in sorted(by[kind].items())
            }
            for kind in by
        },
        "intents": len(intents),
        "nearest_intent_accuracy": nearest_intent_accuracy(entries),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """`manifest_stats` as a few lines of text."""
    lines = [f"{stats['files']} files, {stats['hours']:.2f} h"]
    for kind in ("split", "role", "speaker", "emotion"):
        parts = (f"{name} {v['files']} ({v['hours']:.2f} h)" for name, v in stats[kind].items())
        lines.append(f"{kind}: " + ", ".join(parts))
    if stats["intents"]:
        lines.append(f"intents: {stats['intents']}")
    for split, accuracy in stats["nearest_intent_accuracy"].items():
        lines.append(
            f"{split} user turns whose most alike train wording has their intent: "
            f"{100 * accuracy:.1f} %"
        )
    return "\n".join(lines)
