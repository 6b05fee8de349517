"""StreamingDecoder: delay pattern, cached vs uncached decoding, memory streaming, generation."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from models.config import DEMO, S2SConfig, TextConfig
from models.s2s.answer_draw import TEXT_NEVER
from models.s2s.decoder import StreamingDecoder
from models.s2s.delay import (
    TEXT_END,
    TEXT_IGNORE,
    TEXT_PAD,
    Vocabulary,
    append_eos,
    apply_delay,
    check_delays,
    text_inputs,
    text_targets,
    undo_delay,
)
from models.s2s.sampling import GREEDY, Sampling

Q = DEMO.codec.num_quantizers
G = DEMO.frames_per_step
CODES = DEMO.codec.codebook_size
VOCAB = Vocabulary(CODES)
MEMORY_DIM = DEMO.encoder.dim
GUIDED = replace(GREEDY, guidance=3.0)
CODES_ONLY = replace(DEMO, text=TextConfig())
"""The design document's decoder: codes only, no text stream."""


@pytest.fixture(scope="module")
def decoder() -> StreamingDecoder:
    torch.manual_seed(0)
    return StreamingDecoder(CODES_ONLY).eval()


def never_ending(config: S2SConfig) -> StreamingDecoder:
    """A decoder of `config` that never picks EOS, so generation runs to max_steps."""
    torch.manual_seed(0)
    model = StreamingDecoder(config).eval()
    with torch.no_grad():
        model.output.bias.view(Q, G, -1)[0, 0, VOCAB.eos] = -1e4
    return model


@pytest.fixture(scope="module")
def no_eos_decoder() -> StreamingDecoder:
    return never_ending(CODES_ONLY)


def inputs(batch: int = 2, steps: int = 5, memory: int = 9, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, CODES, (batch, Q, steps * G), generator=gen)
    encoded = torch.randn(batch, memory, MEMORY_DIM, generator=gen)
    speaker = torch.arange(batch) % len(DEMO.speakers)
    emotion = torch.arange(batch) % len(DEMO.emotions)
    return codes, encoded, speaker, emotion


def test_shapes(decoder: StreamingDecoder) -> None:
    codes, memory, speaker, emotion = inputs(batch=2, steps=5)
    with torch.no_grad():
        logits = decoder(codes, memory, speaker, emotion)
        assert logits.shape == (2, Q, 6 * G, VOCAB.size)  # 5 steps + the EOS step
        cache = decoder.new_cache(decoder.project_memory(memory), speaker, emotion)
        step_logits = decoder.step(cache, torch.full((2, Q, G), VOCAB.pad))
    assert step_logits.shape == (2, Q, G, VOCAB.size)
    assert cache.length == 1 and int(cache.position) == 1
    steps = list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=3))
    assert len(steps) == 3
    assert all(s.shape == (2, Q, G) and s.dtype == torch.long for s in steps)
    with pytest.raises(ValueError, match="multiple"):
        decoder(codes[..., :-1], memory, speaker, emotion)


@pytest.mark.parametrize(
    "delays", [tuple(range(Q)), (0,) + (1,) * (Q - 1), (0, 0, 1, 1, 2, 2, 3, 3)]
)
def test_delay_pattern_places_codebooks_and_round_trips(delays) -> None:
    steps = torch.randint(0, CODES, (2, Q, 6, G))
    delayed = apply_delay(steps, VOCAB.pad, delays)
    assert delayed.shape == (2, Q, 6 + max(delays), G)
    for q, d in enumerate(delays):
        assert torch.equal(delayed[:, q, d : d + 6], steps[:, q])
        assert (delayed[:, q, :d] == VOCAB.pad).all()
        assert (delayed[:, q, d + 6 :] == VOCAB.pad).all()
    assert torch.equal(undo_delay(delayed, delays), steps)
    logits = torch.randn(2, Q, 6 + max(delays), G, 3)  # trailing dims ride along
    round_trip = apply_delay(undo_delay(logits, delays), 0.0, delays)
    assert torch.equal(round_trip[:, -1, delays[-1] : 6], logits[:, -1, delays[-1] : 6])


def test_delays_are_validated() -> None:
    with pytest.raises(ValueError, match="codebook delays"):
        check_delays((1,) * Q, Q)
    with pytest.raises(ValueError, match="codebook delays"):
        check_delays((0, 2, 1, 1, 1, 1, 1, 1), Q)
    with pytest.raises(ValueError, match="8 codebooks"):
        check_delays((0, 1), Q)


