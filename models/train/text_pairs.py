"""Text-only dialogue pairs for the decoder's text stream: what to answer, learnt from text.

Moshi trains its transformer on text before it hears any audio. At our scale the same need
shows as the text stream memorising the audio corpus's few hundred train pairs (its validation
cross-entropy rises from step 1,000) while held-out wordings get an eighth of their intents
right and no slot value back (docs/benchmarks.md). Text costs nothing to make, so this module
draws user turn -> answer pairs from the corpus's own source (models.data.bank and
models.data.slots), on the train side of every split the corpus uses:

- slot values: the train values, and many values that are no word at all (random Telugu
  syllables), so that saying a value back can only be learnt as copying the user's pieces,
  never as recalling a value it has seen;
- user wordings: an intent's train wordings, and wordings recombined from two of them with
  words dropped and fillers put in (held-out wordings reuse the train wordings' content
  words, `models.data.wording`);
- timing: the answer's pieces placed on decoder steps as `models.train.text_streams` places
  them in real answers, at word starts from `AnswerTiming`, fitted to the corpus's answer
  durations (per letter, per word, per clause pause) and jittered by a speaking rate.

Validation and test wordings and slot values never occur; a random syllable string that
happens to spell one is drawn again.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.data.bank import HESITATIONS, INTENTS, OPENERS
from models.data.manifest import Entry
from models.data.slots import SLOT_INTENTS, value_splits
from models.data.text import normalise
from models.data.wording import wording_splits
from models.s2s.delay import TEXT_END
from models.text.tokenizer import Tokenizer
from models.train.text_streams import place_pieces

CLAUSE_END = ",.?!"
CONSONANTS = tuple(chr(c) for c in range(0x0C15, 0x0C3A) if c not in (0x0C31, 0x0C34))
VOWEL_SIGNS = ("", "", "ా", "ి", "ీ", "ు", "ూ", "ె", "ే", "ై", "ొ", "ో")
VOWELS = ("అ", "ఆ", "ఇ", "ఈ", "ఉ", "ఎ", "ఏ", "ఒ", "ఓ")
VIRAMA, ANUSVARA = "్", "ం"


@dataclass(frozen=True)
class AnswerTiming:
    """When an answer's words start: a word takes `per_letter` x letters + `per_word` seconds,
    plus `per_pause` after a clause's last word; the first starts at `lead_in`."""

    per_letter: float
    per_word: float
    per_pause: float
    lead_in: float = 0.02

    def starts(self, words: list[str], rate: float = 1.0) -> tuple[list[float], float]:
        """Start (s) of each word of `words` (as written, punctuation kept) and the answer's
        end, at speaking `rate` (1: the corpus's mean)."""
        at, starts = self.lead_in, []
        for word in words:
            starts.append(at)
            at += (self.per_letter * len(normalise(word).replace(" ", "")) + self.per_word) / rate
            if word[-1] in CLAUSE_END:
                at += self.per_pause / rate
        return starts, at


def fit_timing(answers: Iterable[Entry]) -> AnswerTiming:
    """Least squares of the answers' durations on their letters, words and clause ends (the
    synthetic corpus trims its clips, so a duration is the words and their pauses)."""
    rows, seconds = [], []
    for entry in answers:
        words = entry.text.split()
        letters = sum(len(normalise(w).replace(" ", "")) for w in words)
        pauses = sum(1 for w in words if w[-1] in CLAUSE_END)
        rows.append([letters, len(words), pauses])
        seconds.append(entry.duration)
    if len(rows) < 3:
        raise ValueError("fitting the answer timing needs at least 3 answers")
    coef, *_ = np.linalg.lstsq(np.array(rows, float), np.array(seconds), rcond=None)
    per_letter, per_word, per_pause = (max(0.0, float(c)) for c in coef)
    return AnswerTiming(per_letter, per_word, per_pause)


@dataclass(frozen=True)
class TextPair:
    """One text-only example: the user's pieces, the answer's text stream, its emotion."""

    user: Tensor
    """(n,) pieces of the user turn (the last `max_user_tokens`)."""
    answer: Tensor
    """(steps,) the answer's text stream: pieces, EPAD and PAD, and TEXT_END on the step
    where its audio would end (as `text_targets` ends a spoken answer's)."""
    emotion: int


