"""Fewer codec levels in silence: the quiet level-0 codes found from the codec, decoding with a
per-frame level mask (streamed as offline), the code head computing levels 1.. only for the
rows that need them, and answers that leave the finer levels of their quiet steps out: the
same as answers with every level up to their first quiet step."""

from __future__ import annotations

import pytest
import torch

from models.codec import TeluCodec
from models.codec.quiet import QuietCodes, find_quiet_codes
from models.config import DEMO
from models.loading import DEMO_CHECKPOINT, Models, build, load
from models.s2s.answer_draw import levels_present
from models.s2s.sampling import ANSWERS, GREEDY, Sampling

HOP = DEMO.codec.hop
Q, G, CODES = DEMO.codec.num_quantizers, DEMO.frames_per_step, DEMO.codec.codebook_size


@pytest.fixture(scope="module")
def codec() -> TeluCodec:
    torch.manual_seed(0)
    return TeluCodec(DEMO.codec).eval()


@pytest.fixture(scope="module")
def models() -> Models:
    models = build(DEMO, seed=5)
    with torch.no_grad():  # never EOS: every answer runs to its max_steps
        bias = models.decoder.output.bias.view(Q, -1)
        bias[0, models.decoder.vocab.eos] = -1e4
    return models


def random_codes(frames: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, CODES, (batch, Q, frames), generator=generator)


def test_the_shipped_codecs_quiet_codes_are_its_silences_and_found_the_same_each_time():
    codec = load(DEMO_CHECKPOINT, "demo").codec
    first, again = find_quiet_codes(codec), find_quiet_codes(codec)
    assert torch.equal(first.quiet, again.quiet) and torch.equal(first.fill, again.fill)
    assert codec.quiet_codes is codec.quiet_codes  # found once per loaded codec
    assert 0 < int(first.quiet.sum()) < CODES // 8
    assert first.fill.shape == (Q - 1,)
    silence = codec.encode(torch.zeros(1, 100 * HOP), levels=1)
    assert bool(first.is_quiet(silence).all())
    t = torch.arange(100 * HOP) / DEMO.codec.sample_rate
    envelope = 0.1 * (2 + torch.sin(2 * torch.pi * 3 * t))  # -23 to -13 dBFS
    loud = codec.encode((envelope * torch.sin(2 * torch.pi * 220 * t))[None], levels=1)[0, 0]
    assert not bool(first.is_quiet(loud).any())


def test_is_quiet_reads_special_ids_as_not_quiet():
    quiet = QuietCodes(torch.ones(CODES, dtype=torch.bool), torch.zeros(Q - 1, dtype=torch.long))
    assert quiet.is_quiet(torch.tensor([0, CODES - 1, CODES, CODES + 1])).tolist() == [
        True,
        True,
        False,
        False,
    ]


