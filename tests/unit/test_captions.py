"""Live captions: which texts become caption events, the parrot's captions from the shipped
recognizer, and how the caller's report takes each turn's words from the events."""

from __future__ import annotations

import numpy as np
import pytest

from agent.caller.caller import CallReport, FileTrack, match_turns
from agent.caller.captions import agent_turn, caption_texts
from agent.captions import ELLIPSIS, MAX_CHARS, Captions, clip
from agent.responders import CallOptions, ResponderSession, UserTurn
from agent.responders.parrot import ParrotResponder
from agent.wire import WIRE_FRAME, WIRE_RATE
from models.asr.checkpoint import load_recognizer
from models.asr.errors import ErrorRates
from models.speech.audio import MODEL_RATE
from models.speech.vad import WINDOW
from tests.speech import SENTENCES, conversation

OPTIONS = CallOptions(speaker="female_1", emotion="NEUTRAL")


def test_partial_captions_go_out_when_the_text_changed_and_not_too_often():
    captions = Captions("user", interval_s=0.15)
    assert captions.partial(1, "", 0.0) is None  # nothing heard yet
    assert captions.partial(1, "నమస్కారం", 0.0) == {
        "who": "user",
        "turn": 1,
        "text": "నమస్కారం",
        "final": False,
    }
    assert captions.partial(1, "నమస్కారం", 1.0) is None  # unchanged
    assert captions.partial(1, "నమస్కారం మీరు", 0.1) is None  # too soon
    assert captions.partial(1, "నమస్కారం మీరు", 0.2)["text"] == "నమస్కారం మీరు"


def test_one_final_caption_per_turn_with_the_latest_text():
    captions = Captions("agent", interval_s=0.15)
    captions.partial(2, "ఈ", 0.0)
    captions.partial(2, "ఈ రోజు", 0.05)  # held back, but remembered
    assert captions.final(2, interrupted=True) == {
        "who": "agent",
        "turn": 2,
        "text": "ఈ రోజు",
        "final": True,
        "interrupted": True,
    }
    assert captions.final(2, "ఈ రోజు వాతావరణం") is None  # the turn has its final caption
    assert captions.partial(2, "ఈ రోజు వాతావరణం", 5.0) is None
    assert captions.final(1, "earlier") is None  # an earlier turn is over
    assert captions.final(3) is None  # no text offered for the turn: nothing to say
    assert captions.final(4, "")["text"] == ""  # a turn whose words were none
    assert captions.partial(5, "నాకు", 0.06)["turn"] == 5  # a new turn: no wait


def test_long_captions_keep_their_last_characters():
    text = "అ" * (MAX_CHARS + 10)
    assert clip("చాలా") == "చాలా"
    assert len(clip(text)) == MAX_CHARS
    assert clip(text).startswith(ELLIPSIS)
    assert Captions("user").partial(1, text + "ం", 0.0)["text"].endswith("ం")


def test_responders_without_text_caption_nothing():
    class Silent(ResponderSession):
        def hear(self, window, start_sample):
            return None

        def respond(self, turn):
            yield np.zeros(320, np.float32)

    session = Silent()
    assert session.heard() is None
    assert session.said() is None
    parrot = ParrotResponder().open(OPTIONS)
    parrot.hear(np.zeros(WINDOW, np.float32), 0)
    list(parrot.respond(UserTurn(1, 0, WINDOW)))
    assert parrot.heard() is None and parrot.said() is None


def cer(reference: str, hypothesis: str) -> float:
    rates = ErrorRates()
    rates.add(reference, hypothesis)
    return rates.cer


