"""Answers stepped together as rows of one batch are the answers each call gets alone: the
same codes (drawn from each call's own generator), the same text tokens and the same audio,
for calls that start at different moments, with and without guidance, in named and zero-shot
voices, with every level and with the finer levels of quiet steps left out (rows that need
them and rows that do not in one step); an answer cancelled midway frees its rows without
disturbing the others."""

import numpy as np
import pytest
import torch

from agent.responders.answering import AnsweringThread
from models.codec.quiet import QuietCodes
from models.config import DEMO
from models.controls import emotion_id, speaker_id
from models.loading import Models, build
from models.s2s.answer_draw import levels_present
from models.s2s.kv_cache import MemoryCache
from models.s2s.sampling import ANSWERS, GREEDY, Sampling
from tests.unit.test_fewer_levels import count_head_rows

STEPS = 14
VOICE = torch.nn.functional.normalize(
    torch.randn(256, generator=torch.Generator().manual_seed(9)), dim=0
)
"""A zero-shot voice: a unit speaker embedding, as models.speaker gives."""
CALLS = (
    ("female_1", "NEUTRAL", 7),
    (VOICE, "HAPPY", 12),
    ("female_2", "EMPATHY", 30),
)
"""Each call's voice (a named one, or a speaker embedding), emotion and turn memory length
(steps)."""


@pytest.fixture(scope="module")
def models() -> Models:
    models = build(DEMO, seed=5)
    with torch.no_grad():  # never EOS: every answer runs to STEPS (an untrained model may stop)
        bias = models.decoder.output.bias.view(models.decoder.quantizers, -1)
        bias[0, models.decoder.vocab.eos] = -1e4
    return models


def turn_memory(models: Models, steps: int, seed: int) -> MemoryCache:
    hidden = torch.randn(
        1, steps, models.config.encoder.dim, generator=torch.Generator().manual_seed(seed)
    )
    with torch.inference_mode():
        return models.decoder.project_memory(hidden)


def controls(speaker: str | torch.Tensor, emotion: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The speaker as a named voice's index (1,) or a zero-shot embedding (1, 256)."""
    voice = torch.tensor([speaker_id(speaker)]) if isinstance(speaker, str) else speaker[None]
    return voice, torch.tensor([emotion_id(emotion)])


def quiet_codes(models: Models) -> QuietCodes:
    """Three quarters of the level-0 codes called quiet: about a third of a random model's
    steps are then quiet (its codec's own quiet codes are too few to test with)."""
    quiet = (
        torch.arange(models.codec.config.codebook_size) < models.codec.config.codebook_size * 3 // 4
    )
    return QuietCodes(quiet, models.codec.quiet_codes.fill)


def alone(
    models: Models, call: int, sampling: Sampling, quiet: QuietCodes | None = None
) -> tuple[list, np.ndarray]:
    speaker, emotion, steps = CALLS[call]
    generator = torch.Generator().manual_seed(100 + call)
    codec_state = None
    answer, pcm = [], []
    with torch.inference_mode():
        for step in models.decoder.generate_steps(
            turn_memory(models, steps, call),
            *controls(speaker, emotion),
            sampling,
            generator,
            max_steps=STEPS,
            quiet=quiet,
        ):
            answer.append(step)
            present = levels_present(step.codes, models.decoder.vocab)
            chunk, codec_state = models.codec.decode_stream(step.codes, codec_state, present)
            pcm.append(chunk[0].numpy())
    return answer, np.concatenate(pcm)


@pytest.mark.parametrize("fewer_levels", [False, True], ids=["every-level", "fewer-levels"])
@pytest.mark.parametrize("sampling", [GREEDY, ANSWERS], ids=["greedy", "guided"])
def test_batched_answers_equal_the_answers_alone(models, sampling, fewer_levels, monkeypatch):
    quiet = quiet_codes(models) if fewer_levels else None
    head_rows = count_head_rows(models, monkeypatch)
    thread = AnsweringThread(models, step_s=0.02, lead_s=10.0, quiet=quiet)
    answers, readers = [], []
    for call, (speaker, emotion, steps) in enumerate(CALLS):
        for reader in readers:  # the earlier calls move on first: rows at different positions
            for _ in range(3):
                next(reader)
        answer = thread.start(
            turn_memory(models, steps, call),
            *controls(speaker, emotion),
            sampling,
            torch.Generator().manual_seed(100 + call),
            STEPS,
        )
        answers.append(answer)
        readers.append(answer.read())
    got = []
    for answer in answers:
        got.append(list(answer.read()))
    left_out = [
        levels_present(s.codes, models.decoder.vocab) is not None for g in got for _, s in g
    ]
    assert any(left_out) == fewer_levels and not all(left_out)
    batched_rows, silent_steps = head_rows[0], 0
    for call in range(len(CALLS)):
        expected, expected_pcm = alone(models, call, sampling, quiet)
        silent_steps += sum(
            levels_present(s.codes, models.decoder.vocab) is not None for s in expected
        )
        # the chunks read above came out of the same queue: rebuild the whole answer
        steps = [step for _, step in got[call]]
        assert len(steps) == STEPS - 3 * (len(CALLS) - 1 - call)
        tail = expected[len(expected) - len(steps) :]
        for mine, theirs in zip(steps, tail, strict=True):
            assert torch.equal(mine.codes, theirs.codes)
            assert (mine.text is None) == (theirs.text is None)
            if mine.text is not None:
                assert torch.equal(mine.text, theirs.text)
        pcm = np.concatenate([chunk for chunk, _ in got[call]])
        np.testing.assert_allclose(pcm, expected_pcm[len(expected_pcm) - len(pcm) :], atol=1e-4)
    assert thread.answers == 0
    rows = 1 if sampling.guidance == 1 else 2  # per answer
    assert batched_rows == rows * (len(CALLS) * (STEPS + 1) - silent_steps)


def test_a_cancelled_answer_leaves_the_others_as_they_were(models):
    thread = AnsweringThread(models, step_s=0.05, lead_s=0.1)  # paced: 2 steps ahead
    started = []
    for call, (speaker, emotion, steps) in enumerate(CALLS):
        started.append(
            thread.start(
                turn_memory(models, steps, call),
                *controls(speaker, emotion),
                GREEDY,
                None,
                STEPS,
            )
        )
    first = started[1].read()
    next(first)
    thread.cancel(started[1])
    assert len(list(first)) < STEPS - 1  # ended early
    for call in (0, 2):
        steps = [step for _, step in started[call].read()]
        expected, _ = alone(models, call, GREEDY)
        assert [s.codes.tolist() for s in steps] == [s.codes.tolist() for s in expected]
    assert thread.answers == 0
