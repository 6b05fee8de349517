"""Listening to several calls as one batch gives each call what listening to it alone gives:
the codec's codes, the encoder's end-of-turn probabilities and the decoder memory, for calls
that started at different moments (streams at different steps and cache lengths)."""

import numpy as np
import pytest
import torch

from agent.responders import CallOptions
from agent.responders.codec import CodeRecorder, encode_windows
from agent.responders.s2s import S2SResponder, S2SSession
from models.config import DEMO
from models.loading import Models, build
from models.speech.vad import WINDOW

CALLS = (
    (CallOptions("female_1", "NEUTRAL"), 0),
    (CallOptions("male_1", "HAPPY"), 3),
    (CallOptions("female_2", "EMPATHY"), 9),
    (CallOptions("male_2", "NEUTRAL"), 9),
)
"""Each call's options and the window at which it joins the batch."""
WINDOWS = 24


@pytest.fixture(scope="module")
def models() -> Models:
    return build(DEMO, seed=5)


def audio(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(WINDOW * WINDOWS)).astype(np.float32)


def window(pcm: np.ndarray, index: int) -> np.ndarray:
    return pcm[index * WINDOW : (index + 1) * WINDOW]


def memory(session: S2SSession) -> torch.Tensor:
    return torch.cat([keys for _, keys, _ in session._memory], dim=3)


def test_codec_codes_are_the_same_batched_and_alone(models):
    clips = [audio(i) for i in range(3)]
    alone = [CodeRecorder(models.codec) for _ in clips]
    batched = [CodeRecorder(models.codec) for _ in clips]
    for index in range(WINDOWS):
        for recorder, clip in zip(alone, clips, strict=True):
            recorder.hear(window(clip, index))
        joined = [i for i in range(len(clips)) if index >= 2 * i]  # calls join later
        encode_windows(
            [batched[i] for i in joined], [window(clips[i], index - 2 * i) for i in joined]
        )
    for i, (one, many) in enumerate(zip(alone, batched, strict=True)):
        frames = many.frames
        assert frames > 0
        assert torch.equal(one.codes(0, frames), many.codes(0, frames)), f"call {i}"


def test_encoder_outputs_are_the_same_batched_and_alone(models):
    responder = S2SResponder(models, seed=0)
    alone = [responder.open(options) for options, _ in CALLS]
    batched = [responder.open(options) for options, _ in CALLS]
    clips = [audio(10 + i) for i in range(len(CALLS))]
    alone_probs: list[list[float | None]] = [[] for _ in CALLS]
    batched_probs: list[list[float | None]] = [[] for _ in CALLS]
    for index in range(WINDOWS + 9):
        for i, (_, joins) in enumerate(CALLS):
            if joins <= index < joins + WINDOWS:
                alone_probs[i].append(alone[i].hear(window(clips[i], index - joins), 0))
        rows = [i for i, (_, joins) in enumerate(CALLS) if joins <= index < joins + WINDOWS]
        probs = responder.hear_batch(
            [batched[i] for i in rows],
            [window(clips[i], index - CALLS[i][1]) for i in rows],
            [0] * len(rows),
        )
        for i, prob in zip(rows, probs, strict=True):
            batched_probs[i].append(prob)
        if index == 12:  # the batch holds calls at different steps
            assert len({batched[i]._encoder_state.position for i in rows}) == 3
    for i in range(len(CALLS)):
        one, many = alone[i], batched[i]
        assert one._steps == many._steps > 0
        torch.testing.assert_close(memory(many), memory(one), atol=1e-5, rtol=1e-4)
        assert [p is None for p in alone_probs[i]] == [p is None for p in batched_probs[i]]
        np.testing.assert_allclose(
            [p for p in batched_probs[i] if p is not None],
            [p for p in alone_probs[i] if p is not None],
            atol=1e-5,
        )
