"""S2S training on a tiny synthesized dialogue corpus, its evaluations and the emotion
classifier."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoints import load_config, load_extra, save_checkpoint
from models.codec import TeluCodec
from models.config import DEMO, TextConfig, with_copy_pieces
from models.data.espeak import synthesize
from models.data.manifest import Dialogue, Entry, write_manifest
from models.eval.emotion import accuracy, fit_emotion_classifier
from models.eval.eot import (
    Outcome,
    detector_outcome,
    evaluate_eot,
    model_outcome,
    ready_samples,
    summarise,
    window_eot,
)
from models.eval.s2s import dtw_distance, evaluate_s2s
from models.loading import build, load
from models.s2s.decoder import StreamingDecoder
from models.s2s.encoder import StreamingEncoder
from models.speech.audio import read_audio, write_audio
from models.speech.turns import TurnConfig
from models.train import tokens
from models.train.monologue import train_monologue
from models.train.s2s import (
    Example,
    add_train_s2s_command,
    codebook_ce,
    collate,
    eot_labels,
    forward,
    silence_codes,
    train_s2s,
    weighted_ce,
)
from models.train.tokens import encode_manifest, speech_end

pytestmark = pytest.mark.timeout(420)
"""The first test to use `trained` also bears its set-up: a corpus synthesised, a codec and
an S2S run trained (about a minute on 2 idle cores, three beside two training runs)."""

RATE = 16_000
STEPS = 20
INTENTS = {
    "greeting": ("నమస్కారం, మీరు ఎలా ఉన్నారు?", "నేను బాగున్నాను, ధన్యవాదాలు."),
    "weather": ("ఈ రోజు వాతావరణం ఎలా ఉంది?", "ఈ రోజు ఎండ, చాలా వేడిగా ఉంది."),
    "food": ("మీకు ఏ వంటకం ఇష్టం?", "నాకు పులిహోర అంటే చాలా ఇష్టం."),
}
VOICES = {"male_1": "te+m3", "male_2": "te+m1", "female_1": "te+f2", "female_2": "te+f4"}
USER_VOICES = ("te", "te+f1", "te+m2", "te+f3")


def _split(intent: int, speaker: int) -> str:
    if speaker == intent:
        return "test"
    return "validation" if (intent, speaker) == (0, 3) else "train"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 intents x 4 voices of (user turn, answer) pairs: 3 test, 1 validation, 8 train pairs;
    answers NEUTRAL in the male voices and HAPPY in the female ones."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "wav").mkdir()
    entries = []
    for i, (name, (question, answer)) in enumerate(INTENTS.items()):
        for s, (speaker, voice) in enumerate(VOICES.items()):
            key = f"{name}-{speaker}"
            split = _split(i, s)
            user = synthesize(question, RATE, voice=USER_VOICES[s])
            agent = synthesize(answer, RATE, voice=voice)
            for role, pcm, who, pair in (
                ("user", user, "female_1", f"{key}-agent"),
                ("agent", agent, speaker, f"{key}-user"),
            ):
                audio = f"wav/{key}-{role}.wav"
                write_audio(root / audio, pcm, RATE)
                entries.append(
                    Entry(
                        audio=audio,
                        duration=len(pcm) / RATE,
                        text=question if role == "user" else answer,
                        speaker=who,
                        emotion="HAPPY" if speaker.startswith("female") else "NEUTRAL",
                        split=split,
                        dialogue=Dialogue(id=key, role=role, pair=pair),
                        key=f"{key}-{role}",
                        extra={"intent": name},
                    )
                )
    write_manifest(root / "manifest.jsonl", entries)
    torch.manual_seed(0)
    save_checkpoint(root / "codec", {"codec": TeluCodec(DEMO.codec)}, DEMO)
    return root


@pytest.fixture(scope="module")
def trained(corpus: Path) -> tuple[Path, dict]:
    out = corpus / "s2s"
    metrics = train_s2s(
        corpus / "manifest.jsonl",
        corpus / "codec",
        out,
        steps=STEPS,
        batch_size=4,
        lr=2e-3,
        device="cpu",
        log_every=5,
        eval_every=10,
        save_every=10,
        progress=False,
        ctc_weight=1.0,
        intent_weight=1.0,
    )
    return out, metrics


def _log(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_starts_from_the_monologue_and_keeps_training_text_pairs(
    trained, tmp_path: Path
) -> None:
    """`init` loads the text-only run's weights, and its copy path is kept; `text_pairs`
    adds their loss to every step and is part of the run's identity on resume."""
    out, _ = trained
    corpus = out.parent
    first = tmp_path / "monologue"
    train_monologue(
        corpus / "manifest.jsonl",
        first,
        with_copy_pieces(DEMO),
        1,
        batch_size=2,
        device="cpu",
        eval_every=0,
        progress=False,
    )
    run = tmp_path / "s2s"
    run.mkdir()
    for cache in ("codes.pt", "text.pt"):
        shutil.copy(out / cache, run / cache)
    train_s2s(
        corpus / "manifest.jsonl",
        corpus / "codec",
        run,
        steps=2,
        batch_size=2,
        device="cpu",
        log_every=1,
        eval_every=10,
        progress=False,
        init=first,
        text_pairs=2,
    )
    rows = _log(run)
    assert all(float(r["text_pairs"]) > 0 for r in rows) and len(rows) == 2
    assert load_extra(run)["init"] == str(first)
    assert load_config(run).text.copy_pieces
    with pytest.raises(ValueError, match="text pairs"):
        train_s2s(
            corpus / "manifest.jsonl", corpus / "codec", run, steps=3, resume=True, init=first
        )