def test_eos_step_and_lengths() -> None:
    steps = torch.randint(0, CODES, (2, Q, 4, G))
    out = append_eos(steps, VOCAB, torch.tensor([4, 2]))
    assert out.shape == (2, Q, 5, G)
    assert torch.equal(out[0, :, :4], steps[0]) and (out[0, :, 4] == VOCAB.eos).all()
    assert torch.equal(out[1, :, :2], steps[1, :, :2]) and (out[1, :, 2] == VOCAB.eos).all()
    assert (out[1, :, 3:] == VOCAB.pad).all()


def test_teacher_forced_logits_equal_cached_steps(decoder: StreamingDecoder) -> None:
    codes, memory, speaker, emotion = inputs(batch=2, steps=6)
    mask = torch.ones(2, memory.shape[1], dtype=torch.bool)
    mask[1, -3:] = False  # the second sample's memory is padded
    with torch.no_grad():
        forced = decoder(codes, memory, speaker, emotion, memory_mask=mask)
        delayed = decoder.inputs(codes)
        for static in (False, True):
            cache = decoder.new_cache(
                decoder.project_memory(memory, mask), speaker, emotion, static=static
            )
            stepped = torch.stack(
                [decoder.step(cache, delayed[:, :, p]) for p in range(delayed.shape[2])], dim=2
            )
            cached = undo_delay(stepped, decoder.delays).flatten(2, 3)
            assert cached.shape == forced.shape
            torch.testing.assert_close(cached, forced, atol=1e-4, rtol=1e-4)
        unmasked = decoder(codes, memory, speaker, emotion)
    assert not torch.allclose(unmasked[1], forced[1], atol=1e-3)  # the mask matters


def test_incremental_memory_equals_whole(decoder: StreamingDecoder) -> None:
    _, memory, speaker, emotion = inputs(batch=2, memory=20)
    mask = torch.rand(2, 20, generator=torch.Generator().manual_seed(3)) > 0.3
    mask[:, 0] = True
    with torch.no_grad():
        whole = decoder.project_memory(memory, mask)
        streamed = decoder.new_memory(2, capacity=32)
        for start, end in ((0, 7), (7, 8), (8, 20)):
            decoder.append_memory(streamed, memory[:, start:end], mask[:, start:end])
        assert streamed.length == whole.length == 20
        torch.testing.assert_close(streamed.keys[:, :, :, :20], whole.keys)
        torch.testing.assert_close(streamed.values[:, :, :, :20], whole.values)
        assert torch.equal(streamed.valid[:, :20], whole.valid)
        tokens = torch.randint(0, CODES, (2, Q, G))
        a = decoder.step(decoder.new_cache(whole, speaker, emotion), tokens)
        b = decoder.step(decoder.new_cache(streamed, speaker, emotion), tokens)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="capacity"):
            decoder.append_memory(streamed, memory[:, :13])


def test_cached_greedy_generation_equals_uncached_recomputation(
    no_eos_decoder: StreamingDecoder,
) -> None:
    decoder, n_steps = no_eos_decoder, 20
    _, memory, speaker, emotion = inputs(batch=1, memory=15)
    generated = list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=n_steps))
    assert len(generated) == n_steps

    delays = torch.tensor(decoder.delays)
    positions = n_steps + decoder.max_delay
    delayed = torch.full((1, Q, positions, G), VOCAB.pad)
    with torch.no_grad():
        condition = decoder.conditioning(speaker, emotion)
        for p in range(positions):
            model_inputs = torch.cat([torch.full((1, Q, 1, G), VOCAB.pad), delayed[:, :, :p]], 2)
            logits = decoder.logits(model_inputs, memory, condition)[:, :, p]
            tokens = logits[..., :CODES].argmax(-1)
            tokens[:, delays > p] = VOCAB.pad  # codebooks that have not started yet
            delayed[:, :, p] = tokens
    expected = undo_delay(delayed, decoder.delays)
    assert torch.equal(torch.stack(generated, dim=2), expected)