def pseudo_value(rng: random.Random, held: frozenset[str] = frozenset()) -> str:
    """One or two 'words' of 2-4 random Telugu syllables (conjuncts and anusvara included),
    never one of `held`."""
    while True:
        words = []
        for _ in range(rng.choice((1, 1, 1, 2))):
            word = rng.choice(VOWELS) if rng.random() < 0.15 else ""
            for _ in range(rng.randint(2, 4)):
                syllable = rng.choice(CONSONANTS)
                if rng.random() < 0.15:
                    syllable += VIRAMA + rng.choice(CONSONANTS)
                syllable += rng.choice(VOWEL_SIGNS)
                if rng.random() < 0.12:
                    syllable += ANUSVARA
                word += syllable
            words.append(word)
        value = " ".join(words)
        if value not in held:
            return value


def reword(wordings: list[str], rng: random.Random) -> str:
    """A user wording from an intent's train wordings: one of them, or two recombined (each
    word of the first kept with p 0.7, of the second with p 0.5); then, with p 0.5, words
    dropped (p 0.15 each) and, with p 0.3, a filler put in."""
    if len(wordings) > 1 and rng.random() < 0.4:
        first, second = rng.sample(wordings, 2)
        words = [w for w in first.split() if rng.random() < 0.7]
        words += [w for w in second.split() if rng.random() < 0.5]
        words = words or first.split()
    else:
        words = rng.choice(wordings).split()
    if len(words) > 2 and rng.random() < 0.5:
        words = [w for w in words if rng.random() > 0.15] or words
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), rng.choice(HESITATIONS))
    return " ".join(words)


class TextPairs:
    """Draws `TextPair`s from the train side of the corpus's intents (module docstring)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        emotions: tuple[str, ...],
        timing: AnswerTiming,
        step_s: float,
        lead_steps: int,
        max_user_tokens: int,
        slot_share: float = 0.35,
        pseudo_share: float = 0.6,
    ) -> None:
        self.tokenizer, self.emotions, self.timing = tokenizer, emotions, timing
        self.step_s, self.lead_steps, self.max_user_tokens = step_s, lead_steps, max_user_tokens
        self.slot_share, self.pseudo_share = slot_share, pseudo_share
        self.bank = [(i, _train(i.name, i.paraphrases)) for i in INTENTS]
        self.slots = [(s, _train(s.name, s.templates)) for s in SLOT_INTENTS]
        self.held = frozenset(
            value
            for s in SLOT_INTENTS
            for split in ("validation", "test")
            for value in value_splits(s.slot)[split]
        )

    def texts(self, rng: random.Random) -> tuple[str, str, int]:
        """(user turn, answer, emotion index) of one pair."""
        emotion = rng.randrange(len(self.emotions))
        opener = OPENERS.get(self.emotions[emotion], "")
        if rng.random() < self.slot_share:
            intent, templates = rng.choice(self.slots)
            if rng.random() < self.pseudo_share:
                value = pseudo_value(rng, self.held)
            else:
                value = rng.choice(value_splits(intent.slot)["train"])
            template = rng.choice(templates)
            wording = reword([template], rng) if rng.random() < 0.3 else template
            if "{value}" not in wording:
                wording = template
            return wording.format(value=value), opener + intent.answer_with(value), emotion
        intent, paraphrases = rng.choice(self.bank)
        return reword(paraphrases, rng), opener + intent.answer, emotion

    def draw(self, rng: random.Random) -> TextPair:
        """One pair, its answer's words placed at a speaking rate drawn in [0.8, 1.25]."""
        user, answer, emotion = self.texts(rng)
        return self.pair(user, answer, emotion, rng.uniform(0.8, 1.25))

    def lasting(self, user: str, answer: str, emotion: int, seconds: float) -> TextPair:
        """The pair of `user` and `answer`, its words spread over `seconds`."""
        _, natural_s = self.timing.starts(_words(answer))
        return self.pair(user, answer, emotion, natural_s / seconds)

    def pair(self, user: str, answer: str, emotion: int, rate: float = 1.0) -> TextPair:
        """The pair of `user` and `answer`, its words placed at speaking `rate`."""
        words = _words(answer)
        starts_s, end_s = self.timing.starts(words, rate)
        starts = [round(s / self.step_s) for s in starts_s]
        steps = round(end_s / self.step_s)
        pieces = [self.tokenizer.encode(w) for w in words]
        stream = place_pieces(pieces, starts, steps, self.lead_steps)
        stream = torch.cat([stream, torch.tensor([TEXT_END])])
        tokens = self.tokenizer.encode(user)[-self.max_user_tokens :]
        return TextPair(torch.tensor(tokens, dtype=torch.long), stream, emotion)


def _words(answer: str) -> list[str]:
    """The words of an answer that say something (as written, punctuation kept)."""
    return [w for w in answer.split() if normalise(w)]


def _train(intent: str, wordings: tuple[str, ...]) -> list[str]:
    splits = wording_splits(intent, wordings)
    return [w for w in wordings if splits[w] == "train"]
