"""The Telugu tokenizer: round trips on code-mixed text, sub-word pieces for Telugu stems and
suffixes, deterministic training, the shipped model, save/load with its sha256 checked."""

from __future__ import annotations

import argparse
import json

import pytest

from models.data.slots import SLOT_INTENTS, value_splits
from models.data.text import normalise
from models.text.tokenizer import BOS, EOS, EPAD, PAD, UNK, Tokenizer
from models.text.training import (
    VOCAB_SIZE,
    add_train_tokenizer_command,
    bank_text,
    train_tokenizer,
)

CODE_MIXED = (
    "ఈ రోజు weather ఎలా ఉంది?",
    "అంటే... Sankranti కి ఊరు వెళ్తున్నారా?",
    "నా friend కి ఐదు వందల రూపాయలు UPI లో పంపించండి, urgent!",
    "Zebra crossing దగ్గర 42 నిమిషాలు ఆగాను.",  # words and digits the bank never says
)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load()


def test_the_shipped_tokenizer_is_what_training_on_the_bank_gives(tokenizer):
    assert tokenizer.vocab_size == VOCAB_SIZE
    assert tokenizer.model == train_tokenizer(VOCAB_SIZE).model, (
        "the bank changed: retrain with `telugu-s2s train tokenizer`"
    )


def test_training_is_deterministic_and_the_vocabulary_is_chosen():
    small = train_tokenizer(256)
    assert small.model == train_tokenizer(256).model
    assert small.sha256 == train_tokenizer(256).sha256
    assert small.vocab_size == 256 and small.sha256 != train_tokenizer(300).sha256


@pytest.mark.parametrize("text", CODE_MIXED)
def test_code_mixed_text_round_trips_without_unknown_pieces(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids and UNK not in ids and min(ids) > EPAD
    assert tokenizer.decode(ids) == normalise(text)


def test_the_bank_round_trips(tokenizer):
    for line in bank_text():
        assert tokenizer.decode(tokenizer.encode(line)) == line


def test_special_ids_say_nothing(tokenizer):
    ids = tokenizer.encode("నమస్తే అండీ")
    padded = [BOS, PAD, PAD, EPAD, *ids, PAD, EOS]
    assert tokenizer.decode(padded) == "నమస్తే అండీ"
    assert (PAD, UNK, BOS, EOS, EPAD) == (0, 1, 2, 3, 4)


@pytest.mark.parametrize(
    ("stem", "words"),
    [
        ("▁చేయ", ("చేయాలి", "చేయట్లేదు")),  # do: must do / is not doing
        ("▁మాట్లాడ", ("మాట్లాడాలి", "మాట్లాడతాను")),  # speak: must speak / I will speak
        ("▁వెళ్ళ", ("వెళ్ళాలి", "వెళ్ళండి")),  # go: must go / please go
        ("▁బాగు", ("బాగుంది", "బాగుందా")),  # good: it is good / is it good?
    ],
)
def test_inflected_words_share_their_stem_piece(tokenizer, stem, words):
    for word in words:
        pieces = tokenizer.pieces(word)
        assert pieces[0] == stem and len(pieces) > 1, pieces


def test_held_out_slot_values_are_made_of_pieces_training_text_has(tokenizer):
    """A validation or test value never has a piece of its own that training text lacks."""
    seen = {i for line in bank_text() for i in tokenizer.encode(line)}
    for intent in SLOT_INTENTS:
        splits = value_splits(intent.slot)
        for value in splits["validation"] + splits["test"]:
            assert tokenizer.decode(tokenizer.encode(value)) == normalise(value)
            assert set(tokenizer.encode(value)) <= seen, value


def test_save_load_checks_the_sha256(tmp_path, tokenizer):
    folder = tokenizer.save(tmp_path / "tok")
    info = json.loads((folder / "tokenizer.json").read_text())
    assert info["sha256"] == tokenizer.sha256 == tokenizer.record()["sha256"]
    loaded = Tokenizer.load(folder, sha256=tokenizer.record()["sha256"])
    assert loaded.encode(CODE_MIXED[0]) == tokenizer.encode(CODE_MIXED[0])

    with pytest.raises(ValueError, match="checkpoint"):
        Tokenizer.load(folder, sha256="0" * 64)
    train_tokenizer(300).save(tmp_path / "other")
    (folder / "tokenizer.model").write_bytes((tmp_path / "other" / "tokenizer.model").read_bytes())
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer.load(folder)


def test_train_tokenizer_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_train_tokenizer_command(parser.add_subparsers(dest="recipe", required=True))
    args = parser.parse_args(["tokenizer", "--out", str(tmp_path), "--vocab", "300"])
    assert args.run(args) == 0
    assert Tokenizer.load(tmp_path).vocab_size == 300
    assert "pieces per word" in capsys.readouterr().out