def test_guided_generation_equals_uncached_guided_recomputation() -> None:
    torch.manual_seed(0)
    decoder = StreamingDecoder(CODES_ONLY).eval()
    with torch.no_grad():
        decoder.output.bias.view(Q, G, -1)[0, 0, VOCAB.eos] = -1e4
        decoder.null_condition.normal_()  # as after training with condition dropout
    n_steps, guidance = 12, 3.0
    _, memory, speaker, emotion = inputs(batch=1, memory=15)
    guided = list(decoder.generate_stream(memory, speaker, emotion, GUIDED, max_steps=n_steps))
    plain = list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=n_steps))
    assert not torch.equal(torch.stack(guided), torch.stack(plain))

    delays = torch.tensor(decoder.delays)
    positions = n_steps + decoder.max_delay
    delayed = torch.full((1, Q, positions, G), VOCAB.pad)
    with torch.no_grad():
        condition = decoder.conditioning(speaker, emotion)
        null = decoder.null_condition.expand_as(condition)
        for p in range(positions):
            model_inputs = torch.cat([torch.full((1, Q, 1, G), VOCAB.pad), delayed[:, :, :p]], 2)
            conditioned = decoder.logits(model_inputs, memory, condition)[:, :, p]
            unconditioned = decoder.logits(model_inputs, memory, null)[:, :, p]
            logits = unconditioned + guidance * (conditioned - unconditioned)
            tokens = logits[..., :CODES].argmax(-1)
            tokens[:, delays > p] = VOCAB.pad
            delayed[:, :, p] = tokens
    assert torch.equal(torch.stack(guided, dim=2), undo_delay(delayed, decoder.delays))


def test_condition_dropout_uses_the_null_condition_in_training_only() -> None:
    torch.manual_seed(0)
    decoder = StreamingDecoder(CODES_ONLY)
    with torch.no_grad():
        decoder.null_condition.normal_()
    speaker, emotion = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3])
    conditioned = decoder.conditioning(speaker, emotion)
    decoder.train()
    all_null = decoder.condition(speaker, emotion, dropout=1.0)
    assert torch.equal(all_null, decoder.null_condition.expand_as(conditioned))
    assert torch.equal(decoder.condition(speaker, emotion, dropout=0.0), conditioned)
    some = decoder.condition(torch.zeros(2000, dtype=torch.long), torch.zeros(2000).long(), 0.2)
    dropped = (some == decoder.null_condition).all(dim=1).float().mean()
    assert 0.15 < float(dropped) < 0.25
    decoder.eval()
    assert torch.equal(decoder.condition(speaker, emotion, dropout=1.0), conditioned)


def test_eos_ends_generation_and_feeds_back_like_training(
    decoder: StreamingDecoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, memory, speaker, emotion = inputs(batch=1)
    eos_at, seen = 5, []
    step = decoder.step_logits

    def step_with_eos(cache, tokens, text=None, fine=None):
        seen.append(tokens.clone())
        logits, text_logits = step(cache, tokens, text, fine)
        logits[..., VOCAB.pad :] = 1e4  # specials where they are not allowed: never picked
        logits[:, 0, 0, VOCAB.eos] = 1e4 if cache.length - 1 == eos_at else -1e4
        return logits, text_logits

    monkeypatch.setattr(decoder, "step_logits", step_with_eos)
    generated = list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=50))
    assert len(generated) == eos_at
    assert all(bool((s < CODES).all()) for s in generated)
    assert len(seen) == eos_at + decoder.max_delay  # no step after the last code is out
    codes = torch.stack(generated, dim=2).flatten(2)
    expected_inputs = decoder.inputs(codes)[:, :, : len(seen)]
    assert torch.equal(torch.stack(seen, dim=2), expected_inputs)


def test_batched_generation_runs_until_every_sample_ends(
    decoder: StreamingDecoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, memory, speaker, emotion = inputs(batch=2)
    eos_at = torch.tensor([3, 5])
    step = decoder.step_logits

    def step_with_eos(cache, tokens, text=None, fine=None):
        logits, text_logits = step(cache, tokens, text, fine)
        logits[..., VOCAB.eos] = -1e4
        logits[eos_at == cache.length - 1, 0, 0, VOCAB.eos] = 1e4
        return logits, text_logits

    monkeypatch.setattr(decoder, "step_logits", step_with_eos)
    generated = torch.stack(list(decoder.generate_stream(memory, speaker, emotion, GREEDY)), dim=2)
    assert generated.shape == (2, Q, 5, G)
    assert (generated[0, :, :3] < CODES).all() and (generated[1] < CODES).all()
    assert (generated[0, :, 3] == VOCAB.eos).all() and (generated[0, :, 4] == VOCAB.pad).all()


def test_top_k_one_equals_greedy(decoder: StreamingDecoder) -> None:
    _, memory, speaker, emotion = inputs(batch=2)
    greedy = list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=6))
    top1 = list(
        decoder.generate_stream(
            memory, speaker, emotion, Sampling(1.0, 1, 1.0), torch.Generator(), max_steps=6
        )
    )
    assert len(greedy) == 6 and torch.equal(torch.stack(greedy), torch.stack(top1))


