"""Slot intents of the synthetic corpus: turns whose value (a name, a city, a number, a time,
an amount) must be heard and said back ("నా పేరు రాము" -> "రాము గారు, నమస్కారం!").

Each slot type has a list of values written as espeak-ng speaks them (numbers as Telugu
words). `value_splits` divides each list 70/15/15 into train, validation and test with a fixed
seed, so a validation or test value is never heard or said in training. Templates are held out
like the bank's paraphrases (models/data/wording.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

SPLIT_SEED = 13
"""Seed of the value split: fixed, so the split is the same whatever the corpus seed."""
SPLIT_SHARES = (0.7, 0.15, 0.15)
"""Train, validation and test shares of each slot type's values."""

_HOURS = (
    ("పొద్దున", ("ఐదు", "ఆరు", "ఏడు", "ఎనిమిది", "తొమ్మిది", "పది", "పదకొండు")),
    ("సాయంత్రం", ("నాలుగు", "ఐదు", "ఆరు", "ఏడు")),
    ("రాత్రి", ("ఎనిమిది", "తొమ్మిది", "పది", "పదకొండు")),
)
_HUNDREDS = ("వంద", "రెండు వందల", "మూడు వందల", "నాలుగు వందల", "ఐదు వందల", "ఆరు వందల")
_HUNDREDS += ("ఏడు వందల", "ఎనిమిది వందల", "తొమ్మిది వందల")
_THOUSANDS = ("వెయ్యి", "రెండు వేల", "మూడు వేల", "ఐదు వేల", "పది వేల", "ఇరవై వేల")

VALUES: dict[str, tuple[str, ...]] = {
    "name": (
        "రాము",
        "సీత",
        "లక్ష్మి",
        "కృష్ణ",
        "రవి",
        "సురేష్",
        "రమేష్",
        "శ్రీనివాస్",
        "అనిల్",
        "సునీత",
        "కవిత",
        "పద్మ",
        "వెంకటేష్",
        "మహేష్",
        "ప్రసాద్",
        "రాధ",
        "శ్రావణి",
        "దివ్య",
        "కిరణ్",
        "నాగరాజు",
        "సాయి",
        "హరిత",
        "గోపాల్",
        "విజయ్",
        "అరుణ",
        "మధు",
        "సంధ్య",
        "రాజేష్",
        "భార్గవి",
        "చైతన్య",
    ),
    "city": (
        "హైదరాబాద్",
        "విజయవాడ",
        "విశాఖపట్నం",
        "తిరుపతి",
        "వరంగల్",
        "గుంటూరు",
        "నెల్లూరు",
        "కర్నూలు",
        "చెన్నై",
        "బెంగళూరు",
        "ముంబై",
        "ఢిల్లీ",
        "కాకినాడ",
        "రాజమండ్రి",
        "ఒంగోలు",
        "ఖమ్మం",
        "నిజామాబాద్",
        "కరీంనగర్",
        "అనంతపురం",
        "కడప",
        "శ్రీకాకుళం",
        "ఏలూరు",
        "మచిలీపట్నం",
        "కలకత్తా",
        "పూణే",
        "మైసూరు",
        "భద్రాచలం",
        "అరకు",
        "నంద్యాల",
        "సిద్దిపేట",
    ),
    "number": (
        "రెండు",
        "మూడు",
        "నాలుగు",
        "ఐదు",
        "ఆరు",
        "ఏడు",
        "ఎనిమిది",
        "తొమ్మిది",
        "పది",
        "పదకొండు",
        "పన్నెండు",
        "పదిహేను",
        "ఇరవై",
        "పాతిక",
        "ముప్పై",
        "నలభై",
        "యాభై",
        "అరవై",
        "డెబ్బై",
        "ఎనభై",
        "తొంభై",
        "వంద",
    ),
    "time": tuple(
        f"{part} {hour}{half}" for part, hours in _HOURS for hour in hours for half in ("", "న్నర")
    ),
    "amount": tuple(f"{h}{fifty}" for h in _HUNDREDS for fifty in ("", " యాభై")) + _THOUSANDS,
}
"""Every slot type's values, as they are written in a turn and its answer."""


@dataclass(frozen=True)
class SlotIntent:
    name: str
    slot: str
    """The slot type, a key of VALUES."""
    templates: tuple[str, ...]
    """Ways a user says it; "{value}" marks where the value goes."""
    answer: str
    """The agent's answer (without an emotion's opener); it says "{value}" back."""

    def say(self, template: int, value: str) -> str:
        """A user turn: template `template` with `value` in it."""
        return self.templates[template].format(value=value)

    def answer_with(self, value: str) -> str:
        """The answer that says `value` back."""
        return self.answer.format(value=value)


