"""The model responders in a real call (untrained demo weights: the latency path is real,
the answer is not). How long an S2S answer may be is checked on the responder itself, for
several seeds (tests/unit/test_responders.py): here the answer's length is wall-clock time,
which grows when a busy machine generates slower than real time."""

from __future__ import annotations

import numpy as np
import pytest

from agent.caller.caller import call
from agent.responders.codec import CodecResponder
from agent.responders.s2s import S2SResponder
from agent.wire import WIRE_RATE
from models.config import DEMO
from models.loading import build
from tests.conftest import start_agent
from tests.speech import conversation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_models():
    return build(DEMO)


@pytest.fixture(scope="module")
def greeting() -> np.ndarray:
    return conversation([0.5, "greeting", 2.5], WIRE_RATE)


@pytest.mark.parametrize("kind", ["codec", "s2s"])
async def test_model_responder_answers_a_call(kind, demo_models, greeting):
    responder = (
        CodecResponder(demo_models)
        if kind == "codec"
        else S2SResponder(demo_models, max_answer_s=1.0, seed=0)
    )
    agent, runner = await start_agent(responder=responder)
    try:
        report, heard = await call(agent.url, greeting)
    finally:
        await runner.cleanup()
    assert report.answered == 1, report.to_json()
    turn = report.turns[0]
    assert {"eot_wait", "respond", "speech_end_to_rtp"} <= set(turn.server)
    assert turn.answer_duration_ms > 100
