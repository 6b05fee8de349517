"""The responders: what `hear` returns, who may end turns by model, and how the S2S
responder's answers are sampled (bounded in length, reproducible for a seed, whatever other
threads draw from torch)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from agent.config import AgentConfig
from agent.process.metrics import AgentMetrics
from agent.responders import CallOptions, UserTurn, make_responder
from agent.responders.s2s import S2SResponder
from models.asr.stream import transcribe
from models.config import DEMO
from models.controls import emotion_id, speaker_id
from models.data.espeak import synthesize
from models.eval.eot import eot_probabilities
from models.loading import Models, build
from models.speech.audio import MODEL_RATE
from models.speech.turns import TurnConfig
from signaling.calls import CallManager
from signaling.ice import IceConfig

OPTIONS = CallOptions(speaker="female_1", emotion="NEUTRAL")


@pytest.fixture(scope="module")
def untrained() -> Models:
    return build(DEMO, seed=3)


def s2s_answer(models: Models, seed: int | None, max_answer_s: float = 0.3) -> np.ndarray:
    """The S2S responder's answer to 1.28 s of noise heard as one turn, as a call would get it."""
    session = S2SResponder(models, max_answer_s=max_answer_s, seed=seed).open(OPTIONS)
    audio = (0.1 * np.random.default_rng(0).standard_normal(512 * 40)).astype(np.float32)
    for start in range(0, len(audio), 512):
        session.hear(audio[start : start + 512], start)
    return np.concatenate(list(session.respond(UserTurn(1, 0, len(audio)))))


def test_parrot_has_no_end_of_turn_head():
    responder = make_responder("parrot")
    assert not responder.has_eot_head
    assert responder.open(OPTIONS).hear(np.zeros(512, np.float32), 0) is None


def test_a_parrot_without_captions_plays_back_unrecognized():
    """`serve --no-captions`: the parrot has no recognizer, hears nothing as words and still
    plays the turn back."""
    assert make_responder("parrot").recognizer is not None
    responder = make_responder("parrot", captions=False)
    assert responder.recognizer is None
    session = responder.open(OPTIONS)
    audio = (0.2 * np.sin(np.arange(512 * 10) / 5.0)).astype(np.float32)
    for start in range(0, len(audio), 512):
        session.hear(audio[start : start + 512], start)
    assert session.heard() is None
    played = np.concatenate(list(session.respond(UserTurn(1, 0, len(audio)))))
    assert session.said() is None
    np.testing.assert_array_equal(played, audio[len(audio) - len(played) :])
    assert len(played) > len(audio) - 10  # only the quiet lead-in is skipped


def test_s2s_hear_returns_the_heads_probability_of_its_latest_step():
    """Streamed window by window, the probability hear() returns once the encoder has output
    is the offline pass's probability of the latest step it has produced."""
    models = build(DEMO, seed=3)
    responder = S2SResponder(models)
    assert responder.has_eot_head
    session = responder.open(OPTIONS)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(512 * 40)).astype(np.float32)
    returned = [session.hear(audio[i : i + 512], i) for i in range(0, len(audio), 512)]
    assert returned[0] is None  # nothing encoded yet
    assert all(p is not None and 0.0 <= p <= 1.0 for p in returned[-5:])
    speaker, emotion = speaker_id(OPTIONS.speaker), emotion_id(OPTIONS.emotion)
    offline = eot_probabilities(models, audio, speaker, emotion)
    latest = session._steps - 1  # the last step the streaming encoder has produced
    assert returned[-1] == pytest.approx(float(offline[latest]), abs=1e-4)


def test_end_of_turn_by_model_needs_a_responder_with_a_head():
    config = AgentConfig(turns=TurnConfig(eot="model"))
    with pytest.raises(ValueError, match="end-of-turn head"):
        CallManager(make_responder("parrot"), config, AgentMetrics(), IceConfig(), 1)
    CallManager(S2SResponder(build(DEMO)), config, AgentMetrics(), IceConfig(), 1)


def test_s2s_answers_stay_within_max_answer_s_for_every_seed(untrained: Models) -> None:
    for seed in range(4):
        answer = s2s_answer(untrained, seed, max_answer_s=0.5)
        assert 0 < len(answer) <= 0.5 * MODEL_RATE, (seed, len(answer))


def test_a_seeded_s2s_answer_is_the_same_whatever_else_draws_random_numbers(
    untrained: Models,
) -> None:
    """The answer comes from the call's own generator: the same in a worker thread while
    another thread draws from torch's global generator, different for another seed."""
    first = s2s_answer(untrained, seed=5)
    with ThreadPoolExecutor(1) as worker:
        running = worker.submit(s2s_answer, untrained, 5)
        while not running.done():
            torch.rand(1000)
        again = running.result()
    assert np.array_equal(first, again)
    assert not np.array_equal(first, s2s_answer(untrained, seed=6))
    assert not np.array_equal(s2s_answer(untrained, None), s2s_answer(untrained, None))


def test_s2s_with_text_streams_hears_the_words_and_captions_its_text(untrained: Models) -> None:
    """The user text stream is the recognizer's words of the turn (its captions too); the
    answer's captions are the decoded pieces of the decoder's text stream, as they come."""
    assert untrained.recognizer is not None and untrained.tokenizer is not None
    speech = synthesize("నమస్కారం, నా పేరు రాము.", rate=MODEL_RATE)
    audio = np.concatenate([speech, np.zeros(MODEL_RATE // 2, np.float32)]).astype(np.float32)
    expected = transcribe(untrained.recognizer, audio).text
    assert expected, "the recognizer hears nothing in espeak-ng speech"
    session = S2SResponder(untrained, max_answer_s=0.4, seed=1).open(OPTIONS)
    assert session.heard() == "" and session.said() is None
    for start in range(0, len(audio), 512):
        session.hear(audio[start : start + 512], start)
    assert session.heard() == expected
    seen = []
    for _ in session.respond(UserTurn(1, 0, len(audio))):
        seen.append(session.said())
    assert seen[0] is not None and seen[-1] == session.said()
    pieces = untrained.tokenizer.encode(session.said() or "")
    assert untrained.tokenizer.decode(pieces) == session.said()
    assert session.heard() == ""  # the next turn starts a fresh transcript
