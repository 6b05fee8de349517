"""`train monologue`: the text streams trained on text-only pairs, resumable, and the
checkpoint `train s2s --init` starts from."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.checkpoints import load_extra, load_state
from models.config import DEMO, S2SConfig, with_copy_pieces
from models.data.bank import INTENTS
from models.data.manifest import Dialogue, Entry, write_manifest
from models.data.slots import SLOT_INTENTS, value_splits
from models.eval.monologue import evaluate_monologue, value_steps
from models.s2s.decoder import StreamingDecoder
from models.s2s.delay import TEXT_END
from models.s2s.encoder import StreamingEncoder
from models.text.tokenizer import EPAD, PAD, Tokenizer
from models.train import monologue
from models.train.monologue import free_text, start_from, text_pair_ce, train_monologue

TINY: S2SConfig = replace(
    DEMO,
    name="tiny",
    encoder=replace(DEMO.encoder, layers=1, dim=32, heads=2, conv_kernel=3, ff_mult=2),
    decoder=replace(DEMO.decoder, layers=2, dim=64, heads=2, mlp_ratio=2, max_steps=256),
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Answers with durations (the timing is fitted to them: fast, for short test answers) and
    held-out user turns; the audio files are never read."""
    root = tmp_path_factory.mktemp("monologue")
    entries = []
    for k, intent in enumerate(INTENTS[:8]):
        entries.append(
            Entry(
                f"a{k}.wav",
                0.1 + 0.02 * len(intent.answer),
                intent.answer,
                "male_1",
                "NEUTRAL",
                "train",
                Dialogue(f"a{k}", "agent", None),
                f"a{k}",
                {"intent": intent.name},
            )
        )
        entries.append(
            Entry(
                f"u{k}.wav",
                2.0,
                intent.paraphrases[-1],
                "female_1",
                "NEUTRAL",
                "validation",
                Dialogue(f"u{k}", "user", f"a{k}"),
                f"u{k}",
                {"intent": intent.name},
            )
        )
    slot = SLOT_INTENTS[0]
    value = value_splits(slot.slot)["validation"][0]
    entries.append(
        Entry(
            "s.wav",
            2.0,
            slot.say(0, value),
            "female_1",
            "NEUTRAL",
            "validation",
            Dialogue("s", "user", "sa"),
            "s",
            {"intent": slot.name, "slot": slot.slot, "value": value},
        )
    )
    entries.append(
        Entry(
            "sa.wav",
            3.0,
            slot.answer_with(value),
            "male_1",
            "NEUTRAL",
            "validation",
            Dialogue("sa", "agent", "s"),
            "sa",
            {"intent": slot.name},
        )
    )
    write_manifest(root / "manifest.jsonl", entries)
    return root / "manifest.jsonl"


def _run(
    manifest: Path, out: Path, steps: int, resume: bool = False, stop_at: int | None = None
) -> dict:
    return train_monologue(
        manifest,
        out,
        TINY,
        steps,
        batch_size=6,
        lr=3e-3,
        device="cpu",
        resume=resume,
        log_every=4,
        eval_every=12,
        save_every=4,
        progress=False,
        stop_at=stop_at,
    )


