"""Text-only dialogue pairs: drawn from the train side of every split, timed like the corpus."""

from __future__ import annotations

import random

import pytest

from models.config import DEMO
from models.data.bank import INTENTS, OPENERS
from models.data.manifest import Dialogue, Entry
from models.data.slots import SLOT_INTENTS, value_splits
from models.data.text import normalise
from models.data.wording import wording_splits
from models.s2s.delay import TEXT_END
from models.text.tokenizer import EPAD, PAD, UNK, Tokenizer
from models.train.text_pairs import AnswerTiming, TextPairs, fit_timing, pseudo_value

TIMING = AnswerTiming(per_letter=0.08, per_word=0.06, per_pause=0.45)


@pytest.fixture(scope="module")
def pairs() -> TextPairs:
    config = DEMO
    return TextPairs(
        Tokenizer.load(),
        config.emotions,
        TIMING,
        config.step_ms / 1000,
        config.text.lead_steps,
        config.text.max_user_tokens,
    )


def _held_out_wordings() -> set[str]:
    held = set()
    for intent in INTENTS:
        splits = wording_splits(intent.name, intent.paraphrases)
        held |= {normalise(p) for p in intent.paraphrases if splits[p] != "train"}
    return held


def test_pseudo_values_are_telugu_pieces_and_never_held_out() -> None:
    tokenizer, rng = Tokenizer.load(), random.Random(0)
    held = frozenset({"రాము"})
    values = [pseudo_value(rng, held) for _ in range(500)]
    assert len(set(values)) > 490 and "రాము" not in values
    assert all("\u0c00" <= ch <= "\u0c7f" or ch == " " for v in values for ch in v)
    assert all(UNK not in tokenizer.encode(v) for v in values)
    again = random.Random(0)
    assert [pseudo_value(again, held) for _ in range(500)] == values


def _slot_value(answer: str) -> str | None:
    """The value a slot answer says back (None for a bank answer)."""
    for opener in sorted(OPENERS.values(), key=len, reverse=True):
        if opener and answer.startswith(opener):
            answer = answer[len(opener) :]
            break
    for intent in SLOT_INTENTS:
        before, after = intent.answer.split("{value}")
        if answer.startswith(before) and answer.endswith(after):
            return normalise(answer[len(before) : len(answer) - len(after)])
    return None


def test_pairs_never_hold_a_held_out_wording_or_value(pairs: TextPairs) -> None:
    held_values = {
        normalise(v)
        for s in SLOT_INTENTS
        for split in ("validation", "test")
        for v in value_splits(s.slot)[split]
    }
    held_wordings = _held_out_wordings()
    rng, slot_pairs = random.Random(1), 0
    for _ in range(3000):
        user, answer, _ = pairs.texts(rng)
        assert normalise(user) not in held_wordings, user
        value = _slot_value(answer)
        if value is not None:
            slot_pairs += 1
            assert value and value not in held_values, answer
            assert value in normalise(user), (user, answer)
    assert 0.25 < slot_pairs / 3000 < 0.45


def test_the_answer_stream_spells_the_answer_at_increasing_steps(pairs: TextPairs) -> None:
    tokenizer = Tokenizer.load()
    for seed in range(20):
        _, answer, emotion = pairs.texts(random.Random(seed))
        pair = pairs.draw(random.Random(seed))
        assert pair.emotion == emotion
        assert tokenizer.decode(pair.answer.tolist()) == normalise(answer)
        said = [t for t in pair.answer.tolist() if t not in (PAD, EPAD, TEXT_END)]
        assert len(said) == len(tokenizer.encode(answer))
        assert pair.answer[-1] == TEXT_END and not pair.answer[:-1].eq(TEXT_END).any()
        assert len(pair.user) <= DEMO.text.max_user_tokens


def test_timing_fits_the_corpus_durations() -> None:
    rng = random.Random(3)
    texts = [i.answer for i in INTENTS] + [s.answer_with("రాము") for s in SLOT_INTENTS]
    entries = []
    for k in range(120):
        text = rng.choice(texts)
        words = text.split()
        letters = sum(len(normalise(w).replace(" ", "")) for w in words)
        pauses = sum(1 for w in words if w[-1] in ",.?!")
        seconds = 0.08 * letters + 0.06 * len(words) + 0.45 * pauses + rng.gauss(0, 0.01)
        entries.append(
            Entry(
                f"a{k}.wav",
                seconds,
                text,
                "male_1",
                "NEUTRAL",
                "train",
                Dialogue(f"d{k}", "agent", None),
                f"a{k}",
            )
        )
    timing = fit_timing(entries)
    assert timing.per_letter == pytest.approx(0.08, abs=0.005)
    assert timing.per_word == pytest.approx(0.06, abs=0.03)
    assert timing.per_pause == pytest.approx(0.45, abs=0.03)


def test_word_starts_increase_and_follow_the_speaking_rate() -> None:
    words = ["సరే,", "రాము", "గారు", "నమస్కారం!"]
    starts, end = TIMING.starts(words)
    fast, fast_end = TIMING.starts(words, rate=1.25)
    assert starts == sorted(starts) and starts[0] == TIMING.lead_in and end > starts[-1]
    assert starts[1] - starts[0] > TIMING.per_pause  # the comma's pause
    assert fast_end < end and fast[2] - fast[1] == pytest.approx((starts[2] - starts[1]) / 1.25)
