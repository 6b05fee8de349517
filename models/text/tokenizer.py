"""The Telugu text tokenizer: a sentencepiece model whose pieces are stems and suffixes of
Telugu words and the English words of code-mixed speech, over text normalised as it is heard
(models/data/text.py).

Special ids: PAD (0, "nothing is said in this frame" of a time-aligned text stream, as Moshi's
PAD), UNK (1), BOS (2), EOS (3) and EPAD (4, "a word starts in the next frame", as Moshi's
EPAD). A saved tokenizer is its model file and tokenizer.json naming the model's sha256: a
checkpoint's config.json records `Tokenizer.record()` and loads with `Tokenizer.load(dir,
sha256=...)`, which refuses any other model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sentencepiece

from models.data.text import normalise

VERSION = 1
"""Format of a saved tokenizer (tokenizer.json's `version`)."""
MODEL_FILE = "tokenizer.model"
INFO_FILE = "tokenizer.json"
PAD, UNK, BOS, EOS, EPAD = 0, 1, 2, 3, 4
EPAD_PIECE = "<epad>"
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "tokenizer"
"""The tokenizer shipped with the project (`telugu-s2s train tokenizer` makes it)."""


class Tokenizer:
    """Text <-> piece ids with a trained sentencepiece model (`models.text.training`)."""

    def __init__(self, model: bytes) -> None:
        self.model = model
        self.sha256 = hashlib.sha256(model).hexdigest()
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=model)
        if self._sp.piece_to_id(EPAD_PIECE) != EPAD or self._sp.pad_id() != PAD:
            raise ValueError("not a tokenizer of this project: its special ids differ")

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """The piece ids of the normalised text (no BOS/EOS)."""
        return self._sp.encode(normalise(text))

    def pieces(self, text: str) -> list[str]:
        """The pieces of the normalised text ("▁" starts a word)."""
        return self._sp.encode(normalise(text), out_type=str)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; special ids say nothing."""
        return self._sp.decode([int(i) for i in ids if int(i) > EPAD])

    def record(self) -> dict[str, Any]:
        """What a checkpoint's config.json records of its tokenizer."""
        return {"version": VERSION, "sha256": self.sha256, "vocab_size": self.vocab_size}

    def save(self, directory: str | Path) -> Path:
        """Write the model file and tokenizer.json into `directory`; returns it."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / MODEL_FILE).write_bytes(self.model)
        info = {
            **self.record(),
            "model": MODEL_FILE,
            "special": {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS, "epad": EPAD},
        }
        (out / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, directory: str | Path = SHIPPED, sha256: str | None = None) -> Tokenizer:
        """The tokenizer saved in `directory`. Raises ValueError when its model file is not the
        one tokenizer.json names, or not the `sha256` a checkpoint recorded."""
        folder = Path(directory)
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        if info.get("version") != VERSION:
            raise ValueError(f"{folder}: tokenizer format {info.get('version')}, not {VERSION}")
        tokenizer = cls((folder / info["model"]).read_bytes())
        for expected, source in ((info["sha256"], INFO_FILE), (sha256, "the checkpoint")):
            if expected is not None and tokenizer.sha256 != expected:
                raise ValueError(
                    f"{folder}: model sha256 {tokenizer.sha256[:12]}... is not the "
                    f"{expected[:12]}... {source} names"
                )
        return tokenizer