SLOT_INTENTS: tuple[SlotIntent, ...] = (
    SlotIntent(
        "my_name",
        "name",
        (
            "నా పేరు {value}.",
            "నమస్తే అండీ, నా పేరు {value}.",
            "హలో, నేను {value}, మాట్లాడుతున్నాను.",
            "నా name {value} అండీ.",
            "అంటే... నేను {value} ని, మీతో మాట్లాడాలి.",
            "My name is {value}, నా పేరు గుర్తుపెట్టుకోండి.",
        ),
        "{value} గారు, నమస్కారం! మీకు ఏం సహాయం కావాలి?",
    ),
    SlotIntent(
        "ticket",
        "city",
        (
            "{value} కి ఒక టికెట్ కావాలి.",
            "రేపు {value} కి bus ticket book చేయండి.",
            "అంటే... {value} వెళ్ళాలి, ఒక టికెట్ కావాలి.",
            "{value} కి train ticket దొరుకుతుందా?",
            "ఊ... నాకు {value} కి ఒక ticket కావాలి.",
            "ఈ రోజు రాత్రికి {value} కి టికెట్ బుక్ చేస్తారా?",
        ),
        "సరే, {value} కి ఒక టికెట్ బుక్ చేస్తున్నాను.",
    ),
    SlotIntent(
        "table",
        "number",
        (
            "{value} మంది కోసం ఒక table book చేయండి.",
            "మేము {value} మంది వస్తున్నాం, table కావాలి.",
            "అంటే... {value} మందికి సరిపోయే table ఉందా?",
            "ఈ రాత్రికి {value} మంది కోసం table దొరుకుతుందా?",
            "ఊ... మొత్తం {value} మంది, ఒక table పెట్టండి.",
            "Dinner కి {value} మంది కోసం table book చేస్తారా?",
        ),
        "సరే, {value} మంది కోసం table బుక్ చేశాను.",
    ),
    SlotIntent(
        "alarm",
        "time",
        (
            "{value} గంటలకు alarm పెట్టు.",
            "రేపు {value} గంటలకు alarm పెట్టండి.",
            "అంటే... {value} గంటలకు లేపండి.",
            "{value} గంటలకు ఒక alarm కావాలి.",
            "ఊ... నన్ను {value} గంటలకు నిద్ర లేపుతారా?",
            "Please, {value} గంటలకు alarm set చేయండి.",
        ),
        "సరే, {value} గంటలకు alarm పెట్టాను.",
    ),
    SlotIntent(
        "send_money",
        "amount",
        (
            "{value} రూపాయలు పంపించు.",
            "అమ్మకి {value} రూపాయలు పంపించండి.",
            "అంటే... {value} రూపాయలు transfer చేయాలి.",
            "నా friend కి {value} రూపాయలు పంపిస్తారా?",
            "ఊ... {value} రూపాయలు UPI లో పంపించండి.",
            "{value} రూపాయలు send చేయండి, urgent.",
        ),
        "సరే, {value} రూపాయలు పంపిస్తున్నాను.",
    ),
)
"""The slot intents, one per slot type."""


@cache
def value_splits(slot: str) -> dict[str, tuple[str, ...]]:
    """The values of a slot type by split (SPLIT_SHARES of a shuffle seeded with SPLIT_SEED and
    the type's name), each in shuffled order: disjoint, and the same on every machine and run."""
    values = sorted(VALUES[slot])
    rng = np.random.default_rng([SPLIT_SEED, *slot.encode()])
    shuffled = [values[i] for i in rng.permutation(len(values))]
    held = max(1, round(len(values) * SPLIT_SHARES[2]))
    train = len(values) - max(1, round(len(values) * SPLIT_SHARES[1])) - held
    return {
        "train": tuple(shuffled[:train]),
        "validation": tuple(shuffled[train : len(values) - held]),
        "test": tuple(shuffled[len(values) - held :]),
    }


def values_for(slot: str, count: int) -> dict[str, tuple[str, ...]]:
    """About `count` values of a slot type, spread over the splits by SPLIT_SHARES (at least
    one in each): the first ones of each split of `value_splits`."""
    shares = dict(zip(("train", "validation", "test"), SPLIT_SHARES, strict=True))
    return {
        split: values[: max(1, round(count * shares[split]))]
        for split, values in value_splits(slot).items()
    }
