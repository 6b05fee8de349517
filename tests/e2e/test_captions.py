"""Live captions in real calls: the parrot agent (captioned by the shipped recognizer) sends
the user's words and its own as they stream, and the caller's report carries them per turn."""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
import pytest

from agent.caller.caller import call
from agent.config import AgentConfig
from agent.wire import WIRE_RATE
from models.asr.errors import ErrorRates
from models.speech.audio import write_audio
from tests.conftest import start_agent
from tests.speech import SENTENCES, conversation

pytestmark = pytest.mark.slow

TELUGU = range(0x0C00, 0x0C80)


def cer(reference: str, hypothesis: str) -> float:
    rates = ErrorRates()
    rates.add(reference, hypothesis)
    return rates.cer


def captions(events: list[dict], who: str, turn: int) -> list[dict]:
    return [e for e in events if e["type"] == "caption" and e["who"] == who and e["turn"] == turn]


@pytest.fixture(scope="module")
def two_turns() -> np.ndarray:
    return conversation([0.5, "greeting", 2.5, "weather", 2.5], WIRE_RATE)


async def test_captions_stream_each_turns_words_and_the_report_carries_them(agent, two_turns):
    report, _ = await call(agent.url, two_turns)
    events = report.events
    for turn, sentence in ((1, "greeting"), (2, "weather")):
        user, said = captions(events, "user", turn), captions(events, "agent", turn)
        # partial captions while the user spoke, growing, then one final caption at the end
        *partials, final = user
        assert partials and not any(e["final"] for e in partials), user
        assert final["final"] is True
        stopped = events.index({"type": "speech_stopped", "turn": turn})
        assert events.index(partials[0]) < stopped < events.index(final)
        assert len({e["text"] for e in partials}) > 1
        # the agent's words as it said them back, then its final caption
        assert said[-1]["final"] is True and said[-1]["interrupted"] is False, said
        assert [e["final"] for e in said].count(True) == 1
        assert cer(SENTENCES[sentence], final["text"]) < 0.25, final["text"]
        assert said[-1]["text"] == final["text"]
        assert all(ord(c) in TELUGU or c == " " for c in final["text"])
        assert report.turns[turn - 1].user_text == final["text"]
        assert report.turns[turn - 1].agent_text == said[-1]["text"]
    for event in events:
        if event["type"] == "caption":
            assert set(event) - {"interrupted"} == {"type", "who", "turn", "text", "final"}


async def test_an_answer_cut_by_barge_in_gets_a_final_caption_marked_interrupted():
    """A small answer buffer keeps the parrot generating while it plays, so the user's second
    turn (1 s into the answer) stops the generation with part of the words said."""
    pcm = conversation([0.5, "cricket", 1.6, "food", 3.0], WIRE_RATE)
    agent, runner = await start_agent(AgentConfig(answer_buffer_s=0.5))
    try:
        report, _ = await call(agent.url, pcm)
    finally:
        await runner.cleanup()
    first, second = captions(report.events, "agent", 1), captions(report.events, "agent", 2)
    assert first[-1]["final"] is True and first[-1]["interrupted"] is True
    assert second[-1]["final"] is True and second[-1]["interrupted"] is False
    heard = captions(report.events, "user", 1)[-1]["text"]
    assert first[-1]["text"] and len(first[-1]["text"]) < len(heard)
    assert heard.startswith(first[-1]["text"])  # the words played back before the cut
    assert cer(SENTENCES["food"], second[-1]["text"]) < 0.25


async def test_the_call_command_prints_each_turns_words(agent, two_turns, tmp_path):
    clip = tmp_path / "two-turns.wav"
    write_audio(clip, two_turns, WIRE_RATE)

    async def call(*extra: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signaling.cli",
            "call",
            agent.url,
            "--audio",
            str(clip),
            *extra,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await proc.communicate()
        assert proc.returncode == 0
        return stdout.decode()

    outputs = await asyncio.gather(call("--json"), call())  # two calls at once: real time
    first, second = json.loads(outputs[0])["turns"]
    assert cer(SENTENCES["greeting"], first["user_text"]) < 0.25, first
    assert cer(SENTENCES["weather"], second["user_text"]) < 0.25, second
    assert (first["agent_text"], second["agent_text"]) == (first["user_text"], second["user_text"])
    printed = outputs[1].splitlines()
    assert sum(line.startswith("  user: ") for line in printed) == 2
    assert sum(line.startswith("  agent: ") for line in printed) == 2