def test_the_parrot_captions_what_it_hears_and_says_back_with_the_recognizer():
    session = ParrotResponder(load_recognizer()).open(OPTIONS)
    pcm = conversation([0.3, "greeting", 0.6, "weather", 0.6], MODEL_RATE)
    first_end = len(conversation([0.3, "greeting", 0.6], MODEL_RATE))
    heard: list[str] = []
    starts = range(0, len(pcm) - WINDOW + 1, WINDOW)
    turn_end = next(s for s in starts if s >= first_end)
    for start in starts:
        if start == turn_end:
            break
        session.hear(pcm[start : start + WINDOW], start)
        heard.append(session.heard())
    assert heard[0] == ""
    assert cer(SENTENCES["greeting"], heard[-1]) < 0.1, heard[-1]
    assert len(set(heard)) > 3  # the words came as they were spoken

    said: list[str] = []
    for _ in session.respond(UserTurn(1, 0, turn_end)):
        said.append(session.said())
    assert said[0] == ""  # nothing played yet has a whole word
    assert said == sorted(said, key=len) and len(set(said)) > 2
    assert session.said() == heard[-1]  # the whole turn, once played back

    # the next turn's words only
    for start in starts[starts.index(turn_end) :]:
        session.hear(pcm[start : start + WINDOW], start)
    assert cer(SENTENCES["weather"], session.heard()) < 0.1, session.heard()


def test_captions_of_each_turn_are_the_final_ones_or_else_the_last_partial():
    events = [
        {"type": "caption", "who": "user", "turn": 1, "text": "నమ", "final": False},
        {"type": "caption", "who": "user", "turn": 1, "text": "నమస్కారం", "final": True},
        {"type": "caption", "who": "user", "turn": 1, "text": "late", "final": False},
        {"type": "caption", "who": "agent", "turn": 1, "text": "నమ", "final": False},
        {"type": "caption", "who": "user", "turn": 2, "text": "ఈ రోజు", "final": False},
        {"type": "caption", "who": "user", "turn": "3", "text": "bad turn"},
        {"type": "latency", "turn": 1, "text": "not a caption"},
    ]
    assert caption_texts(events, "user") == {1: "నమస్కారం", 2: "ఈ రోజు"}
    assert caption_texts(events, "agent") == {1: "నమ"}


def test_a_report_turn_takes_the_captions_of_the_agent_turn_that_ended_after_it():
    """The caller's turns count its file's speech; the agent's count what its VAD heard (here
    a cough became turn 1), so captions go by when the agent ended a turn."""
    track = FileTrack(np.zeros(WIRE_FRAME * 300, np.float32))
    track.sent_at = [100.0 + i * 0.02 for i in range(300)]
    segments = [(WIRE_RATE // 2, WIRE_RATE), (3 * WIRE_RATE, 4 * WIRE_RATE)]  # ends: 101, 104 s
    events = [
        (100.2, {"type": "speech_stopped", "turn": 1}),
        (101.6, {"type": "speech_stopped", "turn": 2}),
        (101.61, {"type": "caption", "who": "user", "turn": 2, "text": "నమస్కారం", "final": True}),
        (101.7, {"type": "caption", "who": "agent", "turn": 2, "text": "నమ", "final": False}),
        (102.0, {"type": "caption", "who": "agent", "turn": 2, "text": "నమస్కారం", "final": True}),
        (104.7, {"type": "speech_stopped", "turn": 3}),
        (104.8, {"type": "caption", "who": "user", "turn": 3, "text": "ఈ రోజు", "final": False}),
    ]
    first, second = match_turns(track, segments, [], events)
    assert (first.user_text, first.agent_text) == ("నమస్కారం", "నమస్కారం")
    assert (second.user_text, second.agent_text) == ("ఈ రోజు", None)
    assert agent_turn(events, 105.0, float("inf")) is None
    assert match_turns(track, segments, [], [])[0].user_text is None


@pytest.mark.parametrize("who", ["user", "agent"])
def test_the_report_json_carries_the_turns_words(who):
    track = FileTrack(np.zeros(WIRE_FRAME * 100, np.float32))
    track.sent_at = [i * 0.02 for i in range(100)]
    events = [
        (1.5, {"type": "speech_stopped", "turn": 1}),
        (1.6, {"type": "caption", "who": who, "turn": 1, "text": "నాకు", "final": True}),
    ]
    turns = match_turns(track, [(0, WIRE_RATE)], [], events)
    report = CallReport("id", turns, [e for _, e in events], None).to_json()
    other = "agent" if who == "user" else "user"
    assert report["turns"][0][f"{who}_text"] == "నాకు"
    assert report["turns"][0][f"{other}_text"] is None
