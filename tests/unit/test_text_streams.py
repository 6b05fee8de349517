"""The text streams' training data: forced alignment, placement of pieces, judging answers."""

from __future__ import annotations

import math

import pytest
import torch

from models.eval.judge import IntentTexts, said_back, substring_distance
from models.text.tokenizer import EPAD, PAD
from models.train.text_streams import forced_align, place_pieces


def _log_probs(path: list[int], vocab: int = 6, sure: float = 0.9) -> torch.Tensor:
    """Log-probabilities (frames, vocab) that favour label path[t] at frame t."""
    probs = torch.full((len(path), vocab), (1 - sure) / (vocab - 1))
    probs[torch.arange(len(path)), torch.tensor(path)] = sure
    return probs.log()


def test_forced_alignment_finds_where_each_label_starts() -> None:
    # blank, a a, blank, b, b b (a repeated label needs a blank between: 2 blank 2)
    path = [0, 1, 1, 0, 2, 0, 2, 2, 0]
    assert forced_align(_log_probs(path), [1, 2, 2]) == [1, 4, 6]


def test_forced_alignment_spells_the_labels_even_against_the_evidence() -> None:
    # the frames say "3", the text says "1": the path still spells the text
    starts = forced_align(_log_probs([0, 3, 3, 0, 0]), [1])
    assert starts is not None and len(starts) == 1
    assert forced_align(_log_probs([0, 1]), [1, 2, 3]) is None  # too few frames


def test_pieces_sit_before_their_words_after_an_epad_and_never_overlap() -> None:
    stream = place_pieces([[10, 11], [12], [13, 14, 15]], [5, 6, 20], steps=24, lead=2)
    assert stream[2:5].tolist() == [EPAD, 10, 11]  # word 1 at step 5 - 2, EPAD before
    assert stream[5:7].tolist() == [EPAD, 12]  # word 2 pushed after word 1 and its EPAD
    assert stream[17:21].tolist() == [EPAD, 13, 14, 15]
    said = [t for t in stream.tolist() if t not in (PAD, EPAD)]
    assert said == [10, 11, 12, 13, 14, 15]
    cut = place_pieces([[10, 11, 12]], [3], steps=3, lead=0)
    assert cut.tolist() == [PAD, PAD, EPAD]  # pieces past the end are dropped


def test_substring_distance_and_slot_said_back() -> None:
    assert substring_distance("abc", "xxabcxx") == 0
    assert substring_distance("abc", "xxabxx") == 1
    assert said_back("విజయవాడ", "సరే విజయవాడ కి ఒక టికెట్")
    assert said_back("విజయవాడ", "సరే విజయవాద కి")  # one letter in seven misheard
    assert not said_back("విజయవాడ", "సరే తిరుపతి కి ఒక టికెట్")
    assert not said_back("", "anything")


def test_intent_texts_pick_the_nearest_template() -> None:
    texts = IntentTexts(
        [
            ("ticket", "సరే, విజయవాడ కి ఒక టికెట్ బుక్ చేస్తున్నాను."),
            ("alarm", "సరే, ఆరు గంటలకు alarm పెట్టాను."),
        ]
    )
    assert texts.closest("సరే తిరుపతి కి ఒక టికెట్ బుక్ చేస్తున్నాను") == "ticket"
    assert texts.closest("సరే ఏడు గంటలకు alarm పెట్టాను") == "alarm"
    assert texts.closest("") is None
    assert math.isclose(texts.distance("సరే ఆరు గంటలకు alarm పెట్టాను", "alarm"), 0.0)


@pytest.mark.parametrize("lead", [0, 1, 3])
def test_every_piece_is_placed_once_in_order(lead: int) -> None:
    words = [[5 + i, 50 + i] for i in range(6)]
    stream = place_pieces(words, [0, 1, 2, 10, 11, 30], steps=40, lead=lead)
    said = [t for t in stream.tolist() if t not in (PAD, EPAD)]
    assert said == [p for w in words for p in w]
