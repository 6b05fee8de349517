"""The content end-of-turn head: its pauses, its checkpoint, and the agent hearing a call the
way training streamed the corpus (the same probabilities, window by window)."""

import asyncio
import time

import numpy as np
import pytest
import torch

from agent.config import AgentConfig
from agent.listening import CallListener, Heard, ListeningThread
from agent.process.metrics import AgentMetrics
from agent.responders import CallOptions
from agent.responders.parrot import ParrotResponder
from models.asr.checkpoint import load_recognizer
from models.asr.endpoint import (
    EndpointConfig,
    Endpointer,
    EndpointHead,
    load_endpoint,
    save_endpoint,
)
from models.asr.features import LogMel
from models.checkpoints import CheckpointError
from models.speech.audio import MODEL_RATE, write_audio
from models.speech.turns import TurnConfig
from models.speech.vad import WINDOW, SileroVAD
from models.train.endpoint import head_probs, stream_turn
from signaling.calls import CallManager
from signaling.ice import IceConfig
from tests.speech import conversation

CONFIG = EndpointConfig(hidden=8, mels=80, window=400, hop=160, recognizer_sha256="x")


def test_the_endpointer_asks_once_per_pause_and_counts_its_silence():
    rng = np.random.default_rng(0)
    endpointer = Endpointer(CONFIG)
    probs = [0.9] * 5 + [0.0] * 4 + [0.9] * 3 + [0.0] * 3
    pcm = [rng.standard_normal(WINDOW).astype(np.float32) for _ in probs]
    asked = []
    inputs = []
    for k, (prob, window) in enumerate(zip(probs, pcm, strict=True)):

        def spoken(k: int = k) -> torch.Tensor:
            asked.append(k)
            return torch.full((8,), float(k))

        inputs.append(endpointer.features(prob, window, spoken))
    assert asked == [5, 12]  # the first window of each pause
    assert all(x is None for x in inputs[:5] + inputs[9:12])
    silences = [round(float(x[-1]), 3) for x in inputs[5:9]]
    assert silences == [0.032, 0.064, 0.096, 0.128]
    first = inputs[5]
    assert np.all(first[:8] == 5.0)  # what was said, as of the pause's start
    size = 50 * 160 + 240  # the speech before the pause, zeros before the stream
    tail = np.concatenate([np.zeros(size, np.float32), *pcm[:5]])[-size:]
    mel = LogMel(400, 160, 80, MODEL_RATE).frames(torch.from_numpy(tail)[None])[0]
    pooled = mel.reshape(10, 5, 80).mean(1).flatten().numpy()
    assert np.allclose(first[8:-1], pooled, atol=1e-5)
    assert np.array_equal(inputs[6][:-1], first[:-1])  # the same context through the pause


def test_a_head_fitted_on_another_recognizer_is_refused(tmp_path):
    save_endpoint(tmp_path / "head", EndpointHead(CONFIG), {})
    with pytest.raises(CheckpointError, match="another recognizer"):
        load_endpoint(tmp_path / "head")
    assert load_endpoint(tmp_path / "head", recognizer=None).config == CONFIG


def test_content_turns_take_the_heads_operating_point():
    head = load_endpoint()
    manager = CallManager(
        ParrotResponder(load_recognizer()),
        AgentConfig(turns=TurnConfig(eot="content")),
        AgentMetrics(),
        IceConfig(),
        1,
    )
    turns = manager.config.turns
    assert (turns.eot, turns.eot_threshold, turns.min_silence_ms) == (
        "content",
        head.config.threshold,
        head.config.max_silence_ms,
    )
    with pytest.raises(ValueError, match="recognizer"):
        CallManager(
            ParrotResponder(),
            AgentConfig(turns=TurnConfig(eot="content")),
            AgentMetrics(),
            IceConfig(),
            1,
        )


def test_the_agent_hears_a_pause_as_the_head_was_trained(tmp_path):
    """A two-sentence turn and its ending silence through the agent's listening thread
    (batched recognizer, the pause's first window flushing it) give the probabilities the
    trainer's stream of the same audio gives."""
    head = load_endpoint()
    recognizer = load_recognizer()
    clip = conversation(["food", 0.45, "weather"], MODEL_RATE)
    path = tmp_path / "turn.wav"
    write_audio(path, clip, MODEL_RATE)
    trained = stream_turn(path, SileroVAD(), recognizer, head.config)
    expected = head_probs(head, trained)
    assert len(trained.pause_windows) > 20  # the inner pause and the ending silence

    lead = int(0.3 * MODEL_RATE)
    audio = np.zeros(len(trained.probs) * WINDOW, np.float32)
    audio[lead : lead + len(clip)] = clip
    got = asyncio.run(_through_the_agent(audio, head, recognizer))
    assert len(got) == len(expected)
    eots = np.array([0.0 if h.eot_prob is None else h.eot_prob for h in got])
    assert np.allclose(eots, expected, atol=1e-4)
    assert [h.eot_prob is not None for h in got] == [
        k in set(trained.pause_windows) for k in range(len(got))
    ]


async def _through_the_agent(audio: np.ndarray, head: EndpointHead, recognizer) -> list[Heard]:
    responder = ParrotResponder(recognizer)
    thread = ListeningThread(responder, AgentMetrics(), 256.0, head)
    heard: list[Heard] = []
    done = asyncio.Event()
    windows = len(audio) // WINDOW

    def on_heard(h: Heard) -> None:
        heard.append(h)
        if len(heard) == windows:
            done.set()

    session = responder.open(CallOptions("female_1", "NEUTRAL"))
    call = CallListener(
        session, SileroVAD(), on_heard, lambda lag: None, asyncio.get_running_loop()
    )
    try:
        for k in range(windows):
            now = time.monotonic()
            thread.submit(call, audio[k * WINDOW : (k + 1) * WINDOW], k * WINDOW, False, now, now)
        await asyncio.wait_for(done.wait(), 60)
    finally:
        thread.stop()
    return heard
