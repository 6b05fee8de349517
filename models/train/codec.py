"""Training TeluCodec on the train split of a manifest (`telugu-s2s train codec`).

Recipe: random crops (a whole number of codec frames) of the train-split audio, held in memory
at the codec's sample rate; the codec draws 1..8 quantizer levels in half of the batches and
uses all 8 in the others (quantizer dropout, CodecConfig.quantizer_dropout). Every loss compares
the reconstruction with the crop delayed by the decoder's delay (`TeluCodec.delayed`: 0 for the
conv decoder, n_fft - hop samples for the istft decoder).
The generator loss is 15 x multi-scale log-mel L1 + multi-resolution STFT (spectral convergence
+ log magnitude) + the quantizer's weighted commitment and orthogonal losses; with the
adversarial part, from step `adversarial_start` on, also the hinge loss of a multi-scale STFT
discriminator and 2 x its relative feature-matching loss. AdamW (betas 0.8, 0.99, weight decay
on weights only, never on the codebooks) with warm-up and cosine decay; the discriminator has
its own AdamW at the same learning rate. bf16 autocast on CUDA, fp32 on CPU; gradient clipping.

Decoder-only fine-tuning (`init` + `decoder_only`): starting from a trained codec, only its
decoder trains, on all quantizer levels; the encoder and the quantizer stay exactly as they
were (eval mode: no EMA codebook updates), so the codes are the same and an S2S model trained
on them stays valid with the new decoder (`models export --codec`). The quantizer's losses
are constant then and left out.

`out_dir` receives the codec checkpoint (models.checkpoints, module "codec"), train_state.pt
(see models.train.common) every `save_every` steps and at the end, and log.csv with the means
of the losses over every `log_every` steps.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.checkpoints import load_config, load_state, save_checkpoint
from models.codec import TeluCodec
from models.config import PRESETS, S2SConfig, preset
from models.data.manifest import read_manifest
from models.speech.audio import read_audio, to_int16
from models.train.common import (
    LOG_FILE,
    TRAIN_STATE,
    Averages,
    CsvLog,
    add_run_options,
    autocast,
    describe,
    parameter_groups,
    progress_bar,
    read_train_state,
    restore_train_state,
    run_result,
    save_train_state,
    seed_everything,
    select_device,
    set_lr,
    set_threads,
    warmup_cosine,
)
from models.train.discriminator import MultiScaleSTFTDiscriminator
from models.train.losses import (
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)

log = logging.getLogger(__name__)

BETAS = (0.8, 0.99)
WEIGHT_DECAY = 0.01
NO_DECAY = ("codewords",)
"""Parameter names kept out of weight decay besides biases: the VQ codebooks."""
WARMUP_STEPS = 500
"""Learning-rate warm-up, capped at a tenth of the run."""
CODEC_CLIP = 1000.0
DISCRIMINATOR_CLIP = 10.0
"""Gradient-norm clipping (as DAC): only spikes are clipped."""

LOG_FIELDS = (
    "step",
    "loss",
    "mel",
    "stft",
    "commitment",
    "orthogonal",
    "levels",
    "adversarial",
    "feature_matching",
    "discriminator",
    "grad_norm",
    "lr",
    "seconds",
)
"""Columns of log.csv: means over the logged steps; mel and stft unweighted, loss the weighted
generator total; levels the quantizer levels used; adversarial columns empty before the
discriminator starts; seconds of training since the first step (across resumes)."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's losses (the quantizer's come weighted from the codec)."""

    mel: float = 15.0
    stft: float = 1.0
    adversarial: float = 1.0
    feature_matching: float = 2.0


class CropSampler:
    """Audio clips in memory (as int16, half the memory of float32); batches of random
    fixed-length crops.

    A crop starts in a clip drawn with probability proportional to its length (every second of
    audio equally likely) at a uniform offset; clips shorter than a crop are zero-padded.
    """

    def __init__(self, clips: list[np.ndarray], length: int, generator: torch.Generator) -> None:
        if not clips:
            raise ValueError("no training audio")
        self.clips = [torch.from_numpy(to_int16(clip)) for clip in clips]
        self.length = length
        self.generator = generator
        self._weights = torch.tensor([float(len(clip)) for clip in clips])

    def batch(self, size: int) -> Tensor:
        """(size, length) float32 crops."""
        picks = torch.multinomial(self._weights, size, replacement=True, generator=self.generator)
        out = torch.zeros(size, self.length)
        for row, index in enumerate(picks.tolist()):
            clip = self.clips[index]
            spare = max(0, len(clip) - self.length)
            start = int(torch.randint(spare + 1, (), generator=self.generator))
            piece = clip[start : start + self.length]
            out[row, : len(piece)] = piece.float() / 32768.0
        return out


def load_clips(manifest: str | Path, split: str, rate: int) -> list[np.ndarray]:
    """Every `split` file of a manifest as mono float32 at `rate`."""
    root = Path(manifest).parent
    entries = read_manifest(manifest, split)
    if not entries:
        raise ValueError(f"{manifest} has no {split} entries")
    return [read_audio(entry.path(root), rate) for entry in entries]


