"""`telugu-s2s train tokenizer`: the sentencepiece BPE model of models/text/tokenizer.py,
trained on words generated from the corpus's text bank (nothing downloaded).

The bank's text is every user paraphrase and answer, the openers and hesitations, and every
slot template and slot answer with each *train* value (a validation or test value then
becomes pieces that training text also has, never a piece of its own). BPE learns from its
distinct words, each repeated 1 + log2(its count) times: trained on running text, the
frequent words ("చేయాలి", "మాట్లాడాలి") become whole pieces; trained on the words so damped,
it merges what words share, stems and suffixes ("చేయ|ాలి", "మాట్లాడ|ాలి"), and only the most
frequent words stay whole. Every Telugu letter and the Latin letters and digits are required
pieces, so any Telugu or English text encodes without UNK. Training is single-threaded on
sorted words: the same bank and vocabulary give the same model bytes.
"""

from __future__ import annotations

import argparse
import io
import math
import unicodedata
from collections import Counter

import sentencepiece

from models.data.bank import HESITATIONS, INTENTS, OPENERS
from models.data.manifest import read_manifest
from models.data.slots import SLOT_INTENTS, value_splits
from models.data.text import normalise
from models.text.tokenizer import BOS, EOS, EPAD_PIECE, PAD, SHIPPED, UNK, Tokenizer

VOCAB_SIZE = 512
"""The shipped vocabulary (docs/benchmarks.md compares 256, 512 and 1024)."""
REQUIRED = (
    "".join(chr(c) for c in range(0x0C00, 0x0C80) if unicodedata.category(chr(c))[0] in "LM")
    + "abcdefghijklmnopqrstuvwxyz0123456789"
)
"""Characters that are pieces whatever the text: Telugu letters and signs, a-z, 0-9."""


def bank_text() -> list[str]:
    """The training text, normalised, one line per wording (see the module doc)."""
    lines = [p for intent in INTENTS for p in intent.paraphrases]
    lines += [intent.answer for intent in INTENTS]
    lines += [opener for opener in OPENERS.values() if opener] + list(HESITATIONS)
    for intent in SLOT_INTENTS:
        for value in value_splits(intent.slot)["train"]:
            lines += [intent.say(t, value) for t in range(len(intent.templates))]
            lines.append(intent.answer_with(value))
    return [normalise(line) for line in lines]


def bank_words() -> list[str]:
    """The distinct words of `bank_text`, sorted, each 1 + floor(log2(count)) times."""
    counts = Counter(word for line in bank_text() for word in line.split())
    return [word for word in sorted(counts) for _ in range(1 + int(math.log2(counts[word])))]


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """A BPE tokenizer of `vocab_size` pieces trained on `bank_words`."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(bank_words()),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        required_chars=REQUIRED,
        normalization_rule_name="identity",
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        control_symbols=[EPAD_PIECE],
        split_digits=True,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return Tokenizer(model.getvalue())


def pieces_per_word(tokenizer: Tokenizer, texts: list[str]) -> float:
    """Pieces per word of the normalised texts."""
    words = sum(len(normalise(text).split()) for text in texts)
    return sum(len(tokenizer.encode(text)) for text in texts) / max(1, words)


def add_train_tokenizer_command(recipes: argparse._SubParsersAction) -> None:
    """`train tokenizer`, with `run`."""
    p = recipes.add_parser(
        "tokenizer",
        help="train the Telugu text tokenizer on the corpus's text bank",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=str(SHIPPED), help="folder for the model and its sha256")
    p.add_argument("--vocab", type=int, default=VOCAB_SIZE, help="vocabulary size")
    p.add_argument(
        "--data", help="a manifest: also report pieces per word and per second of its speech"
    )
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_train_tokenizer)


def _train_tokenizer(args: argparse.Namespace) -> int:
    tokenizer = train_tokenizer(args.vocab)
    out = tokenizer.save(args.out)
    print(f"{out}: vocab {tokenizer.vocab_size}, sha256 {tokenizer.sha256}")
    print(f"bank text: {pieces_per_word(tokenizer, bank_text()):.2f} pieces per word")
    if args.data:
        entries = read_manifest(args.data)
        for role in ("user", "agent"):
            said = [e for e in entries if e.dialogue is not None and e.dialogue.role == role]
            if said:
                pieces = sum(len(tokenizer.encode(e.text)) for e in said)
                seconds = sum(e.duration for e in said)
                texts = [e.text for e in said]
                print(
                    f"{args.data} {role}: {pieces_per_word(tokenizer, texts):.2f} pieces per "
                    f"word, {pieces / seconds:.2f} pieces per second of speech"
                )
    return 0
