"""What a manifest holds: files and hours by split, role, speaker and emotion; for corpora
whose user turns carry `extra.intent`, how much a held-out turn's wording shares with training;
for slot intents (`extra.slot`, `extra.value`), the values of each split and that held-out
values are never in train.

The wording figure bounds what any model trained on the manifest can learn about held-out
turns: each validation or test user turn is given the intent of the train user turn whose
text is most alike (Jaccard similarity of character trigrams, punctuation and case ignored).
A model that understood exactly the words it heard in training, and nothing more, would do
about this well; well below 100 % means the held-out wording is mostly new.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from models.data.manifest import SPLITS, Entry
from models.data.text import normalise


def trigrams(text: str) -> frozenset[str]:
    """The character trigrams of the normalised text (the text itself when shorter)."""
    text = normalise(text)
    return frozenset(text[i : i + 3] for i in range(max(1, len(text) - 2)))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
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
                hits += max(train, key=lambda t: similarity(grams, t[0]))[1] == intent
            result[split] = hits / len(held_out)
    return result


def slot_coverage(entries: list[Entry]) -> dict[str, Any]:
    """For entries naming an `extra.slot` and `extra.value` (slot intents): the number of
    distinct values of each slot type in each split, and for validation and test how many of
    their values are also in train (0 when the value split holds). Empty when none does."""
    values: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in entries:
        if "slot" in e.extra and "value" in e.extra:
            values[e.split].add((str(e.extra["slot"]), str(e.extra["value"])))
    if not values:
        return {}
    return {
        "values": {
            split: dict(sorted(Counter(slot for slot, _ in values[split]).items()))
            for split in SPLITS
        },
        "in_train": {split: len(values[split] & values["train"]) for split in SPLITS[1:]},
    }


def manifest_stats(entries: list[Entry]) -> dict[str, Any]:
    """Counts and hours of a manifest's entries, by split, role, speaker and emotion, with the
    number of intents, `nearest_intent_accuracy` and `slot_coverage`."""
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
        "slots": slot_coverage(entries),
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
    slots = stats.get("slots")
    if slots:
        for split, counts in slots["values"].items():
            parts = ", ".join(f"{slot} {n}" for slot, n in counts.items())
            lines.append(f"{split} slot values: {parts or 'none'}")
        overlap = ", ".join(f"{split} {n}" for split, n in slots["in_train"].items())
        lines.append(f"held-out slot values also in train: {overlap}")
    return "\n".join(lines)
