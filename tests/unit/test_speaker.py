import functools
import itertools
import sys
import time
import types
import warnings

import librosa
import numpy as np
import pytest
import torch

from models.data.espeak import synthesize
from models.speaker import (
    EMBEDDING_DIM,
    SAMPLE_RATE,
    SpeakerEncoder,
    mel_filterbank,
    mel_spectrogram,
    partial_starts,
)
from tests.speech import SENTENCES


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@functools.cache
def speech(voice: str, sentence: str) -> np.ndarray:
    return synthesize(SENTENCES[sentence], SAMPLE_RATE, voice)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b)


def test_filterbank_matches_librosa():
    expected = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=400, n_mels=40)
    np.testing.assert_allclose(mel_filterbank().numpy(), expected, rtol=1e-5, atol=1e-8)


def test_mel_spectrogram_matches_librosa():
    wav = speech("te", "cricket")
    expected = librosa.feature.melspectrogram(
        y=wav, sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40
    ).T
    mel = mel_spectrogram(torch.from_numpy(wav)).numpy()
    assert mel.shape == expected.shape
    np.testing.assert_allclose(mel, expected, rtol=1e-3, atol=1e-5 * expected.max())


def test_partials_cover_the_clip():
    assert partial_starts(8000) == [0]
    assert partial_starts(3 * SAMPLE_RATE) == [0, 77, 154]
    assert partial_starts(2 * SAMPLE_RATE) == [0, 77]
    # a last partial covered less than 75% by audio is dropped
    assert partial_starts(int(1.8 * SAMPLE_RATE)) == [0]


def test_embedding_is_unit_norm_and_deterministic(encoder: SpeakerEncoder):
    wav = speech("te+f2", "greeting")
    embedding = encoder.embed(wav)
    assert embedding.shape == (EMBEDDING_DIM,)
    assert embedding.dtype == torch.float32
    assert abs(float(embedding.norm()) - 1.0) < 1e-5
    assert torch.equal(embedding, encoder.embed(torch.from_numpy(wav)))


def test_loudness_does_not_matter_below_the_target_level(encoder: SpeakerEncoder):
    wav = speech("te+m3", "food")
    quiet = wav * (0.01 / np.sqrt(np.mean(wav**2)))
    assert cosine(encoder.embed(quiet), encoder.embed(quiet * 0.1)) > 0.9999


def test_matches_resemblyzer_reference(encoder: SpeakerEncoder, monkeypatch: pytest.MonkeyPatch):
    # resemblyzer's package imports webrtcvad, which is not needed for embedding: stub it
    monkeypatch.setitem(sys.modules, "webrtcvad", types.ModuleType("webrtcvad"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecated scipy imports
        reference = pytest.importorskip("resemblyzer")
    voice_encoder = reference.VoiceEncoder("cpu", verbose=False)
    wav = speech("te+f4", "weather")
    for n in (SAMPLE_RATE // 2, 3 * SAMPLE_RATE, len(wav)):
        clip = wav[:n]
        expected = voice_encoder.embed_utterance(
            reference.normalize_volume(clip, -30, increase_only=True)
        )
        np.testing.assert_allclose(encoder.embed(clip).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("one", "other"), [("te+m3", "te+f2"), ("te+m3", "te+f4"), ("te", "te+f2")]
)
def test_same_voice_is_closer_than_other_voice(encoder: SpeakerEncoder, one: str, other: str):
    sentences = list(SENTENCES)
    a = {s: encoder.embed(speech(one, s)) for s in sentences}
    b = {s: encoder.embed(speech(other, s)) for s in sentences}
    same = [cosine(e[s], e[t]) for e in (a, b) for s, t in itertools.combinations(sentences, 2)]
    different = [cosine(a[s], b[t]) for s, t in itertools.permutations(sentences, 2)]
    print(f"{one} vs {other}: same voice >= {min(same):.3f}, other voice <= {max(different):.3f}")
    assert min(same) > max(different)


def test_embeds_a_three_second_clip(encoder: SpeakerEncoder):
    wav = np.concatenate([speech("te+f2", "cricket"), speech("te+f2", "food")])[: 3 * SAMPLE_RATE]
    assert len(wav) == 3 * SAMPLE_RATE
    encoder.embed(wav)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        embedding = encoder.embed(wav)
        times.append(time.perf_counter() - start)
    print(f"3 s clip embedded in {1000 * float(np.median(times)):.1f} ms (median of 5)")
    assert embedding.shape == (EMBEDDING_DIM,)


def test_rejects_silence_and_bad_shapes(encoder: SpeakerEncoder):
    with pytest.raises(ValueError, match="silent"):
        encoder.embed(np.zeros(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        encoder.embed(np.zeros((2, SAMPLE_RATE), dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        encoder.embed(np.zeros(0, dtype=np.float32))


def test_missing_weights_name_the_package(tmp_path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(FileNotFoundError, match="not found"):
        SpeakerEncoder(tmp_path / "pretrained.pt")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="Resemblyzer"):
        SpeakerEncoder()
