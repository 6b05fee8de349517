"""The shipped demo model hears a held-out question with a slot value it never heard in
training, in a real call: the recognizer's words of the turn reach the decoder's memory and
the events channel, and the decoder's text stream (what it means to say) comes back as the
agent's captions, and in the caller's report.

The question is a test-split wording of the ticket intent with a test-split city (never heard
or said in training), rendered as the corpus renders user turns."""

from __future__ import annotations

import numpy as np
import pytest

from agent.caller.caller import call
from agent.responders.s2s import S2SResponder
from agent.wire import WIRE_RATE
from models.asr.errors import ErrorRates
from models.data.slots import SLOT_INTENTS, values_for
from models.data.synth import SLOT_VALUES, render_user
from models.data.voices import SHIPPED_PERSONAS
from models.data.wording import wording_splits
from models.loading import DEMO_CHECKPOINT, load
from models.speech.audio import MODEL_RATE, resample
from tests.conftest import start_agent

pytestmark = pytest.mark.slow

TELUGU = range(0x0C00, 0x0C80)


def held_out_question(intent_name: str) -> tuple[str, str, np.ndarray]:
    """(transcript, slot value, 48 kHz audio with silence around it) of a test-split wording
    of the intent with a test-split value."""
    intent = next(i for i in SLOT_INTENTS if i.name == intent_name)
    value = values_for(intent.slot, SLOT_VALUES)["test"][0]
    splits = wording_splits(intent.name, intent.templates)
    template = next(i for i, t in enumerate(intent.templates) if splits[t] == "test")
    text, pcm = render_user(
        intent.say(template, value), SHIPPED_PERSONAS["male_2"], np.random.default_rng(5)
    )
    audio = np.concatenate([np.zeros(MODEL_RATE // 2), pcm, np.zeros(3 * MODEL_RATE)])
    return text, value, resample(audio.astype(np.float32), MODEL_RATE, WIRE_RATE)


def cer(reference: str, hypothesis: str) -> float:
    rates = ErrorRates()
    rates.add(reference, hypothesis)
    return rates.cer


async def test_a_held_out_slot_question_is_heard_and_both_sides_are_captioned():
    text, value, pcm = held_out_question("ticket")
    models = load(DEMO_CHECKPOINT)
    assert models.config.text.enabled and models.recognizer is not None
    agent, runner = await start_agent(responder=S2SResponder(models, seed=0))
    try:
        report, _ = await call(agent.url, pcm, "male_2", "NEUTRAL")
    finally:
        await runner.cleanup()
    assert report.answered == 1, report.to_json()
    events = [e for e in report.events if e["type"] == "caption"]
    user = [e for e in events if e["who"] == "user"]
    agent_side = [e for e in events if e["who"] == "agent"]
    # the user's words, partial while they speak, final at the end of the turn
    assert user and user[-1]["final"] and not any(e["final"] for e in user[:-1])
    heard = user[-1]["text"]
    assert cer(text, heard) < 0.3, (text, heard)
    # the agent's words: its text stream, in Telugu script, one final caption
    said = agent_side[-1]
    assert said["final"] is True and said["interrupted"] is False, agent_side
    assert said["text"] and all(ord(c) in TELUGU or c == " " for c in said["text"]), said
    assert report.turns[0].user_text == heard and report.turns[0].agent_text == said["text"]
