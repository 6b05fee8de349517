"""The streaming recognizer: features, streaming == offline, greedy CTC decoding with word
timings, checkpoints, training and the `transcribe` / `eval asr` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.asr.checkpoint import SHIPPED, load_config_asr, load_recognizer, save_recognizer
from models.asr.config import DEMO, TINY, ASRConfig
from models.asr.decode import greedy_decode
from models.asr.errors import ErrorRates, edit_distance
from models.asr.features import LogMel
from models.asr.model import Recognizer
from models.asr.stream import transcribe
from models.asr.vocab import Vocabulary
from models.data.bank import INTENTS
from models.data.synth import RATE, SMALL_CORPUS, espeak, hold_out, synthesize_corpus
from models.data.voices import SHIPPED_PERSONAS
from models.speech.audio import write_audio
from models.train.asr import train_asr
from models.train.common import read_log
from signaling.cli import main

LETTERS = (" ", "a", "b", "c", "న", "మ", "ా")


def noise(samples: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(1, samples, generator=generator)


def test_features_shape_and_causality() -> None:
    features = LogMel(400, 160, 80, 16_000)
    audio = noise(16_000)
    frames = features(audio)
    assert frames.shape == (1, 100, 80)
    changed = audio.clone()
    changed[:, 8_000:] = 0.0  # frames ending at or before sample 8000 cannot see it
    assert torch.equal(features(changed)[:, :50], frames[:, :50])
    assert not torch.equal(features(changed)[:, 50], frames[:, 50])


def test_streaming_equals_offline() -> None:
    torch.manual_seed(0)
    model = Recognizer(DEMO.with_letters(LETTERS)).eval()
    audio = noise(16_000 + 123)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        offline = model(audio)
        state, parts, position = model.init_state(1), [], 0
        while position < audio.shape[1]:
            size = int(torch.randint(1, 900, (1,), generator=generator))
            logits, state = model.stream(audio[:, position : position + size], state)
            parts.append(logits)
            position += size
    streamed = torch.cat(parts, dim=1)
    assert offline.shape == (1, int(model.output_frames(torch.tensor(audio.shape[1]))), 9)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)


def test_demo_preset_size() -> None:
    model = Recognizer(DEMO.with_letters(tuple("abcdefghijklmnopqrstuvwxyz")))
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 2_000_000
    assert DEMO.frame_s == pytest.approx(0.04)


def test_greedy_decoding_with_word_timings() -> None:
    vocab = Vocabulary(LETTERS)
    a, b, c, space, unk = *(vocab.index[ch] for ch in "abc "), vocab.unk
    best = [0, a, a, 0, b, space, space, c, 0, c, 0, 0, unk, a, 0]
    logits = torch.full((len(best), len(LETTERS) + 2), -5.0)
    logits[torch.arange(len(best)), torch.tensor(best)] = 5.0
    result = greedy_decode(logits, vocab, 0.02)
    assert result.text == "ab cc\ufffda"
    (first, second) = result.words
    assert (first.word, first.start, first.end) == ("ab", pytest.approx(0.02), pytest.approx(0.1))
    assert (second.start, second.end) == (pytest.approx(0.14), pytest.approx(0.28))


def test_vocabulary_normalises_and_marks_unknown_letters() -> None:
    vocab = Vocabulary(LETTERS)
    assert vocab.encode("  A, b!  Z").tolist() == [2, 1, 3, 1, vocab.unk]


def test_error_rates() -> None:
    assert edit_distance("kitten", "sitting") == 3
    rates = ErrorRates()
    rates.add("నమస్కారం మీరు", "నమస్కారం మీరూ")
    assert rates.wer == 0.5
    assert rates.cer == pytest.approx(1 / 13)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Recognizer(TINY.with_letters(LETTERS)).eval()
    model.mean.fill_(1.5)
    save_recognizer(tmp_path, model, {"step": 3})
    assert load_config_asr(tmp_path) == model.config
    loaded = load_recognizer(tmp_path)
    audio = noise(8_000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio), model(audio))
    assert ASRConfig.from_dict(model.config.to_dict()) == model.config


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize_corpus(tmp_path_factory.mktemp("corpus"), seed=0, **SMALL_CORPUS)


@pytest.mark.usefixtures("one_thread")
def test_training_lowers_the_loss_and_resumes(small_corpus: Path, tmp_path: Path) -> None:
    options = {"batch_size": 4, "lr": 3e-3, "config": TINY, "log_every": 4, "eval_every": 8}
    first = train_asr(small_corpus, tmp_path, steps=8, progress=False, **options)
    rows = read_log(tmp_path / "log.csv")
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert first["val_cer"] >= 0.0
    with pytest.raises(FileExistsError):
        train_asr(small_corpus, tmp_path, steps=12, progress=False, **options)
    resumed = train_asr(small_corpus, tmp_path, steps=12, resume=True, progress=False, **options)
    assert resumed["step"] == 12
    assert [row["step"] for row in read_log(tmp_path / "log.csv")] == [4, 8, 12]
    assert load_recognizer(tmp_path).config.letters == load_config_asr(tmp_path).letters


def test_transcribe_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    save_recognizer(tmp_path / "asr", Recognizer(TINY.with_letters(LETTERS)))
    clip = tmp_path / "clip.wav"
    write_audio(clip, noise(22_050)[0].numpy(), 22_050)  # any rate: read_audio resamples
    assert main(["transcribe", str(clip), "--checkpoint", str(tmp_path / "asr"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"text", "words", "duration_s"}
    assert result["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert result["text"] == " ".join(word["word"] for word in result["words"])
    for word in result["words"]:
        assert set(word) == {"word", "start", "end"}
        assert 0.0 <= word["start"] < word["end"] <= result["duration_s"] + 0.05


@pytest.mark.usefixtures("one_thread")
def test_shipped_recognizer_on_held_out_speech() -> None:
    """Test-split paraphrases (never heard in training), spoken now by espeak-ng: the shipped
    recognizer's user-turn test CER is about 10 % (eval-asr.json); a few short clips vary."""
    model = load_recognizer(SHIPPED)
    rates = ErrorRates()
    voices = list(SHIPPED_PERSONAS.values())
    for number, intent in enumerate(INTENTS[:8]):
        splits = hold_out(intent.paraphrases)
        text = next(t for t in intent.paraphrases if splits[t] == "test")
        voice = voices[number % len(voices)]
        rates.add(text, transcribe(model, espeak(text, voice.voice, voice.speed, voice.pitch)).text)
    assert model.config.sample_rate == RATE
    assert rates.cer < 0.25
