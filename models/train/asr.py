"""Recognizer training: CTC on the transcripts of every train entry of a manifest (user turns
and agent answers alike: both are speech with their text).

Every clip's log-mel features are computed once (models.asr.features) and kept in memory; the
recognizer's per-mel normalisation is the train set's mean and deviation. Recipe: batches of
clips of similar length (models.train.s2s.length_batch), light SpecAugment (one frequency and
one time mask per clip, set to the mean), AdamW with warm-up and cosine decay, gradient
clipping, fp32. Validation CER and WER (greedy decoding of the offline pass, which equals the
streaming one) every `eval_every` steps. `out_dir` receives the checkpoint
(models.asr.checkpoint), train_state.pt and log.csv (models.train.common), and resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.asr.checkpoint import save_recognizer
from models.asr.config import PRESETS, ASRConfig, asr_preset
from models.asr.decode import greedy_decode
from models.asr.errors import ErrorRates
from models.asr.model import Recognizer
from models.asr.vocab import Vocabulary
from models.data.manifest import Entry, read_manifest
from models.speech.audio import read_audio
from models.train.common import (
    LOG_FILE,
    TRAIN_STATE,
    Averages,
    CsvLog,
    add_run_options,
    describe,
    parameter_groups,
    progress_bar,
    read_train_state,
    restore_train_state,
    run_result,
    save_train_state,
    seed_everything,
    select_device,
    set_threads,
    warmup_cosine,
)
from models.train.s2s import length_batch
from models.train.turn_heads import alphabet

log = logging.getLogger(__name__)

BETAS = (0.9, 0.98)
WEIGHT_DECAY = 0.01
WARMUP_STEPS = 200
CLIP = 1.0
LENGTH_POOL = 8
FREQ_MASK = 10
"""Widest frequency mask, in mel bins."""
TIME_MASK = 20
"""Widest time mask, in feature frames (10 ms)."""
MAX_VALIDATION = 300
LOG_FIELDS = ("step", "loss", "grad_norm", "lr", "seconds", "val_cer", "val_wer")


@dataclass
class Clip:
    """One training or validation example."""

    features: Tensor
    """(frames, mels) log-mel."""
    labels: Tensor
    text: str


def load_clips(
    entries: list[Entry], root: Path, model: Recognizer, vocab: Vocabulary
) -> list[Clip]:
    """Features and labels of every entry with a transcript."""
    clips = []
    rate = model.config.sample_rate
    with torch.no_grad():
        for entry in entries:
            labels = vocab.encode(entry.text)
            if len(labels) == 0:
                continue
            audio = torch.from_numpy(read_audio(entry.path(root), rate))
            clips.append(Clip(model.features(audio[None])[0], labels, entry.text))
    return clips


def set_normalisation(model: Recognizer, clips: list[Clip]) -> None:
    """The model's per-mel mean and deviation from the clips' frames."""
    frames = torch.cat([clip.features for clip in clips])
    model.mean.copy_(frames.mean(dim=0))
    model.std.copy_(frames.std(dim=0).clamp(min=1e-3))


def pad_features(clips: list[Clip]) -> tuple[Tensor, Tensor]:
    """(batch, frames, mels) right-padded with zeros, and the frame counts (batch,)."""
    lengths = torch.tensor([len(clip.features) for clip in clips])
    padded = nn.utils.rnn.pad_sequence([clip.features for clip in clips], batch_first=True)
    return padded, lengths


def spec_augment(
    features: Tensor, lengths: Tensor, fill: Tensor, generator: torch.Generator
) -> Tensor:
    """One frequency and one time mask per clip, set to `fill` (the mean: 0 once normalised)."""
    features = features.clone()
    mels = features.shape[2]
    for i, length in enumerate(lengths.tolist()):
        width = int(torch.randint(FREQ_MASK + 1, (1,), generator=generator))
        low = int(torch.randint(max(1, mels - width), (1,), generator=generator))
        features[i, :, low : low + width] = fill[low : low + width]
        width = min(int(torch.randint(TIME_MASK + 1, (1,), generator=generator)), length // 5)
        start = int(torch.randint(max(1, length - width), (1,), generator=generator))
        features[i, start : start + width] = fill
    return features


def ctc_loss(model: Recognizer, features: Tensor, lengths: Tensor, clips: list[Clip]) -> Tensor:
    """Mean CTC loss (per label) of a padded batch."""
    logits, _, _ = model.from_features(features)
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
    targets = torch.cat([clip.labels for clip in clips]).to(features.device)
    target_lengths = torch.tensor([len(clip.labels) for clip in clips])
    frames = model.front.output_frames(lengths)
    return F.ctc_loss(log_probs, targets, frames, target_lengths, zero_infinity=True)


@torch.no_grad()
def validate(
    model: Recognizer, clips: list[Clip], batch_size: int, device: torch.device
) -> dict[str, float]:
    """CER and WER of greedy decoding over `clips`."""
    model.eval()
    vocab = Vocabulary(model.config.letters)
    rates = ErrorRates()
    for start in range(0, len(clips), batch_size):
        batch = clips[start : start + batch_size]
        features, lengths = pad_features(batch)
        logits, _, _ = model.from_features(features.to(device))
        frames = model.front.output_frames(lengths)
        for clip, row, count in zip(batch, logits.cpu(), frames.tolist(), strict=True):
            rates.add(clip.text, greedy_decode(row[:count], vocab, model.config.frame_s).text)
    model.train()
    return {"val_cer": rates.cer, "val_wer": rates.wer}


def train_asr(
    manifest: str | Path,
    out_dir: str | Path,
    steps: int = 1_500,
    batch_size: int = 16,
    lr: float = 1.5e-3,
    device: str = "auto",
    resume: bool = False,
    seed: int = 0,
    config: str | ASRConfig = "demo",
    *,
    log_every: int = 25,
    eval_every: int = 100,
    save_every: int = 100,
    augment: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or, with `resume`, continue training) a recognizer to `steps` steps on the train
    entries of `manifest`. Returns the last logged means, the latest validation metrics, "step"
    and "steps_per_second" of this call."""
    manifest, out = Path(manifest), Path(out_dir)
    resuming = (out / TRAIN_STATE).exists()
    if resuming and not resume:
        raise FileExistsError(f"{out} already holds a training run; resume it or pick another")
    torch_device = select_device(device)
    seed_everything(seed)
    data_generator = torch.Generator().manual_seed(seed)
    entries = read_manifest(manifest)
    train_entries = [e for e in entries if e.split == "train"]
    if not train_entries:
        raise ValueError(f"{manifest} has no train entries")
    base = asr_preset(config) if isinstance(config, str) else config
    saved = read_train_state(out) if resuming else None
    if saved is not None:
        config = ASRConfig.from_dict(saved["extra"]["config"])
        if config.with_letters(()) != base.with_letters(()):
            raise ValueError(f"{out} was trained with another configuration than {base.name}")
    else:
        config = base.with_letters(alphabet(e.text for e in train_entries))
    model = Recognizer(config)
    vocab = Vocabulary(config.letters)
    root = manifest.parent
    train = load_clips(train_entries, root, model, vocab)
    validation_entries = [e for e in entries if e.split == "validation"]
    if len(validation_entries) > MAX_VALIDATION:  # a fixed sample
        chosen = torch.randperm(len(validation_entries), generator=torch.Generator().manual_seed(0))
        validation_entries = [validation_entries[i] for i in chosen[:MAX_VALIDATION].tolist()]
    validation = load_clips(validation_entries, root, model, vocab)
    validation.sort(key=lambda clip: len(clip.features))
    set_normalisation(model, train)
    model.to(torch_device).train()
    optimizer = torch.optim.AdamW(parameter_groups(model, WEIGHT_DECAY), lr=lr, betas=BETAS)
    scheduler = warmup_cosine(optimizer, max(1, min(WARMUP_STEPS, steps // 10)), steps)
    start, seconds_before = 0, 0.0
    if saved is not None:
        state = restore_train_state(saved, {"asr": model}, {"asr": optimizer}, {"asr": scheduler})
        start, seconds_before = state.step, float(state.extra["seconds"])
        data_generator.set_state(state.extra["data_rng"])
        log.info("resuming %s at step %d", out, start)
    log.info("%d train clips, %d validation clips", len(train), len(validation))

    csv_log = CsvLog(out / LOG_FILE, LOG_FIELDS, start if resuming else None)
    averages = Averages()
    last: dict[str, float] = {}
    validated: dict[str, float] = {}

    def save(step: int, seconds: float) -> None:
        extra = {
            "config": config.to_dict(),
            "seconds": seconds,
            "data_rng": data_generator.get_state(),
        }
        save_train_state(out, step, {"asr": model}, {"asr": optimizer}, {"asr": scheduler}, extra)
        metrics = {k: v for k, v in (last | validated).items() if k != "step"}
        save_recognizer(out, model, {"step": step, "train": metrics})

    bar = progress_bar(steps, start, progress)
    began = time.perf_counter()
    by_length = torch.tensor([len(clip.features) for clip in train]).argsort()
    fill = model.mean.detach().cpu()
    for step in range(start + 1, steps + 1):
        batch = [train[i] for i in length_batch(by_length, batch_size, data_generator, LENGTH_POOL)]
        features, lengths = pad_features(batch)
        if augment:
            features = spec_augment(features, lengths, fill, data_generator)
        loss = ctc_loss(model, features.to(torch_device), lengths, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        lr_now = scheduler.get_last_lr()[0]
        scheduler.step()
        averages.add({"loss": float(loss.detach()), "grad_norm": float(grad_norm)})
        bar.update()
        seconds = seconds_before + time.perf_counter() - began
        row: dict[str, float] = {}
        if step % log_every == 0 or step == steps:
            last = {"step": step, **averages.pop(), "lr": lr_now, "seconds": seconds}
            bar.set_postfix_str(describe({"loss": last["loss"]}))
            row = last
        if validation and (step % eval_every == 0 or step == steps):
            validated = validate(model, validation, 2 * batch_size, torch_device)
            row = {"step": step, "seconds": seconds, **row, **validated}
            log.info("step %d: %s", step, describe(validated))
        if row:
            csv_log.write(row)
        if step % save_every == 0 or step == steps:
            save(step, seconds)
    bar.close()
    elapsed = time.perf_counter() - began
    counts = {"train_clips": len(train), "validation_clips": len(validation)}
    return run_result(last, start, steps, elapsed, **validated, **counts)


def add_train_asr_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `asr` to the subcommands of `telugu-s2s train`."""
    p = subparsers.add_parser(
        "asr",
        help="train the streaming recognizer (CTC) on every train entry of a manifest",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="manifest (JSONL) with transcripts")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="model sizes")
    p.add_argument("--out", required=True, help="output directory (checkpoint, state, log)")
    p.add_argument("--steps", type=int, default=1_500, help="total training steps")
    p.add_argument("--batch-size", type=int, default=16, help="clips per step")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate")
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations")
    p.add_argument("--no-augment", action="store_true", help="no SpecAugment masks")
    add_run_options(p, log_every=25, save_every=100)
    p.set_defaults(run=_run_train_asr)
    return p


def _run_train_asr(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    metrics = train_asr(
        args.data,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        resume=args.resume,
        seed=args.seed,
        config=args.preset,
        log_every=args.log_every,
        eval_every=args.eval_every,
        save_every=args.save_every,
        augment=not args.no_augment,
        progress=not args.no_progress,
    )
    print(json.dumps(metrics))
    return 0
