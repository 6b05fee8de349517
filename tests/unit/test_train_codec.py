"""Codec training recipe: losses, discriminator, trainer (loss goes down, checkpoint, exact
resume, adversarial steps), metrics and the codec evaluation, on a tiny espeak-ng manifest."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoints import load_extra, load_state
from models.codec import TeluCodec
from models.config import DEMO
from models.data.manifest import Entry, write_manifest
from models.eval.codec import add_eval_codec_command, evaluate_codec
from models.eval.metrics import MelDistance, pesq_wb, si_sdr, stoi
from models.speech.audio import write_audio
from models.train import codec as codec_trainer
from models.train.codec import add_train_codec_command, train_codec
from models.train.common import LOG_FILE, TRAIN_STATE, parameter_groups, read_log
from models.train.discriminator import MultiScaleSTFTDiscriminator
from models.train.losses import (
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
    mel_filterbank,
)
from tests.speech import SENTENCES, conversation

RATE = DEMO.codec.sample_rate
STEPS = 48
TINY = {"batch_size": 4, "segment_seconds": 0.5, "log_every": 4, "progress": False}
"""Tiny-run settings: 4 x 0.5 s crops, a log row every 4 steps."""


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three espeak-ng Telugu sentences for training, one for testing."""
    root = tmp_path_factory.mktemp("data")
    (root / "wav").mkdir()
    entries = []
    for number, key in enumerate(SENTENCES):
        pcm = conversation([key], RATE)
        write_audio(root / "wav" / f"{key}.wav", pcm, RATE)
        split = "test" if number == len(SENTENCES) - 1 else "train"
        entries.append(
            Entry(f"wav/{key}.wav", len(pcm) / RATE, SENTENCES[key], "espeak", split=split)
        )
    write_manifest(root / "manifest.jsonl", entries)
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def trained(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted reconstruction-only run of STEPS steps."""
    out = tmp_path_factory.mktemp("run") / "codec"
    train_codec(manifest, "demo", out, STEPS, adversarial=False, seed=1, **TINY)
    return out


def speech() -> np.ndarray:
    return conversation(["weather"], RATE)


def noise(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.1, length).astype(np.float32)


# losses and discriminator


def test_mel_filterbank_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    for htk in (False, True):
        for n_fft, n_mels in ((64, 5), (512, 40), (2048, 160)):
            ours = mel_filterbank(n_fft, n_mels, RATE, htk=htk).numpy()
            theirs = librosa.filters.mel(sr=RATE, n_fft=n_fft, n_mels=n_mels, htk=htk)
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)
            assert (ours.sum(axis=1) > 0).all()  # no empty band


def test_spectral_losses_are_zero_only_for_identical_signals() -> None:
    clean = torch.from_numpy(speech()[None, :RATE])
    other = clean + torch.from_numpy(noise(RATE)[None]) * 0.3
    for loss in (MultiScaleMelLoss(RATE), MultiResolutionSTFTLoss()):
        assert float(loss(clean, clean)) == pytest.approx(0.0, abs=1e-6)
        estimate = other.clone().requires_grad_(True)
        value = loss(estimate, clean)
        value.backward()
        assert float(value.detach()) > 0.1
        assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
        assert float(loss(clean * 0.5, clean)) > 0.05  # level matters


def test_gan_losses_and_discriminator_shapes() -> None:
    discriminator = MultiScaleSTFTDiscriminator(filters=8)
    with torch.no_grad():
        logits, features = discriminator(torch.randn(2, RATE // 2))
    assert len(logits) == len(features) == 5
    assert all(x.shape[:2] == (2, 1) for x in logits)
    assert all(len(maps) == 5 and maps[0].shape[1] == 8 for maps in features)
    confident = [torch.full((2, 1, 3, 4), 2.0)]
    assert float(discriminator_hinge_loss(confident, [-x for x in confident])) == 0.0
    assert float(discriminator_hinge_loss([-x for x in confident], confident)) == 6.0
    assert float(generator_hinge_loss(confident)) == 0.0
    assert float(generator_hinge_loss([-x for x in confident])) == 3.0
    assert float(feature_matching_loss(features, features)) == 0.0
    shifted = [[x + 1.0 for x in maps] for maps in features]
    assert float(feature_matching_loss(features, shifted)) > 0.1


# trainer


def test_codebooks_and_biases_get_no_weight_decay() -> None:
    codec = TeluCodec(DEMO.codec)
    decay, no_decay = parameter_groups(codec, 0.01, ("codewords",))
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): name for name, p in codec.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert len(decayed) + len(skipped) == len(names)
    assert {n for n in names.values() if n.endswith("codewords")} <= skipped
    assert not any(n.endswith("codewords") or n.endswith("bias") for n in decayed)
    assert "encoder.layers.0.weight" in decayed


def test_reconstruction_loss_goes_down(trained: Path) -> None:
    rows = read_log(trained / LOG_FILE)
    assert [int(row["step"]) for row in rows] == list(range(4, STEPS + 1, 4))
    first, last = rows[:3], rows[-3:]
    for name, ratio in (("loss", 0.8), ("mel", 0.9), ("stft", 0.7)):
        start = np.mean([row[name] for row in first])
        end = np.mean([row[name] for row in last])
        assert end < ratio * start, (name, start, end)
    assert all("discriminator" not in row for row in rows)
    assert rows[-1]["seconds"] > rows[0]["seconds"] > 0


def test_checkpoint_loads_into_a_codec(trained: Path) -> None:
    assert (trained / "config.json").is_file() and (trained / TRAIN_STATE).is_file()
    assert load_extra(trained)["step"] == STEPS
    torch.manual_seed(123)
    codec = TeluCodec(DEMO.codec)
    fresh = {k: v.clone() for k, v in codec.state_dict().items()}
    load_state(trained, "codec", codec)
    saved = torch.load(trained / TRAIN_STATE, weights_only=True)["modules"]["codec"]
    for key, value in codec.state_dict().items():
        assert torch.equal(value, saved[key])
    assert not torch.equal(
        fresh["decoder.layers.0.weight"], codec.state_dict()["decoder.layers.0.weight"]
    )


def test_resume_continues_exactly_where_the_run_stopped(
    manifest: Path, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileExistsError):
        train_codec(manifest, "demo", trained, STEPS, adversarial=False, seed=1, **TINY)
    out = tmp_path / "codec"
    batch = codec_trainer.CropSampler.batch
    calls = {"n": 0}

    def crash_after_41_steps(self: codec_trainer.CropSampler, size: int) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 41:
            raise KeyboardInterrupt
        return batch(self, size)

    monkeypatch.setattr(codec_trainer.CropSampler, "batch", crash_after_41_steps)
    with pytest.raises(KeyboardInterrupt):
        train_codec(manifest, "demo", out, STEPS, adversarial=False, seed=1, save_every=8, **TINY)
    monkeypatch.undo()
    assert load_extra(out)["step"] == 40
    assert read_log(out / LOG_FILE)[-1]["step"] == 40
    metrics = train_codec(
        manifest, "demo", out, STEPS, adversarial=False, seed=1, resume=True, **TINY
    )
    assert metrics["step"] == STEPS and load_extra(out)["step"] == STEPS
    rows = read_log(out / LOG_FILE)
    assert [int(row["step"]) for row in rows] == list(range(4, STEPS + 1, 4))
    assert rows[-1]["seconds"] > rows[-3]["seconds"]
    resumed = torch.load(out / TRAIN_STATE, weights_only=True)
    straight = torch.load(trained / TRAIN_STATE, weights_only=True)
    assert resumed["step"] == straight["step"] == STEPS
    for key, value in straight["modules"]["codec"].items():
        torch.testing.assert_close(resumed["modules"]["codec"][key], value, rtol=1e-4, atol=1e-5)
    assert rows[-1]["loss"] == pytest.approx(read_log(trained / LOG_FILE)[-1]["loss"], rel=1e-3)


def test_decoder_only_fine_tuning_keeps_the_codes(
    manifest: Path, trained: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="needs a trained codec"):
        train_codec(manifest, "demo", tmp_path / "x", 4, adversarial=False, decoder_only=True)
    out = tmp_path / "decoder"
    tuning = {"seed": 3, "init": trained, "decoder_only": True, **TINY}
    train_codec(manifest, "demo", out, 16, adversarial=False, **tuning)
    base, tuned = TeluCodec(DEMO.codec), TeluCodec(DEMO.codec)
    load_state(trained, "codec", base)
    load_state(out, "codec", tuned)
    before, after = base.state_dict(), tuned.state_dict()
    changed = {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"decoder"}  # codebooks included: no EMA update
    wav = torch.from_numpy(speech())[None, : 20 * DEMO.codec.hop]
    with torch.no_grad():
        assert torch.equal(base.eval().encode(wav), tuned.eval().encode(wav))
    rows = read_log(out / LOG_FILE)
    assert "commitment" not in rows[0]  # constant: not part of the loss
    # it starts from the trained codec, not from scratch
    assert rows[0]["mel"] < read_log(trained / LOG_FILE)[0]["mel"]
    with pytest.raises(ValueError, match="decoder_only"):
        train_codec(manifest, "demo", out, 20, adversarial=False, seed=3, resume=True, **TINY)


def test_adversarial_steps_run(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    settings = {**TINY, "batch_size": 2, "log_every": 1}
    metrics = train_codec(
        manifest, "demo", out, 3, adversarial=True, adversarial_start=1, seed=2, **settings
    )
    rows = read_log(out / LOG_FILE)
    assert "discriminator" not in rows[0]
    for row in rows[1:]:
        for name in ("adversarial", "feature_matching", "discriminator"):
            assert math.isfinite(row[name]), name
    assert metrics["discriminator"] == pytest.approx(rows[-1]["discriminator"], rel=1e-5)
    state = torch.load(out / TRAIN_STATE, weights_only=True)
    assert {"codec", "discriminator"} <= set(state["modules"]) <= set(state["optimizers"])


def test_train_command(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    add_train_codec_command(parser.add_subparsers())
    args = parser.parse_args(
        [
            "codec",
            "--data",
            str(manifest),
            "--preset",
            "demo",
            "--out",
            str(tmp_path / "c"),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--segment",
            "0.25",
            "--no-adversarial",
            "--device",
            "cpu",
            "--log-every",
            "1",
            "--no-progress",
        ]
    )
    assert args.log_level == "warning" and not args.resume
    assert args.run(args) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert len(read_log(tmp_path / "c" / LOG_FILE)) == 2


# metrics and evaluation


def test_metrics_separate_clean_from_noise() -> None:
    clean = speech()
    noisy = noise(len(clean))
    assert si_sdr(clean, clean) > 60 and si_sdr(clean, noisy) < -10
    assert 15 < si_sdr(clean, clean + 0.1 * noisy) < 30
    assert pesq_wb(clean, clean) > 4.5 and pesq_wb(clean, noisy) < 1.5
    assert stoi(clean, clean, RATE) > 0.99 and stoi(clean, noisy, RATE) < 0.6
    mel = MelDistance(RATE)
    assert mel(clean, clean) == 0.0 and mel(clean, noisy) > 0.5


def test_evaluate_codec_reports_every_level(
    trained: Path, manifest: Path, capsys: pytest.CaptureFixture
) -> None:
    result = evaluate_codec(trained, manifest, "test", device="cpu")
    assert result["files"] == 1 and result["step"] == STEPS and result["seconds"] > 1
    assert result["decoder"] == "conv" and result["delay_ms"] == 0
    assert list(result["levels"]) == list(range(1, 9))
    for levels, row in result["levels"].items():
        assert row["bitrate_bps"] == DEMO.codec.bitrate_bps(levels)
        assert all(math.isfinite(row[m]) for m in ("pesq_wb", "stoi", "si_sdr", "mel_distance"))
        assert 1.0 <= row["pesq_wb"] < 4.7 and 0 <= row["stoi"] <= 1 and row["mel_distance"] > 0
    rows = list(result["levels"].values())
    assert rows[0]["improves_pesq_wb"] is None and rows[0]["improves_mel_distance"] is None
    for below, row in zip(rows, rows[1:], strict=False):
        better_mel = row["mel_distance"] < below["mel_distance"]
        assert row["improves_mel_distance"] is better_mel
        assert row["improves_pesq_wb"] is (row["pesq_wb"] > below["pesq_wb"])
    flags = [row[f] for row in rows[1:] for f in ("improves_pesq_wb", "improves_mel_distance")]
    assert result["every_level_improves"] is all(flags)
    parser = argparse.ArgumentParser()
    add_eval_codec_command(parser.add_subparsers())
    args = parser.parse_args(
        [
            "codec",
            "--checkpoint",
            str(trained),
            "--data",
            str(manifest),
            "--levels",
            "8",
            "--json",
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
    )
    assert args.run(args) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["levels"]["8"]["mel_distance"] == pytest.approx(result["levels"][8]["mel_distance"])


def test_istft_decoder_trains_and_evaluates_realigned(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "istft"
    train_codec(manifest, "demo", out, 24, adversarial=False, seed=1, decoder="istft", **TINY)
    rows = read_log(out / LOG_FILE)
    assert np.mean([r["mel"] for r in rows[-2:]]) < 0.9 * np.mean([r["mel"] for r in rows[:2]])
    assert all(1 <= row["levels"] <= 8 for row in rows)
    result = evaluate_codec(out, manifest, "test", levels=(1, 8), device="cpu")
    assert result["decoder"] == "istft" and result["delay_ms"] == 15.0
    assert list(result["levels"]) == [1, 8] and math.isfinite(result["levels"][8]["stoi"])
    with pytest.raises(ValueError, match="own decoder"):
        train_codec(manifest, "demo", tmp_path / "x", 1, decoder="istft", init=out)
