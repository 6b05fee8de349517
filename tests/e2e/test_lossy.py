"""Calls over an impaired link (agent/caller/impairment.py): 100 ms RTT, ±30 ms jitter, 10 % loss
each way, against the real agent. The agent receives the impaired stream on its own sockets."""

from __future__ import annotations

import numpy as np
import pytest

from agent.caller.caller import call, speech_segments
from agent.caller.impairment import PROFILES, ImpairmentUnavailable
from agent.config import AgentConfig
from agent.wire import WIRE_RATE
from signaling.app import METRICS
from tests.conftest import start_agent
from tests.speech import conversation, envelope_similarity

pytestmark = pytest.mark.slow

LOSSY = PROFILES["rtt100-jitter30-loss10"]
MAX_STALL_MS = 250.0
"""Longest wait between decoded answer frames we accept: 60 ms of jitter spread, the
reordering window and a loaded 2-core machine; a stalled receive path waits seconds."""


@pytest.fixture(scope="module")
def greeting() -> np.ndarray:
    return conversation([0.5, "greeting", 2.5], WIRE_RATE)


def spoken(pcm: np.ndarray) -> np.ndarray:
    (start, end), *_ = speech_segments(pcm, gap_ms=700)
    return pcm[start:end]


def agent_concealed(agent) -> float:  # noqa: ANN001 - tests.conftest.RunningAgent
    counter = agent.app[METRICS].concealed_frames
    return sum(counter.labels(how=how)._value.get() for how in ("plc", "fec"))


async def call_over_loss(greeting: np.ndarray, config: AgentConfig, caller_jitter: str):
    agent, runner = await start_agent(config)
    try:
        try:
            report, heard = await call(
                agent.url,
                greeting,
                link=LOSSY,
                jitter=caller_jitter,
                opus_fec=config.opus_fec,
            )
        except ImpairmentUnavailable as exc:
            pytest.skip(f"cannot impair the link here: {exc}")
        return report, heard, agent_concealed(agent)
    finally:
        await runner.cleanup()


async def test_answer_over_10_percent_loss_is_whole_and_concealed(greeting):
    report, heard, agent_rebuilt = await call_over_loss(greeting, AgentConfig(), "adaptive")
    assert report.answered == 1
    turn = report.turns[0]
    dropped = report.link["uplink"]["dropped"] + report.link["downlink"]["dropped"]
    assert dropped > 20  # the link really lost packets, both ways
    assert report.link["uplink"]["dropped"] and report.link["downlink"]["dropped"]
    assert agent_rebuilt > 0  # the agent concealed what it lost
    assert report.client_concealment["plc"] + report.client_concealment["fec"] > 0
    assert report.client_concealment["fec"] > 0  # the agent's answer carried FEC
    continuity = turn.continuity
    assert continuity is not None
    assert continuity.missing_ms == 0.0  # every lost answer frame was rebuilt
    assert continuity.rebuilt_frames > 0
    assert continuity.stall_ms < MAX_STALL_MS
    said = spoken(greeting)
    answer_start = speech_segments(heard, gap_ms=300)[0][0]
    answer = heard[answer_start : answer_start + len(said)]
    assert envelope_similarity(said, answer, WIRE_RATE) > 0.7
    assert abs(turn.answer_duration_ms - 1000 * len(said) / WIRE_RATE) < 300


async def test_without_concealment_the_same_link_leaves_holes(greeting):
    """The measurement can fail: with the previous receive path the answer has gaps."""
    config = AgentConfig(jitter="skip", opus_fec=False)
    report, _, agent_rebuilt = await call_over_loss(greeting, config, "skip")
    assert report.answered == 1
    assert agent_rebuilt == 0
    assert report.turns[0].continuity.missing_ms >= 60.0
