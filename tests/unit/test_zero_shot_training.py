"""Zero-shot voices in S2S training: reference clips drawn from the answer's own voice, mixed
named and zero-shot conditioning, and a corpus's voice bank trained through the projection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.checkpoints import save_checkpoint
from models.codec import TeluCodec
from models.config import preset
from models.data.espeak import synthesize
from models.data.manifest import Dialogue, Entry, read_manifest, write_manifest
from models.data.synth import SMALL_CORPUS, synthesize_corpus
from models.eval.cloning import evaluate_cloning, held_out_voices
from models.loading import DEMO_CHECKPOINT, load
from models.s2s.conditioning import Conditioning
from models.s2s.decoder import StreamingDecoder
from models.s2s.encoder import StreamingEncoder
from models.s2s.sampling import Sampling
from models.speaker import SpeakerEncoder
from models.speech.audio import write_audio
from models.train.common import seed_everything
from models.train.s2s import Example, _voices, train_s2s
from models.train.voice_refs import VoicePool

DEMO = preset("demo")
NO_TEXT = replace(DEMO, text=replace(DEMO.text, vocab_size=0))
"""The demo sizes without text streams (which would run the recognizer over the corpus)."""


def _pool(count: int) -> VoicePool:
    return VoicePool(torch.arange(count, dtype=torch.float32)[:, None].repeat(1, 4))


def _example(speaker: int, voice: VoicePool | None, row: int) -> Example:
    codes = torch.zeros(8, 4, dtype=torch.long)
    return Example(codes, codes, speaker, 0, 80, voice=voice, voice_row=row)


def test_a_reference_is_another_clip_of_the_voice():
    pool, generator = _pool(5), torch.Generator().manual_seed(0)
    drawn = {int(pool.draw(2, generator)[0]) for _ in range(200)}
    assert drawn == {0, 1, 3, 4}
    assert int(pool.draw(0, None)[0]) == 1 and int(pool.draw(3, None)[0]) == 0
    assert int(_pool(1).draw(0, generator)[0]) == 0


def test_unnamed_voices_are_always_zero_shot_and_named_ones_by_share():
    pool, generator = _pool(3), torch.Generator().manual_seed(1)
    bank = [_example(-1, pool, 1) for _ in range(50)]
    speakers, voices, flags = _voices(bank, 0.0, generator, 4, named=4)
    assert bool(flags.all()) and set(speakers.tolist()) == {0, 1, 2, 3}
    assert set(voices[:, 0].tolist()) == {0.0, 2.0}
    named = [_example(2, pool, 0) for _ in range(400)]
    _, voices, flags = _voices(named, 0.3, generator, 4, named=4)
    assert 0.2 < float(flags.float().mean()) < 0.4
    assert bool((voices[~flags] == 0).all()) and bool((voices[flags, 0] > 0).all())
    assert not bool(_voices(named, 0.3, None, 4, named=4)[2].any())
    with pytest.raises(ValueError):
        _voices([_example(-1, None, -1)], 0.0, generator, 4, named=4)


def test_mixed_conditioning_takes_each_rows_own_kind():
    torch.manual_seed(0)
    conditioning = Conditioning(DEMO, 16)
    speaker, emotion = torch.tensor([1, 2]), torch.tensor([0, 3])
    voice = torch.randn(2, DEMO.speaker_embedding_dim, generator=torch.Generator().manual_seed(1))
    mixed = conditioning(speaker, emotion, voice, torch.tensor([True, False]))
    # a row computed in a batch of two may round differently from the same row alone
    close = {"atol": 1e-6, "rtol": 1e-5}
    torch.testing.assert_close(mixed[0], conditioning(voice[:1], emotion[:1])[0], **close)
    torch.testing.assert_close(mixed[1], conditioning(speaker[1:], emotion[1:])[0], **close)


@pytest.fixture(scope="module")
def bank_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bank")
    synthesize_corpus(root / "data", seed=0, **SMALL_CORPUS)
    _keep_train_and_one_validation_intent(root / "data" / "manifest.jsonl")
    torch.manual_seed(0)
    save_checkpoint(root / "codec", {"codec": TeluCodec(DEMO.codec)}, DEMO)
    return root


def _keep_train_and_one_validation_intent(manifest: Path) -> None:
    """Training encodes every clip of its manifest with the codec: leave out the test split
    and all validation intents but one (half the clips; the test needs none of them)."""
    entries = read_manifest(manifest)
    intent = next(e.extra["intent"] for e in entries if e.split == "validation")
    kept = [
        e
        for e in entries
        if e.split == "train" or (e.split == "validation" and e.extra["intent"] == intent)
    ]
    write_manifest(manifest, kept)


def _zero_shot_weights(out: Path) -> torch.Tensor:
    return load_file(str(out / "decoder.safetensors"))["conditioning.zero_shot.weight"]


def _initial_zero_shot_weights() -> torch.Tensor:
    """The projection train_s2s starts from (seed 0: codec, encoder, decoder built in order)."""
    seed_everything(0)
    TeluCodec(DEMO.codec)
    StreamingEncoder(NO_TEXT)
    return StreamingDecoder(NO_TEXT).conditioning.zero_shot.weight.detach()


@pytest.mark.usefixtures("one_thread")
def test_a_voice_bank_trains_the_zero_shot_projection(bank_corpus: Path) -> None:
    """Bank answers (no named voice) reach the decoder only through the projection: two
    steps move it, even with no named answer conditioned zero-shot."""
    manifest = bank_corpus / "data" / "manifest.jsonl"
    speakers = {e.speaker for e in read_manifest(manifest, "train")}
    assert any(s.startswith("bank_") for s in speakers)
    out = bank_corpus / "s2s"
    train_s2s(
        manifest,
        bank_corpus / "codec",
        out,
        steps=2,
        batch_size=8,
        device="cpu",
        log_every=1,
        eval_every=2,
        save_every=2,
        progress=False,
        pairing="intent",
        zero_shot_share=0.0,
        config=NO_TEXT,
    )
    assert (out / "voice_embeddings.pt").exists()
    initial = _initial_zero_shot_weights()
    assert not torch.allclose(_zero_shot_weights(out), initial.to(torch.float16).float())


@pytest.mark.usefixtures("one_thread")
def test_held_out_voices_are_scored_against_each_others_references(tmp_path: Path) -> None:
    """Two voices the shipped model has no name for, two clips each: one answer per voice,
    conditioned on its first clip, judged against both references; their second clips give
    the encoder's own figure."""
    entries = []
    for voice, variant in (("bank_x", "te+m2"), ("bank_y", "te+f5")):
        for k, text in enumerate(("నమస్కారం, ఎలా ఉన్నారు?", "ఈ రోజు వాతావరణం చాలా బాగుంది.")):
            key = f"a-{voice}-{k}"
            write_audio(tmp_path / f"{key}.wav", synthesize(text, 16_000, voice=variant), 16_000)
            entries.append(_entry(key, voice, "agent", text))
    user = _entry("u-0", "female_1", "user", "నమస్కారం")
    write_audio(tmp_path / "u-0.wav", synthesize("నమస్కారం", 16_000), 16_000)
    models = load(DEMO_CHECKPOINT)
    assert set(held_out_voices([*entries, user], "test", models.config.speakers)) == {
        "bank_x",
        "bank_y",
    }
    result = evaluate_cloning(
        models,
        [*entries, user],
        [user],
        tmp_path,
        "test",
        Sampling(0.8, 50, 3.0),
        torch.Generator().manual_seed(0),
        SpeakerEncoder(),
        turns_per_voice=1,
    )
    assert result["held_out_voices"] == 2 and result["held_out_voice_chance"] == 0.5
    assert set(result["held_out_voice_accuracy_by_voice"]) == {"bank_x", "bank_y"}
    assert result["held_out_real_clip_accuracy"] == 1.0  # a male and a female espeak voice
    assert result["held_out_voice_accuracy"] in (0.0, 0.5, 1.0)


def _entry(key: str, speaker: str, role: str, text: str) -> Entry:
    return Entry(
        audio=f"{key}.wav",
        duration=1.0,
        text=text,
        speaker=speaker,
        split="test",
        dialogue=Dialogue(id=key, role=role),
        key=key,
    )
