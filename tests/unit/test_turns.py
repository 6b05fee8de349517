import numpy as np
import pytest

from models.speech.turns import Pause, TurnConfig, TurnDetector, TurnEventKind
from models.speech.vad import WINDOW, SileroVAD
from tests.speech import conversation, silence, synthesize


def run(detector: TurnDetector, probs: list[float], eot: list[float | None] | None = None):
    events = []
    for i, p in enumerate(probs):
        event = detector.update(p, now=i * 0.032, eot_prob=None if eot is None else eot[i])
        if event is not None:
            events.append((i, event))
    return events


def test_turn_starts_after_min_speech_and_ends_after_min_silence():
    config = TurnConfig(min_speech_ms=96, min_silence_ms=320, speech_pad_ms=64)
    events = run(TurnDetector(config), [0.0] * 5 + [0.9] * 20 + [0.05] * 15)
    (i_start, start), (i_end, end) = events
    assert start.kind is TurnEventKind.SPEECH_STARTED and i_start == 7  # 3rd speech window
    assert start.start_sample == 5 * WINDOW - 64 * 16
    assert end.kind is TurnEventKind.END_OF_TURN and i_end == 25 + 9  # 10th silent window
    assert end.end_sample == 25 * WINDOW
    assert end.speech_end_time == pytest.approx(24 * 0.032)


def test_short_blips_do_not_start_a_turn_and_pauses_do_not_end_it():
    config = TurnConfig(min_speech_ms=96, min_silence_ms=320)
    probs = [0.9, 0.9, 0.1] * 3 + [0.9] * 10 + [0.1] * 5 + [0.9] * 10 + [0.1] * 12
    events = run(TurnDetector(config), probs)
    assert [e.kind for _, e in events] == [TurnEventKind.SPEECH_STARTED, TurnEventKind.END_OF_TURN]


def test_a_pause_is_the_turn_as_it_would_end():
    """pause() during an internal silence names the END_OF_TURN the silence would give; speech
    coming back ends the pause and moves the end; after the turn there is none."""
    config = TurnConfig(min_speech_ms=96, min_silence_ms=320, speech_pad_ms=64)
    detector = TurnDetector(config)
    run(detector, [0.0] * 5 + [0.9] * 10)
    assert detector.pause() is None  # speaking
    run(detector, [0.05] * 3)
    assert detector.pause() == Pause(1, 5 * WINDOW - 64 * 16, 15 * WINDOW, 96)
    run(detector, [0.9] * 4 + [0.05])
    assert detector.pause() == Pause(1, 5 * WINDOW - 64 * 16, 22 * WINDOW, 32)
    ((_, end),) = run(detector, [0.05] * 9)
    assert end.kind is TurnEventKind.END_OF_TURN and end.end_sample == 22 * WINDOW
    assert detector.pause() is None


def test_windows_between_thresholds_continue_speech_but_not_silence():
    config = TurnConfig(threshold=0.5, min_speech_ms=32, min_silence_ms=96)
    detector = TurnDetector(config)
    # speech, then in-between values (0.4 >= neg 0.35): still speech, no end
    assert [e.kind for _, e in run(detector, [0.9] + [0.4] * 10)] == [TurnEventKind.SPEECH_STARTED]
    # a silence has begun: in-between windows no longer count as speech
    events = run(detector, [0.1, 0.4, 0.4])
    assert [e.kind for _, e in events] == [TurnEventKind.END_OF_TURN]


def test_model_eot_ends_a_turn_early_only_in_silence_and_above_threshold():
    config = TurnConfig(
        min_speech_ms=32,
        min_silence_ms=320,
        eot="model",
        eot_threshold=0.8,
        model_min_silence_ms=64,
    )
    probs = [0.9] * 5 + [0.05] * 12
    # confident during speech: ignored; in silence it ends the turn at the 2nd silent window
    eot = [0.95] * 5 + [0.5, 0.95, 0.95] + [0.95] * 9
    (_, _), (i_end, end) = run(TurnDetector(config), probs, eot)
    assert end.kind is TurnEventKind.END_OF_TURN and i_end == 6
    assert end.end_sample == 5 * WINDOW
    # below the threshold the silence rule still ends the turn (10th silent window)
    (_, _), (i_end, _) = run(TurnDetector(config), probs, [0.7] * 17)
    assert i_end == 5 + 9
    # a responder without a head (None) and the 'silence' mode never end early
    (_, _), (i_end, _) = run(TurnDetector(config), probs, [None] * 17)
    assert i_end == 5 + 9
    silence_mode = TurnConfig(min_speech_ms=32, min_silence_ms=320)
    (_, _), (i_end, _) = run(TurnDetector(silence_mode), probs, eot)
    assert i_end == 5 + 9


@pytest.fixture(scope="module")
def telugu_turn() -> np.ndarray:
    return conversation([0.6, "greeting", 1.2], 16_000)


def test_silero_finds_one_turn_in_synthesized_telugu(telugu_turn):
    vad, detector = SileroVAD(), TurnDetector(TurnConfig())
    events = []
    for i in range(len(telugu_turn) // WINDOW):
        event = detector.update(vad.prob(telugu_turn[i * WINDOW : (i + 1) * WINDOW]), i * 0.032)
        if event:
            events.append(event)
    assert [e.kind for e in events] == [TurnEventKind.SPEECH_STARTED, TurnEventKind.END_OF_TURN]
    loud = np.flatnonzero(np.abs(telugu_turn) > 0.01)
    assert abs(events[0].start_sample - loud[0]) < 0.15 * 16_000
    assert abs(events[1].end_sample - loud[-1]) < 0.15 * 16_000


def test_silero_stays_quiet_on_silence_and_noise():
    rng = np.random.default_rng(0)
    audio = np.concatenate([silence(1.0, 16_000), 0.003 * rng.standard_normal(32_000)])
    vad, detector = SileroVAD(), TurnDetector(TurnConfig())
    probs = [
        vad.prob(audio[i : i + WINDOW].astype(np.float32))
        for i in range(0, len(audio) - WINDOW + 1, WINDOW)
    ]
    assert max(probs) < 0.5
    assert run(detector, probs) == []


def test_vad_state_is_per_instance():
    speech = synthesize("నమస్కారం", 16_000)
    a, b = SileroVAD(), SileroVAD()
    for i in range(len(speech) // WINDOW):
        a.prob(speech[i * WINDOW : (i + 1) * WINDOW])
    quiet = np.zeros(WINDOW, dtype=np.float32)
    fresh = SileroVAD()
    assert b.prob(quiet) == pytest.approx(fresh.prob(quiet), abs=1e-6)
