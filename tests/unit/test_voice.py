"""Zero-shot voices: clips decoded and checked (each refusal with its reason), embedded as the
speaker encoder embeds the same audio, the caller's speech gathered until there is enough, and
the S2S responder's answers conditioned on the embedding through the decoder's zero-shot path.

The demo model's zero-shot projection is untrained: nothing here asserts that an answer
sounds like the clip, only that the clip's embedding is what conditions it."""

import numpy as np
import pytest
import torch

from agent.responders import CallOptions, UserTurn
from agent.responders.answering import Answer
from agent.responders.s2s import S2SResponder
from agent.voice import CALLER_VOICED_S, CallerSpeech, VoiceEncoder
from models.config import DEMO
from models.controls import emotion_id, speaker_id
from models.loading import Models, build
from models.s2s.sampling import ANSWERS, GREEDY
from models.speaker import SpeakerEncoder
from models.speech.audio import MODEL_RATE
from models.speech.clip import (
    EMBED_MAX_S,
    FRAME,
    MAX_CLIP_BYTES,
    ClipError,
    decode_clip,
    embedding_speech,
    read_clip,
)
from tests.clips import FORMATS, encode, speech


@pytest.fixture(scope="module")
def three_seconds() -> np.ndarray:
    return speech(3.0)


@pytest.fixture(scope="module")
def voices() -> VoiceEncoder:
    return VoiceEncoder()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_browser_format_decodes_to_16_khz_mono_of_its_length(three_seconds, fmt):
    pcm = read_clip(encode(three_seconds, fmt))
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(pcm.size / MODEL_RATE - 3.0) < 0.1


def refusal(data: bytes) -> str:
    with pytest.raises(ClipError) as caught:
        read_clip(data)
    assert str(caught.value)
    return caught.value.reason