@pytest.fixture(scope="module")
def trained(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "monologue"
    _run(manifest, out, 12)
    return out


def test_the_text_stream_learns_from_text_pairs(trained: Path) -> None:
    with open(trained / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses[-1] < losses[0] - 1.0, losses
    validated = [r for r in rows if r["val_turns"]]
    assert int(validated[-1]["val_turns"]) == 9 and 0 <= float(validated[-1]["val_intent"]) <= 1
    assert load_extra(trained)["monologue"]["timing"]["per_letter"] > 0


def test_a_resumed_run_ends_where_one_straight_run_does(
    manifest: Path, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileExistsError):
        _run(manifest, trained, 12)
    stopped = tmp_path / "stopped"
    calls = {"n": 0}

    def dies_after_10(*args: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return text_pair_ce(*args)

    monkeypatch.setattr(monologue, "text_pair_ce", dies_after_10)
    with pytest.raises(KeyboardInterrupt):
        _run(manifest, stopped, 12)
    monkeypatch.undo()
    assert load_extra(stopped)["step"] == 8  # the last save before it stopped
    _run(manifest, stopped, 12, resume=True)
    a, b = _decoder(stopped), _decoder(trained)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_stopped_at_a_step_resumes_to_the_straight_runs_end(
    manifest: Path, trained: Path, tmp_path: Path
) -> None:
    stopped = tmp_path / "stopped"
    assert _run(manifest, stopped, 12, stop_at=6)["step"] == 6
    assert load_extra(stopped)["step"] == 6  # saved there, off the save_every grid
    _run(manifest, stopped, 12, resume=True)
    a, b = _decoder(stopped), _decoder(trained)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _decoder(checkpoint: Path) -> dict[str, torch.Tensor]:
    encoder, decoder = StreamingEncoder(TINY), StreamingDecoder(TINY)
    start_from(checkpoint, TINY, encoder, decoder)
    return decoder.state_dict()


def test_train_s2s_starts_from_the_monologue_and_only_from_the_same_model(trained: Path) -> None:
    encoder, decoder = StreamingEncoder(TINY), StreamingDecoder(TINY)
    start_from(trained, TINY, encoder, decoder)
    saved = StreamingDecoder(TINY)
    load_state(trained, "decoder", saved)
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in decoder.state_dict().items())
    other = replace(TINY, decoder=replace(TINY.decoder, layers=3))
    with pytest.raises(ValueError, match="another model configuration"):
        start_from(trained, other, StreamingEncoder(other), StreamingDecoder(other))


def test_free_text_is_drawn_from_its_generator_only(trained: Path) -> None:
    encoder, decoder = StreamingEncoder(TINY).eval(), StreamingDecoder(TINY).eval()
    start_from(trained, TINY, encoder, decoder)
    user = torch.tensor([[7, 8, 9, 10], [11, 12, 0, 0]])
    mask = user > 0
    zeros = torch.zeros(2, dtype=torch.long)

    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return free_text(encoder, decoder, user, mask, zeros, zeros, 40, generator, 1.5)

    torch.manual_seed(123)
    first = run(0)
    torch.manual_seed(456)  # the global RNG plays no part
    assert torch.equal(first, run(0)) and first.shape == (2, 40)
    assert not torch.equal(first, run(1))


def test_eval_monologue_judges_the_held_out_turns_and_is_seeded(
    manifest: Path, trained: Path
) -> None:
    first = evaluate_monologue(trained, manifest, "validation", seed=3)
    assert first["turns"] == 9 and first["slot_turns"] == 1
    assert 0 <= first["intent"] <= 1 and first["slot"] in (0.0, 1.0)
    assert first["ce_turns"] == 9 and first["ce_own"] > 0 and first["ce_other"] > 0
    assert first["value_piece_count"] > 0 and 0 <= first["value_pieces"] <= 1
    assert (trained / "tokenizer").is_dir()  # the checkpoint carries its tokenizer
    assert evaluate_monologue(trained, manifest, "validation", seed=3) == first


def test_value_steps_are_where_the_answer_stream_says_the_value() -> None:
    tokenizer = Tokenizer.load()
    name, polite = tokenizer.encode("రాము"), tokenizer.encode("గారు")
    stream = torch.tensor([PAD, EPAD, *name, PAD, EPAD, *polite, TEXT_END])
    assert value_steps(tokenizer, "రాము", stream) == list(range(2, 2 + len(name)))
    assert value_steps(tokenizer, "సీత", stream) == []


def test_free_text_ends_each_row_at_its_end_token() -> None:
    torch.manual_seed(0)
    encoder, decoder = StreamingEncoder(TINY).eval(), StreamingDecoder(TINY).eval()
    with torch.no_grad():
        decoder.text_output.bias[TEXT_END] = 50.0  # every row ends at once
    user = torch.tensor([[7, 8, 9, 10], [11, 12, 0, 0]])
    zeros = torch.zeros(2, dtype=torch.long)
    said = free_text(encoder, decoder, user, user > 0, zeros, zeros, 40, torch.Generator())
    assert said.shape == (2, 40) and (said[:, 0] == TEXT_END).all() and (said[:, 1:] == 0).all()


@pytest.mark.parametrize("config", [TINY, with_copy_pieces(TINY)], ids=["plain", "copy"])
def test_free_running_steps_give_the_teacher_forced_logits(config: S2SConfig) -> None:
    """`text_step` (what `free_text` runs) and `text_hidden`'s whole pass are one computation,
    with and without the copy path."""
    torch.manual_seed(0)
    encoder, decoder = StreamingEncoder(config).eval(), StreamingDecoder(config).eval()
    if decoder.text_copy is not None:
        torch.nn.init.normal_(decoder.text_copy.weight, std=0.05)
    user = torch.tensor([[7, 8, 9, 10], [11, 12, 0, 0]])
    mask = user > 0
    speaker, emotion = torch.tensor([0, 1]), torch.tensor([2, 0])
    inputs = torch.randint(0, config.text.vocab_size, (2, 30))
    with torch.no_grad():
        memory = encoder.user_text(user)
        condition = decoder.condition(speaker, emotion)
        whole = decoder.text_logits(decoder.text_hidden(inputs, memory, condition, mask))
        cache = decoder.new_cache(decoder.project_memory(memory, mask), speaker, emotion, 30)
        steps = [decoder.text_step(cache, inputs[:, t]) for t in range(30)]
    torch.testing.assert_close(torch.stack(steps, 1), whole, atol=1e-4, rtol=1e-4)


def test_the_cli_runs_eval_monologue(manifest: Path, trained: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "signaling.cli",
            "eval",
            "monologue",
            "--checkpoint",
            str(trained),
            "--data",
            str(manifest),
            "--split",
            "validation",
            "--turns",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 validation turns: intent ")
