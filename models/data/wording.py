"""Which user wordings are held out for validation and test, chosen so that a held-out wording
shares content words with the train wordings of its intent (docs/data.md).

A content word is a word of the normalised text (models/data/text.py) that is not a hesitation
and not common: said in the wordings of at most COMMON_INTENTS intents of the bank. A held-out
wording that shares none of them with training ("నమస్కారం!" against "నమస్తే", "హలో", "Hi")
asks for knowledge of Telugu that the corpus cannot give; one that shares a content word
("నమస్తే అండీ, ..." against "Hi అండీ, నమస్తే.") tests whether a model listens.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache

from models.data.bank import HESITATIONS, INTENTS
from models.data.slots import SLOT_INTENTS
from models.data.stats import similarity, trigrams
from models.data.text import normalise

COMMON_INTENTS = 3
"""A word said in the wordings of more intents than this is common, not a content word."""
PLACEHOLDER = "{value}"
"""Where a slot template's value goes; not a word."""


def digest(text: str) -> int:
    """A stable 64-bit hash of `text` (the same on every machine and run)."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def ranked_splits(ranked: list[str], test: int, validation: int) -> dict[str, str]:
    """The split of each of `ranked`: the first `test` to test, the next `validation` to
    validation, the rest to train."""
    return {
        item: "test" if i < test else "validation" if i < test + validation else "train"
        for i, item in enumerate(ranked)
    }


def words(text: str) -> frozenset[str]:
    """The words of the normalised text, a slot template's placeholder left out."""
    return frozenset(normalise(text.replace(PLACEHOLDER, " ")).split())


@cache
def common_words() -> frozenset[str]:
    """The hesitations' words and the words said in the wordings of more than COMMON_INTENTS
    intents (bank paraphrases and slot templates)."""
    wordings = [texts for _, texts in _all_wordings()]
    spread = Counter(w for texts in wordings for w in set().union(*map(words, texts)))
    hesitations = set().union(*map(words, HESITATIONS))
    return frozenset(hesitations | {w for w, n in spread.items() if n > COMMON_INTENTS})


@cache
def content_words(text: str) -> frozenset[str]:
    """The words of `text` that are not common (`common_words`)."""
    return words(text) - common_words()


def _shared(text: str, others: Iterable[str]) -> int:
    """How many content words of `text` the `others` say."""
    said = set().union(*map(content_words, others))
    return len(content_words(text) & said)


@cache
def _grams(text: str) -> frozenset[str]:
    return trigrams(text.replace(PLACEHOLDER, " "))


def _nearest(text: str, others: Iterable[str]) -> float:
    """The highest trigram similarity (models/data/stats.py) of `text` to one of `others`."""
    return max((similarity(_grams(text), _grams(other)) for other in others), default=0.0)


@cache
def _nearest_other(text: str, others: tuple[str, ...]) -> float:
    return _nearest(text, others)


def hold_out_wordings(items: Sequence[str], others: tuple[str, ...] = ()) -> dict[str, str]:
    """Split of each item: with three or more, about 10 % (at least one) each to test and
    validation, the rest to train.

    Held-out items are picked one by one (test first), each the one that leaves the held-out
    items best off: first the most of them sharing a content word with a train item, then
    the most of them more alike (character trigrams) to a train item than to any of `others`
    (the other intents' wordings), then the largest sum of those margins; ties are broken by
    hash, so the split is the same whatever the seed."""
    held_count = max(1, round(len(items) * 0.1)) if len(items) >= 3 else 0
    held: list[str] = []
    for _ in range(2 * held_count):

        def score(candidate: str, held: list[str] = held) -> tuple[int, int, float]:
            out = [*held, candidate]
            train = [item for item in items if item not in out]
            margins = [_nearest(item, train) - _nearest_other(item, others) for item in out]
            sharing = sum(_shared(item, train) > 0 for item in out)
            return sharing, sum(m > 0 for m in margins), sum(margins)

        held.append(max(sorted(set(items) - set(held), key=digest), key=score))
    return {
        item: "test" if item in held[:held_count] else "validation" if item in held else "train"
        for item in items
    }


@cache
def wording_splits(intent: str, wordings: tuple[str, ...]) -> dict[str, str]:
    """`hold_out_wordings` of an intent's wordings (some or all of its paraphrases or slot
    templates), against every wording of the other intents of the bank and of the slot
    intents."""
    others = tuple(text for name, texts in _all_wordings() if name != intent for text in texts)
    return hold_out_wordings(wordings, others)


def _all_wordings() -> list[tuple[str, tuple[str, ...]]]:
    return [(i.name, i.paraphrases) for i in INTENTS] + [
        (i.name, i.templates) for i in SLOT_INTENTS
    ]