def test_eot_labels_are_zero_before_and_one_after_the_speech_end() -> None:
    step = DEMO.codec.hop * DEMO.frames_per_step  # 320 samples
    wav = np.zeros(10 * step, dtype=np.float32)
    wav[step + 5 : 3 * step + 7] = 0.5  # speech from step 1 to the 8th sample of step 3
    wav[6 * step] = 0.005  # -46 dBFS: not speech
    end = speech_end(wav)
    assert end == 3 * step + 7
    assert eot_labels(10, end, step).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert eot_labels(4, 3 * step, step).tolist() == [0, 0, 0, 1]  # ends on a step boundary
    assert eot_labels(3, 0, step).tolist() == [1, 1, 1]  # no speech at all

    torch.manual_seed(0)
    codec = TeluCodec(DEMO.codec).eval()
    silence = silence_codes(codec, 0.6, DEMO.frames_per_step)
    assert silence.shape == (DEMO.codec.num_quantizers, 30 * DEMO.frames_per_step)
    short = Example(
        torch.zeros(8, 8, dtype=torch.long), torch.ones(8, 12, dtype=torch.long), 1, 2, 100
    )
    long = Example(
        torch.ones(8, 20, dtype=torch.long), torch.ones(8, 4, dtype=torch.long), 3, 4, 1500
    )
    batch = collate([short, long], silence, DEMO.frames_per_step, DEMO.codec.hop)
    steps = 5 + 30  # the longer turn's 5 steps + 0.6 s of silence
    assert batch.user.shape == (2, 8, steps * 4) and batch.eot_labels.shape == (2, steps)
    assert torch.equal(batch.user[0, :, 8 : 8 + silence.shape[1]], silence)
    assert batch.memory_mask.sum(dim=1).tolist() == [2, 5]
    assert batch.eot_labels.sum(dim=1).tolist() == [steps - 1, steps - 5]
    assert batch.lengths.tolist() == [3, 1] and batch.speaker.tolist() == [1, 3]


