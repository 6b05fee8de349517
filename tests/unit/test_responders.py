"""The responders' end-of-turn seam: what `hear` returns, and who may end turns by model."""

import numpy as np
import pytest

from agent.config import AgentConfig
from agent.process.metrics import AgentMetrics
from agent.responders import CallOptions, make_responder
from agent.responders.s2s import S2SResponder
from models.config import DEMO
from models.controls import emotion_id, speaker_id
from models.eval.eot import eot_probabilities
from models.loading import build
from models.speech.turns import TurnConfig
from signaling.calls import CallManager
from signaling.ice import IceConfig

OPTIONS = CallOptions(speaker="female_1", emotion="NEUTRAL")


def test_parrot_has_no_end_of_turn_head():
    responder = make_responder("parrot")
    assert not responder.has_eot_head
    assert responder.open(OPTIONS).hear(np.zeros(512, np.float32), 0) is None


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
