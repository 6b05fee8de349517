"""The copy path (`TextConfig.copy_pieces`): fixed piece signatures shared by the user-text
memory and the decoder's text output, so that pieces never seen in training are said back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.checkpoints import save_checkpoint
from models.config import DEMO, S2SConfig
from models.s2s.decoder import StreamingDecoder
from models.s2s.delay import TEXT_PAD
from models.s2s.encoder import StreamingEncoder
from models.s2s.piece_signatures import piece_signatures
from models.train.monologue import start_from

TINY: S2SConfig = replace(
    DEMO,
    name="tiny",
    encoder=replace(DEMO.encoder, layers=1, dim=32, heads=2, conv_kernel=3, ff_mult=2),
    decoder=replace(DEMO.decoder, layers=2, dim=64, heads=2, mlp_ratio=2, max_steps=64),
)
COPY = replace(TINY, text=replace(TINY.text, copy_pieces=True))


def test_the_signatures_are_fixed_and_nearly_orthogonal() -> None:
    table = piece_signatures(512, 192)
    assert torch.equal(table, piece_signatures(512, 192))
    cosine = F.normalize(table, dim=1) @ F.normalize(table, dim=1).T
    off = cosine[~torch.eye(512, dtype=torch.bool)].abs()
    assert float(off.max()) < 0.4 and float(off.mean()) < 0.1


def test_a_run_adds_the_copy_path_to_a_model_without_one_and_starts_where_it_was(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    encoder, decoder = StreamingEncoder(TINY).eval(), StreamingDecoder(TINY).eval()
    save_checkpoint(tmp_path, {"encoder": encoder, "decoder": decoder}, TINY)
    copying, reader = StreamingEncoder(COPY).eval(), StreamingDecoder(COPY).eval()
    start_from(tmp_path, COPY, copying, reader)
    hidden = torch.randn(2, 5, TINY.decoder.dim)
    assert torch.equal(reader.text_logits(hidden), decoder.text_logits(hidden))
    pieces = torch.tensor([[7, 8, 9]])
    assert not torch.equal(copying.user_text(pieces), encoder.user_text(pieces))
    save_checkpoint(tmp_path / "copy", {"encoder": copying, "decoder": reader}, COPY)
    with pytest.raises(ValueError, match="copy path"):
        start_from(tmp_path / "copy", TINY, encoder, decoder)


def said_back(
    config: S2SConfig, train: list[int], test: list[int], steps: int, seed: int = 0
) -> float:
    """Train a tiny encoder's user text and decoder for `steps` steps to say back 4 pieces
    drawn from `train` after a PAD, teacher-forced; the share of pieces of `test` (never
    drawn in training) said back right, greedily, under the same teacher forcing."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    encoder, decoder = StreamingEncoder(config), StreamingDecoder(config)
    trained = [*encoder.user_text.parameters(), *decoder.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=3e-3)
    condition = torch.zeros(32, config.decoder.dim)

    def batch(pool: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        pieces = torch.tensor(pool)[torch.randint(len(pool), (32, 4), generator=generator)]
        inputs = torch.cat([torch.full((32, 2), TEXT_PAD), pieces[:, :-1]], dim=1)
        return pieces, inputs

    for _ in range(steps):
        pieces, inputs = batch(train)
        hidden = decoder.text_hidden(inputs, encoder.user_text(pieces), condition)
        logits = decoder.text_logits(hidden)[:, 1:]
        loss = F.cross_entropy(logits.flatten(0, 1), pieces.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval(), decoder.eval()
    with torch.no_grad():
        pieces, inputs = batch(test)
        hidden = decoder.text_hidden(inputs, encoder.user_text(pieces), condition)
        guess = decoder.text_logits(hidden)[:, 1:].argmax(-1)
    return float((guess == pieces).float().mean())


def test_the_copy_path_says_back_pieces_never_seen_in_training() -> None:
    pieces = list(range(4, 512))
    train, test = pieces[::2], pieces[1::2]
    copied = said_back(COPY, train, test, 150)
    plain = said_back(TINY, train, test, 150)
    print(f"unseen pieces said back: {copied:.2f} with the copy path, {plain:.2f} without")
    assert copied > 0.15 and plain < 0.05