def crop_length(segment_seconds: float, config: S2SConfig) -> int:
    """Samples of a training crop: the segment rounded to whole codec frames (at least one)."""
    hop = config.codec.hop
    return max(1, round(segment_seconds * config.codec.sample_rate / hop)) * hop


def _resolve_config(config: str | S2SConfig) -> S2SConfig:
    return preset(config) if isinstance(config, str) else config


def train_codec(
    manifest: str | Path,
    config: str | S2SConfig,
    out_dir: str | Path,
    steps: int = 20_000,
    batch_size: int = 8,
    segment_seconds: float = 1.0,
    lr: float = 3e-4,
    adversarial: bool = True,
    device: str = "auto",
    resume: bool = False,
    log_every: int = 50,
    seed: int = 0,
    *,
    adversarial_start: int = 2_000,
    save_every: int = 1_000,
    weights: LossWeights | None = None,
    discriminator_filters: int = 32,
    progress: bool = True,
    init: str | Path | None = None,
    decoder_only: bool = False,
    decoder: str | None = None,
) -> dict[str, float]:
    """Train (or, with `resume`, continue training) a codec to `steps` steps in `out_dir`.

    `config` is a preset name or an S2SConfig (with `init`, the codec sizes of that checkpoint
    are used). Without `resume` an out_dir that already holds train state is an error; with
    it, a run continues from its last saved step (a fresh run starts when there is nothing to
    resume). `init`: a codec checkpoint to start from; `decoder_only`: train only its decoder
    (see the module doc); `decoder`: "conv" or "istft" instead of the preset's decoder (not
    with `init`). Returns the last logged means, "step" and "steps_per_second" of this
    call.
    """
    if decoder_only and init is None:
        raise ValueError("decoder-only training needs a trained codec to start from (init)")
    config = _resolve_config(config)
    if decoder is not None:
        if init is not None:
            raise ValueError("a codec to start from (init) keeps its own decoder")
        config = replace(config, codec=replace(config.codec, decoder=decoder))
    if init is not None:
        config = replace(config, codec=load_config(init).codec)
    weights = weights or LossWeights()
    out = Path(out_dir)
    resuming = (out / TRAIN_STATE).exists()
    if resuming and not resume:
        raise FileExistsError(f"{out} already holds a training run; resume it or pick another")
    torch_device = select_device(device)
    seed_everything(seed)
    data_generator = torch.Generator().manual_seed(seed)

    codec = TeluCodec(config.codec)
    if init is not None:
        load_state(init, "codec", codec)
    codec.to(torch_device).train()
    trained = codec
    if decoder_only:
        codec.encoder.eval().requires_grad_(False)
        codec.quantizer.eval().requires_grad_(False)
        trained = codec.decoder
    codec_optimizer = torch.optim.AdamW(
        parameter_groups(trained, WEIGHT_DECAY, NO_DECAY), lr=lr, betas=BETAS
    )
    scheduler = warmup_cosine(codec_optimizer, min(WARMUP_STEPS, steps // 10), steps)
    modules: dict[str, torch.nn.Module] = {"codec": codec}
    optimizers: dict[str, torch.optim.Optimizer] = {"codec": codec_optimizer}
    discriminator = None
    if adversarial:
        discriminator = MultiScaleSTFTDiscriminator(discriminator_filters).to(torch_device)
        modules["discriminator"] = discriminator.train()
        optimizers["discriminator"] = torch.optim.AdamW(
            parameter_groups(discriminator, WEIGHT_DECAY), lr=lr, betas=BETAS
        )

    start, seconds_before = 0, 0.0
    if resuming:
        saved = read_train_state(out)
        if S2SConfig.from_dict(saved["extra"]["config"]) != config:
            raise ValueError(f"{out} was trained with another configuration than {config.name}")
        if saved["extra"].get("decoder_only", False) != decoder_only:
            raise ValueError(f"{out} was trained with decoder_only={not decoder_only}")
        state = restore_train_state(saved, modules, optimizers, {"codec": scheduler})
        start, seconds_before = state.step, float(state.extra["seconds"])
        data_generator.set_state(state.extra["data_rng"])
        if state.missing:
            log.warning("resumed without saved %s: starting those fresh", ", ".join(state.missing))
        log.info("resuming %s at step %d", out, start)

    sampler = CropSampler(
        load_clips(manifest, "train", config.codec.sample_rate),
        crop_length(segment_seconds, config),
        data_generator,
    )
    mel_loss = MultiScaleMelLoss(config.codec.sample_rate).to(torch_device)
    stft_loss = MultiResolutionSTFTLoss().to(torch_device)
    csv_log = CsvLog(out / LOG_FILE, LOG_FIELDS, start if resuming else None)
    averages = Averages()
    last: dict[str, float] = {}

    def save(step: int, seconds: float) -> None:
        extra = {
            "config": config.to_dict(),
            "seconds": seconds,
            "data_rng": data_generator.get_state(),
            "decoder_only": decoder_only,
        }
        save_train_state(out, step, modules, optimizers, {"codec": scheduler}, extra)
        metrics = {k: v for k, v in last.items() if k != "step"}
        save_checkpoint(out, {"codec": codec}, config, {"step": step, "train": metrics})

    bar = progress_bar(steps, start, progress)
    began = time.perf_counter()
    for step in range(start + 1, steps + 1):
        crops = sampler.batch(batch_size).to(torch_device)
        with autocast(torch_device):
            if decoder_only:
                with torch.no_grad():
                    codes = codec.encode(crops)
                reconstruction, quantizer_losses = codec.decode(codes), {}
            else:
                reconstruction, codes, quantizer_losses = codec(crops)
        reconstruction = reconstruction.float()
        real = codec.delayed(crops)
        values = {
            "levels": torch.tensor(float(codes.shape[1])),
            "mel": mel_loss(reconstruction, real),
            "stft": stft_loss(reconstruction, real),
            **quantizer_losses,
        }
        loss = weights.mel * values["mel"] + weights.stft * values["stft"]
        loss = loss + sum(quantizer_losses.values())
        use_discriminator = discriminator is not None and step > adversarial_start
        if use_discriminator:
            with autocast(torch_device):
                real_logits, real_features = discriminator(real)
                discriminator.requires_grad_(False)  # gradients to the codec only
                fake_logits, fake_features = discriminator(reconstruction)
                discriminator.requires_grad_(True)
            values["adversarial"] = generator_hinge_loss(fake_logits)
            values["feature_matching"] = feature_matching_loss(real_features, fake_features)
            loss = loss + weights.adversarial * values["adversarial"]
            loss = loss + weights.feature_matching * values["feature_matching"]
        codec_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        values["grad_norm"] = torch.nn.utils.clip_grad_norm_(trained.parameters(), CODEC_CLIP)
        codec_optimizer.step()
        lr_now = scheduler.get_last_lr()[0]
        scheduler.step()
        if use_discriminator:
            discriminator_optimizer = optimizers["discriminator"]
            set_lr(discriminator_optimizer, lr_now)
            with autocast(torch_device):
                fake_logits, _ = discriminator(reconstruction.detach())
            values["discriminator"] = discriminator_hinge_loss(real_logits, fake_logits)
            discriminator_optimizer.zero_grad(set_to_none=True)
            values["discriminator"].backward()
            torch.nn.utils.clip_grad_norm_(discriminator.parameters(), DISCRIMINATOR_CLIP)
            discriminator_optimizer.step()
        values["loss"] = loss
        averages.add({name: float(value.detach()) for name, value in values.items()})
        bar.update()
        seconds = seconds_before + time.perf_counter() - began
        if step % log_every == 0 or step == steps:
            last = {"step": step, **averages.pop(), "lr": lr_now, "seconds": seconds}
            csv_log.write(last)
            shown = ("loss", "mel", "stft", "discriminator")
            bar.set_postfix_str(describe({k: last[k] for k in shown if k in last}))
        if step % save_every == 0 or step == steps:
            save(step, seconds)
    bar.close()
    return run_result(last, start, steps, time.perf_counter() - began)


def add_train_codec_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `codec` to the subcommands of `telugu-s2s train`."""
    p = subparsers.add_parser(
        "codec",
        help="train TeluCodec on a manifest's train split",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="manifest (JSONL) whose train split is used")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="codec sizes")
    p.add_argument("--out", required=True, help="output directory (checkpoint, state, log)")
    p.add_argument("--steps", type=int, default=20_000, help="total training steps")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment", type=float, default=1.0, help="seconds of each training crop")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    p.add_argument(
        "--no-adversarial", action="store_true", help="reconstruction losses only (no GAN)"
    )
    p.add_argument(
        "--adversarial-start", type=int, default=2_000, help="step the discriminator starts at"
    )
    p.add_argument(
        "--discriminator-filters",
        type=int,
        default=32,
        help="channels of each discriminator scale (32 as Encodec; 16 is ~2.4x faster on CPU)",
    )
    p.add_argument(
        "--decoder",
        choices=["conv", "istft"],
        help="the codec's decoder instead of the preset's: transposed convs or inverse STFT",
    )
    p.add_argument("--init", help="codec checkpoint directory to start from")
    p.add_argument(
        "--decoder-only",
        action="store_true",
        help="train only the decoder of the --init codec (its codes, and S2S models trained "
        "on them, stay valid)",
    )
    add_run_options(p, log_every=50, save_every=1_000)
    p.set_defaults(run=_run_train_codec)
    return p


def _run_train_codec(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    metrics: dict[str, Any] = train_codec(
        args.data,
        args.preset,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        segment_seconds=args.segment,
        lr=args.lr,
        adversarial=not args.no_adversarial,
        device=args.device,
        resume=args.resume,
        log_every=args.log_every,
        seed=args.seed,
        adversarial_start=args.adversarial_start,
        save_every=args.save_every,
        discriminator_filters=args.discriminator_filters,
        progress=not args.no_progress,
        init=args.init,
        decoder_only=args.decoder_only,
        decoder=args.decoder,
    )
    print(json.dumps(metrics))
    return 0
