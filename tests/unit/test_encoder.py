import random
from dataclasses import replace

import pytest
import torch

from models.config import DEMO, SEED, S2SConfig
from models.s2s.conformer import chunk_mask
from models.s2s.encoder import StreamingEncoder

# SEED's time structure (10 ms steps of 2 frames, chunk 2, window 10, look-ahead 2, kernel 31)
# at a size that keeps the tests fast.
SEED_SMALL = replace(SEED, encoder=replace(SEED.encoder, layers=2, dim=64, heads=4))
# Edge cases: no look-ahead, no left window, no conv context, 3-step chunks.
EDGE = replace(
    DEMO,
    encoder=replace(
        DEMO.encoder,
        layers=2,
        dim=32,
        heads=2,
        lookahead_ms=0,
        window_ms=0,
        conv_kernel=1,
        chunk_ms=60,
    ),
)


def make(config: S2SConfig, seed: int = 0) -> StreamingEncoder:
    torch.manual_seed(seed)
    return StreamingEncoder(config).eval()


def random_codes(config: S2SConfig, steps: int, batch: int = 2) -> torch.Tensor:
    shape = (batch, config.codec.num_quantizers, steps * config.frames_per_step)
    return torch.randint(0, config.codec.codebook_size, shape)


def controls(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(batch) % 4, torch.arange(batch) % 9


def run_stream(
    encoder: StreamingEncoder, codes: torch.Tensor, sizes: list[int], speaker, emotion
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Stream codes in calls of `sizes` steps; -> hidden, logits, outputs after each call."""
    fps = encoder.frames_per_step
    state = encoder.init_state(codes.shape[0])
    hidden, logits, counts, at = [], [], [], 0
    for n in sizes:
        h, lg, state = encoder.stream(
            codes[..., at * fps : (at + n) * fps], state, speaker, emotion
        )
        hidden.append(h)
        logits.append(lg)
        counts.append(h.shape[1])
        at += n
    h, lg = encoder.finish(state, speaker, emotion)
    hidden.append(h)
    logits.append(lg)
    return torch.cat(hidden, dim=1), torch.cat(logits, dim=1), counts


def partition(total: int, rng: random.Random, largest: int) -> list[int]:
    sizes = []
    while total > 0:
        sizes.append(min(total, rng.randint(1, largest)))
        total -= sizes[-1]
    return sizes


def test_shapes_and_eot_logits():
    encoder = make(DEMO)
    codes = random_codes(DEMO, 12)
    with torch.inference_mode():
        hidden, logits = encoder(codes, *controls())
        assert torch.allclose(logits, encoder.eot(hidden).squeeze(-1))
    assert hidden.shape == (2, 12, DEMO.encoder.dim)
    assert logits.shape == (2, 12)
    with pytest.raises(ValueError):
        encoder(codes[..., :-1], *controls())  # not a whole number of steps
    with pytest.raises(ValueError):
        encoder(codes[:, :-1], *controls())  # a codebook missing


def test_chunk_mask_matches_its_definition():
    chunk, window = 3, 4
    q, k = torch.arange(20, 30), torch.arange(10, 30)
    mask = chunk_mask(q, k, chunk, window)
    for a, i in enumerate(q.tolist()):
        c = i // chunk
        for b, j in enumerate(k.tolist()):
            assert mask[a, b] == (c * chunk - window <= j < (c + 1) * chunk)


@pytest.mark.parametrize("config", [DEMO, SEED_SMALL, EDGE], ids=["demo", "seed", "edge"])
def test_streaming_equals_offline(config: S2SConfig):
    encoder = make(config)
    steps = 45
    codes = random_codes(config, steps)
    speaker, emotion = controls()
    rng = random.Random(1)
    partitions = [[1] * steps, [steps]] + [partition(steps, rng, 7) for _ in range(3)]
    with torch.inference_mode():
        hidden, logits = encoder(codes, speaker, emotion)
        for sizes in partitions:
            h, lg, counts = run_stream(encoder, codes, sizes, speaker, emotion)
            assert h.shape == hidden.shape and lg.shape == logits.shape
            assert (h - hidden).abs().max() < 1e-4
            assert (lg - logits).abs().max() < 1e-4
            # every step comes out as soon as its chunk and its look-ahead have arrived
            fed = [sum(sizes[: i + 1]) for i in range(len(sizes))]
            ready = [max(0, n - encoder.lookahead) // encoder.chunk * encoder.chunk for n in fed]
            assert [sum(counts[: i + 1]) for i in range(len(counts))] == ready


def changed(encoder: StreamingEncoder, config: S2SConfig, steps: int) -> torch.Tensor:
    """(steps, steps) boolean: does changing the codes of step j change the output of step i."""
    fps = config.frames_per_step
    base = random_codes(config, steps, batch=1)
    other = random_codes(config, steps, batch=1)
    codes = base.repeat(steps + 1, 1, 1)
    for j in range(steps):
        codes[j, :, j * fps : (j + 1) * fps] = other[0, :, j * fps : (j + 1) * fps]
    speaker = torch.zeros(steps + 1, dtype=torch.long)
    with torch.inference_mode():
        hidden, _ = encoder(codes, speaker, speaker)
    return (hidden[:steps] - hidden[steps:]).abs().amax(dim=-1) > 1e-5


@pytest.mark.parametrize("base", [DEMO, SEED_SMALL], ids=["demo", "seed"])
def test_one_block_sees_exactly_window_chunk_and_lookahead(base: S2SConfig):
    # one block and a 1-tap conv: attention is the only mixing across steps
    config = replace(base, encoder=replace(base.encoder, layers=1, conv_kernel=1))
    encoder = make(config)
    steps = 24
    chunk, window, look = encoder.chunk, encoder.window, encoder.lookahead
    expected = torch.zeros(steps, steps, dtype=torch.bool)
    for i in range(steps):
        start = i // chunk * chunk
        expected[max(0, start - window) : start + chunk + look, i] = True
    assert torch.equal(changed(encoder, config, steps), expected)


@pytest.mark.parametrize("config", [DEMO, SEED_SMALL], ids=["demo", "seed"])
def test_lookahead_does_not_compound_across_layers(config: S2SConfig):
    encoder = make(config)
    steps = 20
    effect = changed(encoder, config, steps)
    for i in range(steps):
        last = (i // encoder.chunk + 1) * encoder.chunk - 1 + encoder.lookahead
        assert not effect[last + 1 :, i].any(), f"step {i} sees past step {last}"
        if last < steps:
            assert effect[last, i] and effect[i, i]


def test_speaker_and_emotion_change_the_output():
    encoder = make(DEMO)
    codes = random_codes(DEMO, 6, batch=1).repeat(3, 1, 1)
    speaker = torch.tensor([0, 1, 0])
    emotion = torch.tensor([0, 0, 2])
    with torch.inference_mode():
        hidden, _ = encoder(codes, speaker, emotion)
    assert ((hidden[1] - hidden[0]).abs().amax(dim=-1) > 1e-3).all()
    assert ((hidden[2] - hidden[0]).abs().amax(dim=-1) > 1e-3).all()


def test_zero_shot_speaker_embeddings():
    encoder = make(DEMO)
    codes = random_codes(DEMO, 10)
    torch.manual_seed(2)
    speaker = torch.randn(2, DEMO.speaker_embedding_dim)
    emotion = torch.zeros(2, dtype=torch.long)
    with torch.inference_mode():
        hidden, logits = encoder(codes, speaker, emotion)
        swapped, _ = encoder(codes, speaker.flip(0), emotion)
        h, lg, _ = run_stream(encoder, codes, [3, 1, 4, 2], speaker, emotion)
    assert hidden.shape == (2, 10, DEMO.encoder.dim) and logits.shape == (2, 10)
    assert (hidden - swapped).abs().amax() > 1e-3
    assert (h - hidden).abs().max() < 1e-4 and (lg - logits).abs().max() < 1e-4


def test_codebooks_have_own_tables_and_frames_of_a_step_are_stacked():
    encoder = make(DEMO)
    codes = random_codes(DEMO, 2, batch=1)
    levels = codes.clone()
    levels[:, [0, 1]] = codes[:, [1, 0]]  # same codes, other codebooks
    frames = codes.clone()
    frames[..., [0, 1]] = codes[..., [1, 0]]  # same frames, other order within step 0
    with torch.inference_mode():
        base = encoder.embed_steps(codes)
        assert (encoder.embed_steps(levels) - base).abs().amax() > 1e-3
        moved = encoder.embed_steps(frames) - base
    assert moved[0, 0].abs().amax() > 1e-3 and moved[0, 1].abs().amax() == 0