def test_the_training_loss_is_the_decoders_own_loss() -> None:
    torch.manual_seed(0)
    codes_only = replace(DEMO, text=TextConfig())
    encoder, decoder = StreamingEncoder(codes_only).eval(), StreamingDecoder(codes_only).eval()
    codes = DEMO.codec.codebook_size
    examples = [
        Example(torch.randint(0, codes, (8, 4 * u)), torch.randint(0, codes, (8, 4 * a)), s, e, 900)
        for u, a, s, e in ((6, 5, 0, 1), (9, 2, 3, 8), (4, 7, 1, 0))
    ]
    batch = collate(examples, torch.zeros(8, 12, dtype=torch.long), 4, DEMO.codec.hop)
    with torch.no_grad():
        logits, targets, per_codebook, eot, _, hidden, *_ = forward(encoder, decoder, batch)
        ce = per_codebook.mean()
        memory, expected_eot = encoder(batch.user, batch.speaker, batch.emotion)
        reference = decoder(
            batch.answer,
            memory,
            batch.speaker,
            batch.emotion,
            memory_mask=batch.memory_mask,
            lengths=batch.lengths,
        )
        expected, parts = decoder.loss(reference, batch.answer, batch.lengths)
    assert float(ce) == pytest.approx(float(expected), rel=1e-5)
    per_codebook = codebook_ce(logits, targets, decoder.vocab.pad)
    assert per_codebook.tolist() == pytest.approx([float(v) for v in parts.values()], rel=1e-5)
    assert torch.allclose(eot, expected_eot) and torch.allclose(hidden, memory)
    # the targets: 7 + 1 EOS step at most; PAD beyond each answer's EOS and in delay slots
    assert (targets != decoder.vocab.pad).sum().item() == 8 * 4 * (5 + 1 + 2 + 1 + 7 + 1)