def test_what_is_not_a_known_audio_file_is_undecodable(three_seconds):
    assert refusal(b"hello, this is not audio at all") == "undecodable"
    assert refusal(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\nfile:///etc/passwd\n") == "undecodable"
    wav = encode(three_seconds, "wav")
    assert refusal(wav[:12] + bytes(range(256)) * 8) == "undecodable"  # a RIFF header, no audio
    ogg = encode(three_seconds, "ogg")
    assert refusal(ogg[:60] + b"\x00" * 500) == "undecodable"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_damaged_clips_are_read_or_refused_as_clip_errors(three_seconds, fmt):
    """Bytes flipped, files cut short, stretches overwritten: each clip is either read or
    refused with a reason (a ClipError, which the server answers with a 4xx), never another
    exception (a 500)."""
    clip = encode(three_seconds, fmt)
    rng = np.random.default_rng(len(clip))
    reasons = set()
    for i in range(30):
        damaged = bytearray(clip)
        if i % 3 == 0:
            for at in rng.integers(0, len(clip), 20):
                damaged[at] = rng.integers(0, 256)
        elif i % 3 == 1:
            damaged = damaged[: rng.integers(1, len(clip))]
        else:
            at = int(rng.integers(4, len(clip) - 200))
            damaged[at : at + 200] = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
        try:
            read_clip(bytes(damaged))
        except ClipError as err:
            reasons.add(err.reason)
    assert reasons <= {"undecodable", "too_short"}


def test_clip_length_limits(three_seconds):
    assert refusal(encode(three_seconds[: MODEL_RATE // 2], "wav")) == "too_short"
    assert refusal(encode(speech(16.0), "mp3")) == "too_long"
    assert read_clip(encode(speech(14.5), "wav")).size == int(14.5 * MODEL_RATE)


def test_a_long_clip_is_decoded_only_as_far_as_the_limit():
    pcm = decode_clip(encode(np.tile(speech(8.0), 5), "ogg"))  # 40 s
    assert pcm.size < 17 * MODEL_RATE


def test_silence_and_a_whisper_of_noise_are_silent(three_seconds):
    assert refusal(encode(np.zeros(3 * MODEL_RATE, np.float32), "wav")) == "silent"
    hiss = 0.001 * np.random.default_rng(0).standard_normal(3 * MODEL_RATE)
    assert refusal(encode(hiss.astype(np.float32), "webm")) == "silent"
    quiet_speech = three_seconds * (0.05 / np.abs(three_seconds).max())
    assert read_clip(encode(quiet_speech, "wav")).size  # quiet speech is still speech


def test_a_clip_over_the_size_limit_is_refused_before_decoding():
    assert refusal(b"RIFF" + b"\x00" * MAX_CLIP_BYTES) == "too_large"


def test_a_clip_is_embedded_as_the_speaker_encoder_embeds_its_audio(three_seconds, voices):
    voice = voices.from_clip(encode(three_seconds, "wav"))
    assert voice.source == "clip" and voice.ms > 0
    assert voice.embedding.shape == (256,) and voice.embedding.dtype == np.float32
    speech_part = embedding_speech(read_clip(encode(three_seconds, "wav")))
    expected = SpeakerEncoder().embed(speech_part).numpy()
    np.testing.assert_allclose(voice.embedding, expected, atol=1e-6)
    other = voices.from_clip(encode(speech(5.0)[::-1].copy(), "wav")).embedding
    assert not np.allclose(voice.embedding, other, atol=1e-3)  # the audio decides


def test_what_is_embedded_is_the_voiced_speech_up_to_its_limit(three_seconds):
    pause = np.zeros(MODEL_RATE, np.float32)
    clip = np.concatenate([pause, three_seconds, pause, three_seconds, three_seconds])
    kept = embedding_speech(clip)
    assert kept.size == int(EMBED_MAX_S * MODEL_RATE) // FRAME * FRAME
    frames = kept.reshape(-1, FRAME)
    assert np.sqrt((frames**2).mean(axis=1)).min() >= 0.01  # no frame of the pauses
    assert embedding_speech(three_seconds).size < three_seconds.size  # its own pauses go


def test_caller_speech_keeps_only_voiced_windows_until_there_is_enough():
    gathered = CallerSpeech(needed_s=0.1)  # 1600 samples: four 512-sample windows
    windows = [np.full(512, i, np.float32) for i in range(8)]
    results = [gathered.add(w, voiced=i % 2 == 0) for i, w in enumerate(windows)]
    assert all(r is None for r in results[:6])
    speech_pcm = results[6]
    assert speech_pcm is not None
    np.testing.assert_array_equal(speech_pcm[::512], [0, 2, 4, 6])
    assert gathered.add(windows[7], voiced=True) is None  # taken once
    assert CALLER_VOICED_S >= 1.6  # at least one whole partial of the speaker encoder


@pytest.fixture(scope="module")
def models() -> Models:
    return build(DEMO, seed=3)


def answer_conditions(
    responder: S2SResponder, options: CallOptions, switch_to: np.ndarray | None = None
) -> list[torch.Tensor]:
    """The conditioning rows of the answers a call gets to one turn of noise: before and (with
    `switch_to`) after the voice is changed mid-call."""
    thread = responder.answering
    started: list[Answer] = []
    original = thread.start

    def start(*args, **kwargs) -> Answer:  # the real thread's answer, only looked at
        started.append(original(*args, **kwargs))
        return started[-1]

    thread.start = start
    try:
        session = responder.open(options)
        noise = (0.1 * np.random.default_rng(0).standard_normal(512 * 40)).astype(np.float32)
        for at in range(0, noise.size, 512):
            session.hear(noise[at : at + 512], at)
        turn = UserTurn(1, 0, noise.size)
        assert list(session.respond(turn))
        if switch_to is not None:
            session.use_voice(switch_to)
            assert list(session.respond(UserTurn(2, 0, noise.size)))
    finally:
        del thread.start
    return [answer.conditions for answer in started]


def expected_zero_shot(models: Models, embedding: np.ndarray, emotion: str) -> torch.Tensor:
    conditioning = models.decoder.conditioning
    with torch.inference_mode():
        return conditioning.zero_shot(torch.from_numpy(embedding)[None]) + conditioning.emotions(
            torch.tensor([emotion_id(emotion)])
        )


@pytest.mark.parametrize("sampling", [GREEDY, ANSWERS], ids=["plain", "guided"])
def test_an_answer_with_a_voice_is_conditioned_on_its_embedding(
    models, voices, three_seconds, sampling
):
    embedding = voices.from_clip(encode(three_seconds, "ogg")).embedding
    responder = S2SResponder(models, sampling, max_answer_s=0.2, seed=0)
    options = CallOptions("male_2", "HAPPY", voice=embedding)
    (conditions,) = answer_conditions(responder, options)
    expected = expected_zero_shot(models, embedding, "HAPPY")
    torch.testing.assert_close(conditions[:1], expected)
    if sampling.guidance != 1:  # the unconditioned row of classifier-free guidance
        assert conditions.shape[0] == 2
        torch.testing.assert_close(conditions[1], models.decoder.null_condition.detach())


def test_a_voice_taken_mid_call_conditions_the_answers_after_it(models, voices, three_seconds):
    embedding = voices.from_speech(three_seconds).embedding
    responder = S2SResponder(models, GREEDY, max_answer_s=0.2, seed=0)
    before, after = answer_conditions(responder, CallOptions("female_2", "NEUTRAL"), embedding)
    conditioning = models.decoder.conditioning
    with torch.inference_mode():
        named = conditioning.speakers(torch.tensor([speaker_id("female_2")]))
        named = named + conditioning.emotions(torch.tensor([emotion_id("NEUTRAL")]))
    torch.testing.assert_close(before, named)
    torch.testing.assert_close(after, expected_zero_shot(models, embedding, "NEUTRAL"))


def test_a_voice_of_the_wrong_size_is_refused(models):
    session = S2SResponder(models).open(CallOptions("female_1", "NEUTRAL"))
    with pytest.raises(ValueError, match="256"):
        session.use_voice(np.zeros(128, np.float32))