def test_seeded_sampling_is_reproducible(decoder: StreamingDecoder) -> None:
    _, memory, speaker, emotion = inputs(batch=1)

    def run(seed: int, top_k: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        steps = decoder.generate_stream(
            memory, speaker, emotion, Sampling(1.0, top_k, 1.0), gen, max_steps=6
        )
        return torch.stack(list(steps))

    first, again, other = run(7), run(7), run(8)
    greedy = torch.stack(
        list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=6))
    )
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, greedy)
    assert torch.equal(run(7, top_k=20), run(7, top_k=20))


def test_loss_is_finite_backpropagates_and_includes_eos() -> None:
    torch.manual_seed(0)
    decoder = StreamingDecoder(CODES_ONLY).train()
    codes, memory, speaker, emotion = inputs(batch=2, steps=4)
    lengths = torch.tensor([4, 3])
    logits = decoder(codes, memory, speaker, emotion, lengths=lengths)
    loss, per_codebook = decoder.loss(logits, codes, lengths)
    assert torch.isfinite(loss)
    assert sorted(per_codebook) == [f"codebook_{q}" for q in range(Q)]
    torch.testing.assert_close(loss.detach(), torch.stack(list(per_codebook.values())).mean())
    loss.backward()
    for name in ("embeddings.weight", "output.weight", "layers.0.cross_kv.weight"):
        grad = decoder.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name

    targets = decoder.targets(codes, lengths)  # perfect logits: near-zero loss...
    perfect = torch.full((*targets.shape, VOCAB.size), -30.0).scatter(-1, targets[..., None], 30.0)
    assert decoder.loss(perfect, codes, lengths)[0] < 1e-6
    wrong_eos = perfect.clone()  # ...unless the EOS step is predicted wrong
    wrong_eos[0, :, 4 * G :] = perfect[0, :, :G]
    assert decoder.loss(wrong_eos, codes, lengths)[0] > 1.0


