"""Answers started ahead of the end of turn (predictive pre-generation): the answering thread
keeps only a held answer's first steps until it is released; committed, an answer started
ahead is exactly the answer the end of turn would have started (and so are the answers after
it); thrown away, it leaves the session as if it had never been started."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from agent.ahead import Prefixed, prepare
from agent.responders import CallOptions, UserTurn, make_responder
from agent.responders.answering import AnsweringThread
from agent.responders.s2s import S2SResponder
from models.config import DEMO
from models.loading import Models, build
from models.s2s.sampling import ANSWERS
from tests.unit.test_batched_answering import controls, turn_memory

OPTIONS = CallOptions("female_1", "NEUTRAL")
LEAD_S = 0.1
STEP_S = 0.02


@pytest.fixture(scope="module")
def models() -> Models:
    models = build(DEMO, seed=5)
    with torch.no_grad():  # never EOS: every answer runs to its max_steps
        bias = models.decoder.output.bias.view(models.decoder.quantizers, -1)
        bias[0, models.decoder.vocab.eos] = -1e4
    return models


def _settle(answer, limit_s: float = 10.0) -> int:
    """Steps the thread has produced for `answer` once it stops producing (or after limit_s)."""
    deadline = time.monotonic() + limit_s
    produced = -1
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if answer.produced == produced:
            return produced
        produced = answer.produced
    return produced


def test_a_held_answer_keeps_its_lead_until_released(models: Models) -> None:
    thread = AnsweringThread(models, STEP_S, lead_s=LEAD_S)
    try:
        answer = thread.start(
            turn_memory(models, 10, 0),
            *controls("female_1", "NEUTRAL"),
            ANSWERS,
            torch.Generator().manual_seed(0),
            max_steps=40,
            held=True,
        )
        lead = round(LEAD_S / STEP_S)
        assert _settle(answer) == lead  # held: its first steps, then nothing
        thread.release(answer)
        chunks = list(answer.read())
        assert len(chunks) == 40 and answer.produced == 40
    finally:
        thread.stop()


def _heard_session(models: Models):
    session = S2SResponder(models, max_answer_s=0.6, seed=11).open(OPTIONS)
    audio = (0.1 * np.random.default_rng(0).standard_normal(512 * 40)).astype(np.float32)
    for start in range(0, len(audio), 512):
        session.hear(audio[start : start + 512], start)
    return session, UserTurn(1, 0, len(audio))


def _answer(chunks) -> np.ndarray:
    return np.concatenate(list(chunks))


def test_an_s2s_answer_started_ahead_is_the_answer_the_end_of_turn_gives(models: Models) -> None:
    plain, turn = _heard_session(models)
    first, then = _answer(plain.respond(turn)), _answer(plain.respond(turn))

    ahead_session, _ = _heard_session(models)
    prepared = prepare(ahead_session, turn)
    assert prepared is not None
    answer, ready = prepared
    assert len(ready) == 1
    assert answer.commit()
    np.testing.assert_array_equal(_answer(Prefixed(ready, answer.chunks)), first)
    # the random draws went on from where the committed answer left them
    np.testing.assert_array_equal(_answer(ahead_session.respond(turn)), then)


def test_an_s2s_answer_thrown_away_leaves_the_session_untouched(models: Models) -> None:
    plain, turn = _heard_session(models)
    expected = _answer(plain.respond(turn))
    session, _ = _heard_session(models)
    prepared = prepare(session, turn)
    assert prepared is not None
    prepared[0].chunks.close()
    assert _gone(session)
    np.testing.assert_array_equal(_answer(session.respond(turn)), expected)


def _gone(session) -> bool:
    """The answering thread has dropped the cancelled answer's rows (within a second)."""
    deadline = time.monotonic() + 1.0
    while session._answering.answers and time.monotonic() < deadline:
        time.sleep(0.01)
    return session._answering.answers == 0


def test_a_parrot_answer_ahead_plays_the_turn_and_commits_its_words() -> None:
    parrot = make_responder("parrot")
    session = parrot.open(OPTIONS)
    rng = np.random.default_rng(1)
    audio = (0.2 * rng.standard_normal(512 * 20)).astype(np.float32)
    for start in range(0, len(audio), 512):
        session.hear(audio[start : start + 512], start)
    turn = UserTurn(1, 0, len(audio))
    prepared = prepare(session, turn)
    assert prepared is not None
    answer, ready = prepared
    assert answer.commit()
    played = _answer(Prefixed(ready, answer.chunks))
    np.testing.assert_array_equal(played, audio[len(audio) - len(played) :])
    assert session.said() is not None  # the words of the turn it played (none: noise)


def test_prefixed_chunks_close_what_they_read_from() -> None:
    closed = []

    def rest():
        try:
            yield np.ones(2, np.float32)
            yield np.ones(2, np.float32)
        finally:
            closed.append(True)

    chunks = Prefixed([np.zeros(2, np.float32)], rest())
    assert next(chunks).sum() == 0 and next(chunks).sum() == 2
    chunks.close()
    assert closed == [True]