def test_the_coarse_weight_moves_the_loss_onto_codebook_0(corpus: Path, tmp_path: Path) -> None:
    per_codebook = torch.tensor([4.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert float(weighted_ce(per_codebook)) == pytest.approx(2.25)  # the plain mean
    assert float(weighted_ce(per_codebook, 0.5)) == pytest.approx(3.0)
    assert float(weighted_ce(per_codebook, 0.125)) == pytest.approx(2.25)  # = the mean again
    with pytest.raises(ValueError, match="coarse_weight"):
        train_s2s(corpus / "manifest.jsonl", corpus / "codec", tmp_path, coarse_weight=1.0)


def test_codes_of_a_manifest_are_the_codec_encoding_and_are_cached(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    codec = TeluCodec(DEMO.codec).eval()
    cache = tmp_path / "codes.pt"
    codes, ends = encode_manifest(codec, corpus / "manifest.jsonl", cache=cache, frames_per_step=4)
    assert len(codes) == len(ends) == 24
    lines = (corpus / "manifest.jsonl").read_text().splitlines()
    first = Entry.from_dict(json.loads(lines[0]))
    audio = read_audio(first.path(corpus), RATE)
    wav = tokens.pad_to_steps(audio, 320)
    expected = codec.encode(torch.from_numpy(wav)[None])[0]
    assert codes[first.key].shape == expected.shape and expected.shape[1] % 4 == 0
    assert torch.equal(codes[first.key], expected)  # batched with longer files: still exact
    assert ends[first.key] == speech_end(audio) > 0
    # stored in the smallest type that holds the codebook (256 codes: one byte each)
    stored = torch.load(cache, weights_only=True)
    assert stored["codes"][first.key].dtype == torch.uint8

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("encoded again")

    monkeypatch.setattr(tokens, "encode_entries", never)
    again = encode_manifest(codec, corpus / "manifest.jsonl", cache=cache, frames_per_step=4)
    assert again.speech_ends == ends
    assert all(again.codes[k].dtype == torch.long for k in codes)
    assert all(torch.equal(again.codes[k], codes[k]) for k in codes)
    with torch.no_grad():
        next(codec.parameters()).add_(1.0)  # other weights: the cache is stale
    with pytest.raises(AssertionError, match="encoded again"):
        encode_manifest(codec, corpus / "manifest.jsonl", cache=cache, frames_per_step=4)


AUDIO_BLOCKED = """
import importlib.abc, runpy, sys
class NoAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"av", "soundfile", "aiortc", "aiohttp", "silero_vad"}:
            raise ImportError("not on this machine: " + name)
sys.meta_path.insert(0, NoAudio())
sys.argv = ["models.train", *sys.argv[1:]]
runpy.run_module("models.train", run_name="__main__")
"""


def test_training_needs_only_the_manifest_the_codec_and_the_caches(trained, tmp_path: Path) -> None:
    """A run's codes and text caches, manifest and codec can go without the audio, to a
    machine without an audio stack (a GPU machine), and `python -m models.train s2s` trains
    there."""
    out, _ = trained
    corpus = out.parent
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(corpus / "manifest.jsonl", bundle)
    shutil.copytree(corpus / "codec", bundle / "codec")
    (bundle / "s2s").mkdir()
    shutil.copy(out / "codes.pt", bundle / "s2s")
    shutil.copy(out / "text.pt", bundle / "s2s")
    shutil.copy(out / "voice_embeddings.pt", bundle / "s2s")
    assert not list(bundle.rglob("*.wav"))
    command = [sys.executable, "-c", AUDIO_BLOCKED, "s2s", "--data", "manifest.jsonl"]
    command += ["--codec", "codec", "--out", "s2s", "--steps", "2", "--batch-size", "4"]
    command += ["--device", "cpu", "--eval-every", "2", "--log-every", "1", "--no-progress"]
    command += ["--coarse-weight", "0.5", "--max-hearing-cer", "-1"]  # a corpus of 24 clips
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(command, cwd=bundle, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout.splitlines()[-1])
    assert metrics["step"] == 2 and metrics["train_pairs"] == 8 and metrics["val_ce"] > 0
    assert load(bundle / "s2s").trained


def test_a_recognizer_that_mishears_the_corpus_is_refused(trained, tmp_path: Path) -> None:
    """A run records how well the recognizer hears the corpus's user turns; one that hears
    them worse than the bound (e.g. trained on other voices) stops the run before training."""
    out, _ = trained
    cer = load_extra(out)["hearing_cer"]
    assert 0.0 < cer < 2.0
    corpus = out.parent
    (tmp_path / "s2s").mkdir()
    for cache in ("codes.pt", "text.pt"):
        shutil.copy(out / cache, tmp_path / "s2s")
    with pytest.raises(ValueError, match="hears the user turns"):
        train_s2s(
            corpus / "manifest.jsonl",
            corpus / "codec",
            tmp_path / "s2s",
            steps=1,
            batch_size=4,
            device="cpu",
            progress=False,
            max_hearing_cer=cer * 0.9,
        )
    assert not (tmp_path / "s2s" / "log.csv").exists()


def test_training_lowers_the_loss_and_saves_a_loadable_checkpoint(trained) -> None:
    out, metrics = trained
    rows = _log(out)
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert len(losses) == STEPS // 5
    assert losses[-1] < losses[0] - 0.5, losses
    assert metrics["first_loss"] == pytest.approx(losses[0], rel=1e-4)
    assert metrics["step"] == STEPS and metrics["train_pairs"] == 8
    assert metrics["validation_pairs"] == 1
    for key in ("val_accuracy", "val_accuracy_q0", "val_accuracy_q7", "val_eot_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    # one validation pair: "the next pair's user turn" is its own
    assert metrics["val_ce_other_turn"] == pytest.approx(metrics["val_ce"], rel=1e-3)
    # trained with condition dropout: the null conditioning is learned, and differs
    assert metrics["val_ce_unconditioned"] > 0
    assert metrics["val_ce_unconditioned"] != pytest.approx(metrics["val_ce"], rel=1e-6)
    assert float(load(out).decoder.null_condition.detach().abs().sum()) > 0
    # the turn heads (CTC over the transcript, intent) learn, and stay out of the checkpoint
    ctc = [float(r["ctc"]) for r in rows if r["ctc"]]
    intent = [float(r["intent"]) for r in rows if r["intent"]]
    assert len(ctc) == len(intent) == STEPS // 5
    half = len(ctc) // 2
    assert sum(ctc[half:]) < sum(ctc[:half]), ctc
    assert sum(intent[half:]) < sum(intent[:half]), intent
    assert metrics["val_ctc"] > 0 and metrics["val_intent_accuracy"] in (0.0, 1.0)
    assert not list(out.glob("*heads*"))
    # the text stream learns, and the checkpoint carries the tokenizer it was trained with
    text = [float(r["text"]) for r in rows if r["text"]]
    assert len(text) == STEPS // 5 and text[-1] < text[0] - 0.5, text
    assert 0.0 <= metrics["val_text_accuracy"] <= 1.0 and metrics["val_text_ce"] > 0
    assert (out / "tokenizer" / "tokenizer.model").is_file()
    models = load(out)
    assert models.trained and models.config.codec == DEMO.codec
    assert load_extra(out)["step"] == STEPS

    parser = argparse.ArgumentParser()
    add_train_s2s_command(parser.add_subparsers())
    args = parser.parse_args(["s2s", "--data", "m", "--codec", "c", "--out", "o"])
    assert args.preset == "demo" and args.log_level == "warning" and callable(args.run)


def test_resume_continues_from_the_saved_step(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = trained
    corpus = out.parent
    copy = tmp_path / "s2s"
    shutil.copytree(out, copy)
    before = load(copy).decoder.state_dict()
    with pytest.raises(FileExistsError):
        train_s2s(corpus / "manifest.jsonl", corpus / "codec", copy, steps=STEPS + 5)
    with pytest.raises(ValueError, match="turn head weights"):  # trained with the heads
        train_s2s(corpus / "manifest.jsonl", corpus / "codec", copy, steps=STEPS + 5, resume=True)
    with pytest.raises(ValueError, match="coarse_weight"):  # trained with the plain mean
        train_s2s(
            *(corpus / "manifest.jsonl", corpus / "codec", copy),
            steps=STEPS + 5,
            resume=True,
            ctc_weight=1.0,
            intent_weight=1.0,
            coarse_weight=0.5,
        )

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached codes were not reused")

    monkeypatch.setattr(tokens, "encode_entries", never)
    metrics = train_s2s(
        corpus / "manifest.jsonl",
        corpus / "codec",
        copy,
        steps=STEPS + 5,
        batch_size=4,
        lr=2e-3,
        device="cpu",
        resume=True,
        log_every=5,
        progress=False,
        ctc_weight=1.0,
        intent_weight=1.0,
        text_weight=4.0,  # a loss weight may change on resume, and the run records it
    )
    assert metrics["step"] == STEPS + 5 and load_extra(copy)["step"] == STEPS + 5
    assert load_extra(copy)["text_weights"] == [[0, 1.0], [STEPS, 4.0]]
    assert load(copy).config.text.text_weight == 4.0
    steps = [int(r["step"]) for r in _log(copy)]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS + 5 and STEPS in steps
    after = load(copy).decoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert metrics["first_loss"] == trained[1]["first_loss"]


def test_eot_decisions_are_timed_from_the_end_of_speech() -> None:
    assert ready_samples(build(DEMO), 3).tolist() == [640, 960, 1280]  # chunk 1 + look-ahead 1
    probs = np.array([0.0, 0.6, 0.0, 0.0, 0.0, 0.2, 0.8, 0.95])
    ready = (np.arange(8) + 2) * 320
    # speech in steps 1..4 (samples 400 .. 1499): step 1 fires inside the turn
    assert model_outcome(probs, ready, 400, 1500, 320, 0.5) == Outcome(True, 8 * 320 - 1500)
    assert model_outcome(probs, ready, 400, 1500, 320, 0.9) == Outcome(False, 9 * 320 - 1500)
    assert model_outcome(probs, ready, 400, 1500, 320, 0.99) == Outcome(False, None)
    # Silero windows of 512 samples: a 320 ms rule ends 10 silent windows after the speech
    speech, silence = [0.9] * 5, [0.0] * 12
    rule = {ms: TurnConfig(min_silence_ms=ms) for ms in (320, 480)}
    assert detector_outcome(rule[320], speech + silence, 5 * 512) == Outcome(False, 10 * 512)
    with_pause = speech + silence + speech + silence
    assert detector_outcome(rule[320], with_pause, 22 * 512) == Outcome(True, 10 * 512)
    assert detector_outcome(rule[480], with_pause, 22 * 512) == Outcome(False, None)
    # the agent's --eot model: the head's latest probability with each window; confident
    # after 3 silent windows (>= 96 ms of silence) it ends the turn there
    head = np.array([0.0] * 6 + [0.95] * 20)
    eot = window_eot(head, (np.arange(26) + 2) * 320, len(speech + silence))
    assert eot[0] is None and eot[1] == 0.0 and eot[-1] == 0.95
    model = TurnConfig(min_silence_ms=320, eot="model", eot_threshold=0.9)
    assert detector_outcome(model, speech + silence, 5 * 512, eot) == Outcome(False, 3 * 512)
    summary = summarise([Outcome(True, 1600), Outcome(False, 3200), Outcome(False, None)], RATE)
    assert summary["median_delay_ms"] == 150 and summary["miss_rate"] == pytest.approx(1 / 3)
    assert summary["false_fire_rate"] == pytest.approx(1 / 3)


def test_eot_evaluation_reports_every_threshold_and_silence_rule(trained) -> None:
    out, _ = trained
    result = evaluate_eot(out, out.parent / "manifest.jsonl", device="cpu")
    assert result["turns"] == 3 and result["step_ms"] == 20
    assert [r["threshold"] for r in result["model"]] == [0.3, 0.5, 0.7, 0.9]
    assert [r["min_silence_ms"] for r in result["silero"]] == [320, 480, 576, 704]
    assert [r["threshold"] for r in result["agent_model"]] == [0.3, 0.5, 0.7, 0.9]
    for row in result["model"] + result["silero"] + result["agent_model"]:
        assert 0 <= row["false_fire_rate"] <= 1 and 0 <= row["miss_rate"] <= 1
        for key in ("median_delay_ms", "p95_delay_ms"):
            assert row[key] is None or row[key] >= 0
    silero = {r["min_silence_ms"]: r for r in result["silero"]}
    assert silero[704]["miss_rate"] == 0  # 1.5 s of silence follows every turn
    assert silero[320]["median_delay_ms"] < silero[704]["median_delay_ms"]
    json.dumps(result)


def test_s2s_evaluation_reports_every_accuracy(trained) -> None:
    out, _ = trained
    manifest = out.parent / "manifest.jsonl"
    result = evaluate_s2s(out, manifest, max_turns=2, device="cpu", progress=False)
    assert result["turns"] == 2 and result["answers"] == 8 and result["intents"] == 3
    for key in (
        "answer_accuracy",
        "voice_accuracy",
        "emotion_accuracy",
        "emotion_classifier_accuracy",
        "ended_rate",
    ):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["answer_chance"] == pytest.approx(1 / 3)
    assert result["voice_chance"] == pytest.approx(1 / 4)
    assert set(result["voice_accuracy_by_speaker"]) == set(DEMO.speakers)
    assert set(result["codec_voice_accuracy_by_speaker"]) == set(DEMO.speakers)
    assert result["mean_answer_s"] > 0
    # the two turns are of two intents: each answer is also scored after the other turn
    assert 0 < result["ce_own_turn"] != result["ce_other_turn"] > 0
    json.dumps(result)


def test_the_model_card_holds_the_runs_and_the_measured_figures(trained, tmp_path: Path) -> None:
    from models.eval.codec import evaluate_codec
    from signaling.cli import main

    out, metrics = trained
    manifest = out.parent / "manifest.jsonl"
    shipped = tmp_path / "shipped"
    assert main(["models", "export", str(out), str(shipped)]) == 0
    results = {
        "eval-codec.json": evaluate_codec(shipped, manifest, max_files=2, device="cpu"),
        "eval-s2s.json": evaluate_s2s(shipped, manifest, max_turns=1, device="cpu", progress=False),
        "eval-eot.json": evaluate_eot(shipped, manifest, max_turns=2, device="cpu"),
    }
    for name, result in results.items():
        (shipped / name).write_text(json.dumps(result))
        results[name] = json.loads(json.dumps(result))  # as the card reads it
    args = ["models", "card", str(shipped), "--codec-run", str(out), "--s2s-run", str(out)]
    assert main([*args, "--s2s-run", str(out), "--data", str(manifest)]) == 0
    staged = (shipped / "MODEL_CARD.md").read_text()
    assert staged.count(f"| S2S `{out.name}` | {metrics['step']} |") == 2  # one row a stage
    assert main([*args, "--data", str(manifest)]) == 0
    card = (shipped / "MODEL_CARD.md").read_text()
    assert "trained only on synthetic speech" in card
    assert f"| S2S | {metrics['step']} |" in card
    s2s = results["eval-s2s.json"]
    assert f"{100 * s2s['voice_accuracy']:.1f} %" in card
    assert f"{s2s['ce_own_turn']:.3f} when the model hears their own user turn" in card
    assert "Requested voice by persona: male_1 " in card
    assert f"classifier-free guidance {s2s['guidance']:g})" in card
    assert "What the codec alone lets through of the voice" in card
    assert f"{100 * s2s['ended_rate']:.1f} % of the answers ended" in card
    pesq = results["eval-codec.json"]["levels"]["8"]["pesq_wb"]
    assert f"| 8 | 12.8 | {'-' if pesq is None else f'{pesq:.2f}'} |" in card
    assert card.count("agent `--eot model`") == len(results["eval-eot.json"]["agent_model"])
    assert "| test | " in card and "make demo-model" in card


def test_length_batches_hold_examples_of_similar_length() -> None:
    from models.train.s2s import length_batch

    lengths = torch.randint(100, 2000, (500,), generator=torch.Generator().manual_seed(1))
    order = lengths.argsort()
    generator = torch.Generator().manual_seed(0)
    spreads = []
    for _ in range(50):
        batch = length_batch(order, 8, generator, pool=4)
        assert len(set(batch.tolist())) == 8 and batch.max() < 500
        spreads.append(int(lengths[batch].max() - lengths[batch].min()))
    random_spread = int(lengths.max() - lengths.min())
    assert max(spreads) < random_spread / 5  # 32 neighbours of 500 in sorted order
    small = length_batch(order[:5], 8, generator, pool=4)  # fewer examples than a batch
    assert sorted(small.tolist()) == sorted(order[:5].tolist())


def _dtw_by_definition(a: np.ndarray, b: np.ndarray) -> float:
    total = np.full((len(a) + 1, len(b) + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            step = min(total[i - 1, j], total[i, j - 1], total[i - 1, j - 1])
            total[i, j] = np.linalg.norm(a[i - 1] - b[j - 1]) + step
    return total[-1, -1] / (len(a) + len(b))


def test_dtw_distance_prefers_the_same_sequence_under_time_warping() -> None:
    rng = np.random.default_rng(0)
    for n, m in ((1, 1), (1, 6), (6, 1), (7, 9), (13, 4)):
        a, b = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
        assert dtw_distance(a, b) == pytest.approx(_dtw_by_definition(a, b), rel=1e-9)
    t = np.linspace(0, 1, 40)[:, None]
    a = np.hstack([np.sin(6 * t), np.cos(6 * t)])
    slow = np.repeat(a, 2, axis=0)  # the same path, twice as slow
    other = np.hstack([np.cos(11 * t), np.sin(3 * t)])
    assert dtw_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert dtw_distance(a, slow) < 0.05 < dtw_distance(a, other)


def test_the_emotion_classifier_separates_clearly_different_voices() -> None:
    sentences = [
        "నమస్కారం, మీరు ఎలా ఉన్నారు?",
        "ఈ రోజు వాతావరణం చాలా బాగుంది.",
        "నిన్న క్రికెట్ మ్యాచ్ చూశారా?",
        "నాకు పులిహోర అంటే చాలా ఇష్టం.",
        "మీ పేరు ఏమిటి?",
        "రేపు కలుద్దాం.",
        "ధన్యవాదాలు, మళ్ళీ రండి.",
        "ఇది చాలా మంచి పుస్తకం.",
    ]
    styles = {"NEUTRAL": ("te+m3", 120), "HAPPY": ("te+f4", 220), "EMPATHY": ("te+whisper", 160)}
    wavs = {
        emotion: [synthesize(s, RATE, voice=voice, speed=speed) for s in sentences]
        for emotion, (voice, speed) in styles.items()
    }
    train = [(w, e) for e in styles for w in wavs[e][:5]]
    test = [(w, e) for e in styles for w in wavs[e][5:]]
    classifier = fit_emotion_classifier([w for w, _ in train], [e for _, e in train], epochs=200)
    score = accuracy(classifier, [w for w, _ in test], [e for _, e in test])
    assert score >= 0.75  # chance: 1/3
    with pytest.raises(ValueError, match="unknown emotions"):
        fit_emotion_classifier([wavs["HAPPY"][0]], ["ANGRY"])