def test_generation_arguments_are_checked(decoder: StreamingDecoder) -> None:
    _, memory, speaker, emotion = inputs(batch=1)
    with pytest.raises(ValueError, match="CUDA"):
        decoder.generate_stream(memory, speaker, emotion, GREEDY, use_cuda_graph=True)
    with pytest.raises(ValueError, match="temperature"):
        Sampling(-1.0, None, 1.0)
    with pytest.raises(ValueError, match="top_k"):
        Sampling(1.0, 0, 1.0)
    with pytest.raises(ValueError, match="top_k"):
        decoder.generate_stream(memory, speaker, emotion, Sampling(1.0, VOCAB.size + 1, 1.0))
    with pytest.raises(ValueError, match="guidance"):
        Sampling(1.0, None, 0.5)
    with pytest.raises(ValueError, match="Generator"):  # never torch's global random state
        decoder.generate_stream(memory, speaker, emotion, Sampling(1.0, None, 1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_generation_equals_eager() -> None:
    torch.manual_seed(0)
    decoder = StreamingDecoder(CODES_ONLY).eval().cuda()
    _, memory, speaker, emotion = (t.cuda() for t in inputs(batch=1))
    eager = list(decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=12))
    graph = list(
        decoder.generate_stream(memory, speaker, emotion, GREEDY, max_steps=12, use_cuda_graph=True)
    )
    assert len(eager) == len(graph) > 0
    assert torch.equal(torch.stack(eager), torch.stack(graph))
    guided = [
        torch.stack(
            list(
                decoder.generate_stream(
                    memory, speaker, emotion, GUIDED, max_steps=12, use_cuda_graph=g
                )
            )
        )
        for g in (False, True)
    ]
    assert torch.equal(guided[0], guided[1])


def test_input_dropout_hides_the_previous_codes_in_training_only() -> None:
    config = replace(CODES_ONLY, decoder=replace(DEMO.decoder, dropout=0.0))
    torch.manual_seed(0)
    model = StreamingDecoder(config).train()
    codes, encoded, speaker, emotion = inputs()
    other = torch.randint(0, CODES, codes.shape, generator=torch.Generator().manual_seed(2))
    condition = model.conditioning(speaker, emotion)

    def logits(answer: torch.Tensor, dropout: float) -> torch.Tensor:
        return model.logits(model.inputs(answer), encoded, condition, input_dropout=dropout)

    # every input dropped: the logits depend on the memory and conditioning only
    assert torch.allclose(logits(codes, 1.0), logits(other, 1.0))
    assert not torch.allclose(logits(codes, 0.0), logits(other, 0.0))
    model.eval()  # inference never drops: the streaming path stays equal to this one
    assert torch.equal(logits(codes, 1.0), logits(codes, 0.0))


# -- the text stream (inner monologue) ---------------------------------------------------


@pytest.fixture(scope="module")
def text_decoder() -> StreamingDecoder:
    """A decoder with a text stream that never picks EOS (generation runs to max_steps)."""
    return never_ending(DEMO)


def test_text_stream_teacher_forced_equals_cached_steps(text_decoder: StreamingDecoder) -> None:
    decoder = text_decoder
    codes, memory, speaker, emotion = inputs(batch=2, steps=6)
    text = torch.randint(
        5, DEMO.text.vocab_size, (2, 6), generator=torch.Generator().manual_seed(4)
    )
    lengths = torch.tensor([6, 4])
    with torch.no_grad():
        delayed = decoder.inputs(codes, lengths)
        goal = text_targets(text, lengths, delayed.shape[2])
        text_in = text_inputs(goal)
        condition = decoder.conditioning(speaker, emotion)
        states = decoder.hidden(delayed, memory, condition, text=text_in)
        forced_codes = decoder.project_codes(states)
        forced_text = decoder.text_logits(states)
        cache = decoder.new_cache(decoder.project_memory(memory), speaker, emotion)
        for p in range(delayed.shape[2]):
            step_codes, step_text = decoder.step_logits(cache, delayed[:, :, p], text_in[:, p])
            torch.testing.assert_close(step_codes, forced_codes[:, :, p], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(step_text, forced_text[:, p], atol=1e-4, rtol=1e-4)
        # the text read back changes what comes next: it is an input, not decoration
        other = decoder.hidden(delayed, memory, condition, text=text_inputs(goal.roll(1, 0)))
    assert not torch.allclose(decoder.project_codes(other), forced_codes, atol=1e-3)
    # the text targets: each answer's steps, PAD at its EOS step, ignored after
    assert goal[1, :4].tolist() == text[1, :4].tolist() and goal[1, 4] == TEXT_END
    assert (goal[1, 5:] == TEXT_IGNORE).all() and goal[0, 6] == TEXT_END


def test_text_stream_greedy_generation_equals_uncached_recomputation(
    text_decoder: StreamingDecoder,
) -> None:
    decoder, n_steps = text_decoder, 12
    _, memory, speaker, emotion = inputs(batch=1, memory=15)
    generated = list(decoder.generate_steps(memory, speaker, emotion, GREEDY, max_steps=n_steps))
    assert len(generated) == n_steps and all(s.text is not None for s in generated)
    delays = torch.tensor(decoder.delays)
    positions = n_steps + decoder.max_delay
    delayed = torch.full((1, Q, positions, G), VOCAB.pad)
    text = torch.full((1, positions), TEXT_PAD)
    never = torch.tensor(list(TEXT_NEVER))
    with torch.no_grad():
        condition = decoder.conditioning(speaker, emotion)
        for p in range(positions):
            model_inputs = torch.cat([torch.full((1, Q, 1, G), VOCAB.pad), delayed[:, :, :p]], 2)
            text_in = torch.cat([torch.full((1, 1), TEXT_PAD), text[:, :p]], 1)
            states = decoder.hidden(model_inputs, memory, condition, text=text_in)
            tokens = decoder.project_codes(states)[:, :, p][..., :CODES].argmax(-1)
            tokens[:, delays > p] = VOCAB.pad
            delayed[:, :, p] = tokens
            text_logits = decoder.text_logits(states)[:, p]
            text_logits[:, never] = float("-inf")
            text[:, p] = text_logits.argmax(-1)
    expected = undo_delay(delayed, decoder.delays)
    assert torch.equal(
        torch.stack([s.codes for s in generated], dim=2).flatten(3), expected.flatten(3)
    )
    assert torch.equal(torch.stack([s.text for s in generated], dim=1), text[:, :n_steps])
    assert not set(text.flatten().tolist()) & set(TEXT_NEVER)


def test_text_stream_needs_its_tokens() -> None:
    decoder = StreamingDecoder(DEMO).eval()
    codes, memory, speaker, emotion = inputs(batch=1, steps=2)
    with pytest.raises(ValueError, match="text"):
        decoder(codes, memory, speaker, emotion)
    with pytest.raises(ValueError, match="no text stream"):
        StreamingDecoder(CODES_ONLY)(codes, memory, speaker, emotion, text=torch.zeros(1, 2).long())
