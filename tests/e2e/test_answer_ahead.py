"""Predictive pre-generation over a real call: a turn that pauses and goes on gets one answer,
to the whole turn; the answer started in its inner pause is thrown away (and reported), the
one started in the final pause is the answer (and reported)."""

from __future__ import annotations

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.caller.caller import call, speech_segments
from agent.config import AgentConfig
from agent.wire import WIRE_RATE
from tests.conftest import start_agent
from tests.speech import conversation, envelope_similarity

pytestmark = pytest.mark.slow


async def _answers_ahead(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "telugu_s2s_answers_ahead"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def test_a_turn_that_pauses_and_goes_on_gets_one_answer_to_the_whole_turn():
    agent, runner = await start_agent(AgentConfig())  # answers ahead after 96 ms of pause
    try:
        # espeak leaves 350 ms between the sentences: a pause, not an end of turn (576 ms)
        turn = conversation([0.5, "greeting", "weather", 2.5], WIRE_RATE)
        report, heard = await call(agent.url, turn)
        counted = await _answers_ahead(agent.url)
    finally:
        await runner.cleanup()
    outcomes = [e["outcome"] for e in report.events if e["type"] == "answer_ahead"]
    assert "discarded" in outcomes and outcomes[-1] == "used", outcomes
    assert counted.get("discarded", 0) >= 1 and counted.get("used") == 1, counted
    (latency,) = [e for e in report.events if e["type"] == "latency"]
    assert latency["ahead"] is True
    # one answer, and it is the whole turn (both sentences and the pause between them)
    assert len(report.turns) == 1 and report.answered == 1, report.to_json()
    (start, end), *_ = speech_segments(turn, gap_ms=700)
    said = turn[start:end]
    assert abs(report.turns[0].answer_duration_ms - 1000 * len(said) / WIRE_RATE) < 300
    answer_start = speech_segments(heard, gap_ms=300)[0][0]
    answer = heard[answer_start : answer_start + len(said)]
    assert envelope_similarity(said, answer, WIRE_RATE) > 0.8


async def test_with_answers_ahead_off_none_is_started():
    agent, runner = await start_agent(AgentConfig(answer_ahead_ms=None))
    try:
        turn = conversation([0.5, "greeting", 2.5], WIRE_RATE)
        report, _ = await call(agent.url, turn)
        counted = await _answers_ahead(agent.url)
    finally:
        await runner.cleanup()
    assert report.answered == 1
    assert not [e for e in report.events if e["type"] == "answer_ahead"]
    assert not any(counted.values())
    (latency,) = [e for e in report.events if e["type"] == "latency"]
    assert latency["ahead"] is False
    assert np.isfinite(latency["stages"]["respond"])
