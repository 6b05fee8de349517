"""The shipped demo model answering a held-out Telugu greeting (a paraphrase the model never
saw in training, spoken by espeak-ng's Telugu voice as the corpus renders it).

Answers are sampled, so what depends on the draw is checked over several seeds, each bound
with room to spare: most answers end by themselves (EOS) at a plausible length, and most are
in the persona the caller asked for (their speaker embedding is closer to it than to the other
three). A seed gives the same answer every time (tests/unit/test_responders.py shows it for
the responder, whatever other threads draw). In a real call (seed 0) the answer is
audible, longer than a second, and in the voice of the requested persona's sex. Its length in
a call is not bounded above: it is wall-clock time, which grows when a busy machine generates
slower than real time.

The demo model renders two of its four personas reliably (`eval s2s`, model card: male_2 94 %,
female_2 100 %, male_1 46 %, female_1 0 % of answers; its codec alone keeps male_1 and female_1
in 40 % and 10 % of real answers); the tests ask for those two. A model that ignored the
requested voice would fail at least one of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent.caller.caller import LOUD, call
from agent.responders import CallOptions, UserTurn
from agent.responders.s2s import MAX_ANSWER_S, S2SResponder
from agent.wire import WIRE_RATE
from models.data.bank import INTENTS
from models.data.synth import render_answer, render_user
from models.data.voices import SHIPPED_PERSONAS
from models.loading import DEMO_CHECKPOINT, Models, load
from models.speaker import SpeakerEncoder
from models.speech.audio import MODEL_RATE, resample
from models.speech.turns import TurnConfig, TurnDetector, TurnEventKind
from models.speech.vad import WINDOW, SileroVAD
from tests.conftest import start_agent

pytestmark = pytest.mark.slow

REFERENCE_INTENTS = ("greeting", "thanks", "weather")
"""Answers rendered in each persona's voice to make its reference embedding."""
SEEDS = (0, 1, 2, 3)
"""Seeds of the sampled answers checked offline (with the text-stream demo model, seeds 0-7 on
this machine: all 16 answers ended by themselves, 1.6-7.1 s, all in the requested voice)."""


@pytest.fixture(scope="module")
def demo() -> Models:
    models = load(DEMO_CHECKPOINT)
    assert models.trained
    return models


@pytest.fixture(scope="module")
def speaker_encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def voices(speaker_encoder) -> dict[str, torch.Tensor]:
    """Each persona's mean speaker embedding over a few answers rendered as in the corpus."""
    intents = {i.name: i for i in INTENTS}
    centroids = {}
    for name, persona in SHIPPED_PERSONAS.items():
        rng = np.random.default_rng(7)
        embeddings = [
            speaker_encoder.embed(render_answer(intents[i].answer, persona, "NEUTRAL", rng)[1])
            for i in REFERENCE_INTENTS
        ]
        centroids[name] = torch.nn.functional.normalize(torch.stack(embeddings).mean(0), dim=0)
    return centroids


@pytest.fixture(scope="module")
def held_out_greeting() -> np.ndarray:
    """The greeting held out as test wording of the corpus the demo model trained on (its
    test split was chosen by hash then), rendered as the corpus does, at 16 kHz, with silence
    after it (the agent hears the end of a turn as silence)."""
    _, pcm = render_user("నమస్కారం!", SHIPPED_PERSONAS["male_2"], np.random.default_rng(11))
    return np.concatenate([np.zeros(MODEL_RATE // 2, np.float32), pcm, np.zeros(3 * MODEL_RATE)])


def similarities(encoder: SpeakerEncoder, answer: np.ndarray, voices: dict) -> dict[str, float]:
    embedding = encoder.embed(answer)
    return {name: float(embedding @ centroid) for name, centroid in voices.items()}


def offline_answer(models: Models, pcm: np.ndarray, speaker: str, seed: int) -> np.ndarray:
    """The answer a call with a seeded responder gets, without the network: the agent's
    listening path (Silero VAD, its turn rules, the responder hearing every window) up to the
    end of the turn, then the responder's answer."""
    session = S2SResponder(models, seed=seed).open(CallOptions(speaker, "NEUTRAL"))
    vad, turns = SileroVAD(), TurnDetector(TurnConfig())
    for start in range(0, len(pcm) - WINDOW + 1, WINDOW):
        window = pcm[start : start + WINDOW].astype(np.float32)
        eot_prob = session.hear(window, start)
        event = turns.update(vad.prob(window), 0.0, eot_prob)
        if event is not None and event.kind is TurnEventKind.END_OF_TURN:
            turn = UserTurn(event.turn, event.start_sample, event.end_sample)
            return np.concatenate(list(session.respond(turn)))
    raise AssertionError("the turn never ended")


@pytest.mark.timeout(480)  # four answers of up to 8 s: slower than real time on a busy machine
@pytest.mark.parametrize("speaker", ["male_2", "female_2"])
def test_demo_model_answers_end_by_themselves_in_the_requested_voice_over_seeds(
    speaker, demo, speaker_encoder, voices, held_out_greeting
):
    answers = [offline_answer(demo, held_out_greeting, speaker, seed) for seed in SEEDS]
    seconds = [round(len(a) / MODEL_RATE, 2) for a in answers]
    assert all(s > 1.0 for s in seconds), seconds
    ended = [s < MAX_ANSWER_S - 0.5 for s in seconds]  # EOS, at a length like the corpus's
    assert sum(ended) >= len(SEEDS) // 2, seconds
    closest = []
    for answer in answers:
        similarity = similarities(speaker_encoder, answer, voices)
        closest.append(max(similarity, key=similarity.get))
    assert closest.count(speaker) >= len(SEEDS) - 1, closest


def answer_audio(heard: np.ndarray) -> np.ndarray:
    """What the agent said, at 16 kHz: from its first to its last loud sample."""
    loud = np.flatnonzero(np.abs(heard) > LOUD)
    assert len(loud), "the agent said nothing audible"
    return resample(heard[loud[0] : loud[-1] + 1], WIRE_RATE, MODEL_RATE)


@pytest.mark.parametrize("speaker", ["male_2", "female_2"])
async def test_demo_model_answers_a_held_out_greeting_in_a_real_call(
    speaker, demo, speaker_encoder, voices, held_out_greeting
):
    agent, runner = await start_agent(responder=S2SResponder(demo, seed=0))
    try:
        greeting = resample(held_out_greeting, MODEL_RATE, WIRE_RATE)
        report, heard = await call(agent.url, greeting, speaker, "NEUTRAL")
    finally:
        await runner.cleanup()
    assert report.answered == 1, report.to_json()
    answer = answer_audio(heard)
    assert len(answer) / MODEL_RATE > 1.0
    level_db = 10 * np.log10(np.mean(answer**2) + 1e-12)
    assert level_db > -40, level_db
    similarity = similarities(speaker_encoder, answer, voices)
    sex = speaker.split("_")[0]
    other_sex = [name for name in voices if name.split("_")[0] != sex]
    assert all(similarity[speaker] > similarity[name] for name in other_sex), similarity