def test_a_mask_of_every_level_decodes_as_without_one(codec):
    codes = random_codes(24)
    every = torch.ones_like(codes, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(codec.decode(codes, every), codec.decode(codes))


def test_left_out_levels_are_not_in_the_frames_latent(codec):
    codes = random_codes(24)
    present = torch.ones_like(codes, dtype=torch.bool)
    present[:, 1:] = False
    marked = codes.masked_fill(~present, CODES)  # what is left out is never read
    with torch.no_grad():
        assert torch.equal(codec.decode(marked, present), codec.decode(codes[:, :1]))
        present[:, 1:, ::2] = True
        mixed = codec.quantizer.decode(codes, present)
        coarse = codec.quantizer.decode(codes[:, :1])
        full = codec.quantizer.decode(codes)
    assert torch.equal(mixed[..., ::2], full[..., ::2])
    assert torch.equal(mixed[..., 1::2], coarse[..., 1::2])


def test_streaming_with_a_mask_equals_offline(codec):
    codes = random_codes(40, seed=1)
    present = torch.rand(codes.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    present[:, 0] = True
    with torch.no_grad():
        whole = codec.decode(codes, present)
        state, pieces = None, []
        for start in range(0, 40, G):
            chunk = slice(start, start + G)
            pcm, state = codec.decode_stream(codes[..., chunk], state, present[..., chunk])
            pieces.append(pcm)
    torch.testing.assert_close(torch.cat(pieces, -1), whole, rtol=0, atol=1e-4)
    with torch.no_grad():
        assert not torch.allclose(codec.decode(codes), whole, atol=1e-3)


def test_the_code_head_computes_finer_levels_for_the_rows_that_need_them(models):
    decoder = models.decoder
    x = torch.randn(3, DEMO.decoder.dim, generator=torch.Generator().manual_seed(0))
    fine = torch.tensor([True, False, True])
    with torch.inference_mode():
        every = decoder.project_step(x)
        some = decoder.project_step(x, fine)
    torch.testing.assert_close(some[fine], every[fine], rtol=0, atol=1e-5)
    torch.testing.assert_close(some[~fine, 0], every[~fine, 0], rtol=0, atol=1e-5)
    assert bool((some[~fine, 1:] == 0).all())


def a_quiet_table(models: Models, quiet_share: int) -> QuietCodes:
    """Level-0 codes below `quiet_share` / 4 of the codebook called quiet (a random model's
    own quiet codes are too few to test with)."""
    quiet = torch.arange(CODES) < quiet_share * CODES // 4
    return QuietCodes(quiet, models.codec.quiet_codes.fill)


def generate(models: Models, sampling: Sampling, quiet: QuietCodes | None, steps: int = 24):
    hidden = torch.randn(1, 9, DEMO.encoder.dim, generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(7)
    speaker, emotion = torch.tensor([1]), torch.tensor([2])
    with torch.inference_mode():
        return list(
            models.decoder.generate_steps(
                hidden, speaker, emotion, sampling, generator, steps, quiet=quiet
            )
        )


@pytest.mark.parametrize("sampling", [GREEDY, ANSWERS], ids=["greedy", "guided"])
def test_answers_leave_out_exactly_their_quiet_steps_and_agree_until_the_first(models, sampling):
    quiet = a_quiet_table(models, 3)
    every, fewer = generate(models, sampling, None), generate(models, sampling, quiet)
    silent = [bool(quiet.is_quiet(s.codes[0, 0]).all()) for s in fewer]
    assert any(silent) and not all(silent)
    for step, is_silent in zip(fewer, silent, strict=True):
        left_out = levels_present(step.codes, models.decoder.vocab)
        assert (left_out is not None) == is_silent
        if is_silent:
            assert bool((step.codes[0, 1:] == models.decoder.vocab.pad).all())
    first = silent.index(True)
    for mine, theirs in zip(fewer[:first], every[:first], strict=True):
        assert torch.equal(mine.codes, theirs.codes)
        assert torch.equal(mine.text, theirs.text)
    assert torch.equal(fewer[first].codes[:, 0], every[first].codes[:, 0])
    assert torch.equal(fewer[first].text, every[first].text)
    assert not bool(every[first].codes[0, 1:].ge(CODES).any())  # off: every level drawn


def count_head_rows(models: Models, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows that go through the whole code head (every level), counted as they do."""
    head, rows = models.decoder.output, [0]
    forward = head.forward

    def counting(x: torch.Tensor) -> torch.Tensor:
        rows[0] += x.shape[:-1].numel()
        return forward(x)

    monkeypatch.setattr(head, "forward", counting)
    return rows


def test_quiet_steps_skip_the_finer_head_and_read_back_the_fill_codes(models, monkeypatch):
    quiet = a_quiet_table(models, 3)
    decoder, seen = models.decoder, []
    step = decoder.step_logits

    def recording(cache, tokens, text=None, fine=None):
        seen.append(tokens.clone())
        return step(cache, tokens, text, fine)

    monkeypatch.setattr(decoder, "step_logits", recording)
    rows = count_head_rows(models, monkeypatch)
    steps = generate(models, GREEDY, quiet)
    silent = [bool(quiet.is_quiet(s.codes[0, 0]).all()) for s in steps]
    assert len(seen) == len(steps) + 1 and 0 < sum(silent) < len(steps)
    assert rows[0] == len(seen) - sum(silent)  # positions whose finer slots are all quiet
    for t, is_silent in enumerate(silent[:-1]):
        fine_input = seen[t + 2][0, 1:, :]  # drawn at position t + 1, read at t + 2
        if is_silent:
            assert torch.equal(fine_input, quiet.fill[:, None].expand(-1, G))
        else:
            assert torch.equal(fine_input, steps[t].codes[0, 1:])
