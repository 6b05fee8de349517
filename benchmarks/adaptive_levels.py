"""Fewer codec levels in silence, on real answers of the demo model, on one thread: how many
answer steps are quiet, what a decoder step and a codec step cost with and without leaving
their finer levels out, and what leaving them out does to the audio.

Each of `--turns` test user turns (picked with `--seed`) is answered twice from the same
generator seed, in one voice (turn i: voice i mod 4, the reference answer's emotion), with the
agent's sampling (guided): with every level (the setting off) and with the finer levels of
quiet steps left out (on). Quality: the answers drawn with every level, rendered with every
level and with the finer levels of their quiet steps left out, compared (mel distance,
PESQ-WB, the energy of the left-out frames, the recognizer's CER against the text stream);
the answers drawn with the setting on, against those drawn off, by the recognizer's CER.

    python -m benchmarks.adaptive_levels --data build/demo/data/manifest.jsonl
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from models.asr.errors import ErrorRates
from models.asr.stream import transcribe
from models.codec.quiet import QuietCodes
from models.controls import emotion_id
from models.data.manifest import dialogue_pairs, read_manifest
from models.eval.metrics import MelDistance, pesq_wb
from models.eval.s2s import MIN_ANSWER_STEPS, turn_memory
from models.loading import DEMO_CHECKPOINT, Models, load
from models.s2s.answer_draw import levels_present
from models.s2s.delay import TEXT_PAD
from models.s2s.sampling import ANSWERS
from models.speech.audio import read_audio
from models.text.tokenizer import EPAD


@dataclass
class Answer:
    """One generated answer and what it cost."""

    codes: Tensor
    """(1, Q, frames), PAD where a level was left out."""
    text: str
    decoder_s: float
    codec_s: float
    steps: int
    left_out: int
    """Steps whose finer levels were left out."""


@dataclass
class Totals:
    """Sums over the answers of one setting."""

    decoder_s: float = 0.0
    codec_s: float = 0.0
    steps: int = 0
    left_out: int = 0
    errors: ErrorRates = field(default_factory=ErrorRates)
    """The recognizer's transcript of each answer against its text stream."""
    answers: int = 0
    ended: int = 0

    def add(self, answer: Answer, heard: str, ended: bool) -> None:
        self.answers += 1
        self.ended += ended
        self.decoder_s += answer.decoder_s
        self.codec_s += answer.codec_s
        self.steps += answer.steps
        self.left_out += answer.left_out
        self.errors.add(answer.text, heard)

    def report(self) -> str:
        return (
            f"{self.answers} answers, {self.ended} ended with EOS, mean "
            f"{self.steps / self.answers:.0f} steps; {self.left_out} steps left out "
            f"({self.left_out / self.steps:.1%}); decoder {1000 * self.decoder_s / self.steps:.3f} "
            f"ms/step, codec {1000 * self.codec_s / self.steps:.3f} ms/step; the recognizer's "
            f"CER against the text stream {self.errors.cer:.1%}"
        )


@torch.inference_mode()
def answer(
    models: Models,
    memory: Tensor,
    speaker: Tensor,
    emotion: Tensor,
    max_steps: int,
    seed: int,
    quiet: QuietCodes | None,
) -> Answer:
    """Generate one answer step by step, decoding each step as the agent does; the CPU time
    of the decoder and of the codec apart (this thread's: other work on the machine is not
    counted)."""
    decoder, codec = models.decoder, models.codec
    generator = torch.Generator().manual_seed(seed)
    steps = decoder.generate_steps(
        memory, speaker, emotion, ANSWERS, generator, max_steps, quiet=quiet
    )
    codes, pieces, state = [], [], None
    decoder_s = codec_s = 0.0
    left_out = 0
    while True:
        started = time.thread_time()
        step = next(steps, None)
        decoder_s += time.thread_time() - started
        if step is None:
            break
        present = levels_present(step.codes, decoder.vocab)
        left_out += present is not None
        started = time.thread_time()
        _, state = codec.decode_stream(step.codes, state, present)
        codec_s += time.thread_time() - started
        codes.append(step.codes)
        if step.text is not None and int(step.text[0]) not in (TEXT_PAD, EPAD):
            pieces.append(int(step.text[0]))
    text = models.tokenizer.decode(pieces) if models.tokenizer is not None else ""
    joined = torch.cat(codes, dim=2) if codes else torch.zeros(1, decoder.quantizers, 0)
    return Answer(joined.long(), text, decoder_s, codec_s, len(codes), left_out)


def render(models: Models, codes: Tensor, present: Tensor | None) -> np.ndarray:
    """Offline decoding of an answer's codes (1, Q, frames)."""
    with torch.inference_mode():
        return models.codec.decode(codes, present)[0].numpy()


def quiet_steps_mask(models: Models, codes: Tensor, quiet: QuietCodes) -> Tensor:
    """(1, Q, frames) level mask leaving out the finer levels of the steps whose level-0
    codes are all quiet (what the setting would have left out of these codes)."""
    group = models.config.frames_per_step
    silent = quiet.is_quiet(codes[0, 0]).view(-1, group).all(dim=1)
    frames = silent.repeat_interleave(group)
    present = torch.ones_like(codes, dtype=torch.bool)
    present[0, 1:, frames] = False
    return present


def dbfs(pcm: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(pcm, dtype=np.float64)) + 1e-20))


def step_flops(models: Models, memory: Tensor, codes: Tensor) -> dict[str, int]:
    """Floating-point operations of one guided decoder position (two rows) computing every
    level and level 0 alone, and of the codec decoding one step: counted, not timed."""
    decoder = models.decoder
    speaker = emotion = torch.zeros(1, dtype=torch.long)
    tokens = torch.full((1, decoder.quantizers, decoder.frames_per_step), 7)
    text = torch.zeros(1, dtype=torch.long)
    flops = {}
    with torch.inference_mode():
        kv = decoder.project_memory(memory)
        for name, fine in (("all", None), ("coarse", torch.zeros(1, dtype=torch.bool))):
            caches = [decoder.new_cache(kv, speaker, emotion, 8, null=null) for null in (0, 1)]
            with FlopCounterMode(display=False) as counter:
                for cache in caches:
                    decoder.step_logits(cache, tokens, text, fine)
            flops[name] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            models.codec.decode_stream(codes[:, :, : models.config.frames_per_step])
        flops["codec"] = counter.get_total_flops()
    return flops


def step_ms(models: Models, memory: Tensor, positions: int = 200) -> dict[str, float]:
    """Median CPU milliseconds (this thread's) of one guided decoder position (two rows:
    conditioned and unconditioned, as an answer steps) computing every level, and level 0
    alone, the two measured in turn at each position of an answer of `positions`."""
    decoder = models.decoder
    speaker = emotion = torch.zeros(1, dtype=torch.long)
    times: dict[str, list[float]] = {"all": [], "coarse": []}
    with torch.inference_mode():
        kv = decoder.project_memory(memory)
        caches = {
            name: [decoder.new_cache(kv, speaker, emotion, positions, null=null) for null in (0, 1)]
            for name in times
        }
        tokens = torch.full((1, decoder.quantizers, decoder.frames_per_step), 7)
        text = torch.zeros(1, dtype=torch.long)
        fine = {"all": None, "coarse": torch.zeros(1, dtype=torch.bool)}
        for _ in range(positions):
            for name, pair in caches.items():
                started = time.thread_time()
                for cache in pair:
                    decoder.step_logits(cache, tokens, text, fine[name])
                times[name].append(time.thread_time() - started)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def head_ms(models: Models, rows: int, levels: str) -> float:
    """CPU milliseconds of the code head for `rows` rows: every level, or level 0 alone."""
    head = models.decoder.output
    coarse = models.config.frames_per_step * models.decoder.vocab.size
    weight, bias = (
        (head.weight, head.bias) if levels == "all" else (head.weight[:coarse], head.bias[:coarse])
    )
    x = torch.randn(rows, head.in_features)
    with torch.inference_mode():
        for _ in range(10):
            torch.nn.functional.linear(x, weight, bias)
        started = time.thread_time()
        for _ in range(500):
            torch.nn.functional.linear(x, weight, bias)
    return (time.thread_time() - started) / 500 * 1000


@dataclass
class Quality:
    """Answers drawn with every level, rendered with every level and with the finer levels
    of their quiet steps left out."""

    share: list[float] = field(default_factory=list)
    mel: list[float] = field(default_factory=list)
    pesq: list[float] = field(default_factory=list)
    snr: list[float] = field(default_factory=list)
    left_pcm: list[np.ndarray] = field(default_factory=list)
    """The full rendering's samples of the left-out frames."""
    loudest: list[float] = field(default_factory=list)
    """dBFS of the loudest left-out step of each answer."""
    errors: ErrorRates = field(default_factory=ErrorRates)
    """The recognizer's transcript of the fewer-level rendering against the full one's."""

    def add(self, models: Models, codes: Tensor, quiet: QuietCodes, mel: MelDistance) -> None:
        rate = models.config.codec.sample_rate
        present = quiet_steps_mask(models, codes, quiet)
        full, masked = render(models, codes, None), render(models, codes, present)
        left = ~present[0, 1]
        self.share.append(float(left.float().mean()))
        self.mel.append(mel(full, masked))
        self.pesq.append(pesq_wb(full, masked, rate))
        noise = np.sum(np.square(full - masked, dtype=np.float64))
        power = np.sum(np.square(full, dtype=np.float64))
        self.snr.append(float(10 * np.log10(power / max(noise, 1e-20))))
        frames = full.reshape(-1, models.codec.hop)[left.numpy()]
        if len(frames):
            self.left_pcm.append(frames.ravel())
            steps = frames.reshape(-1, models.config.frames_per_step * models.codec.hop)
            self.loudest.append(max(dbfs(step) for step in steps))
        heard_full = transcribe(models.recognizer, full).text
        self.errors.add(heard_full, transcribe(models.recognizer, masked).text)

    def report(self) -> str:
        return (
            f"answers drawn with every level, the finer levels of their quiet steps left out: "
            f"quiet {np.mean(self.share):.1%} of steps; mel distance {np.mean(self.mel):.4f} "
            f"(max {np.max(self.mel):.4f}), PESQ-WB {np.nanmean(self.pesq):.2f} (min "
            f"{np.nanmin(self.pesq):.2f}), SNR {np.mean(self.snr):.1f} dB (min "
            f"{np.min(self.snr):.1f}); left-out frames at "
            f"{dbfs(np.concatenate(self.left_pcm)):.1f} dBFS (loudest step "
            f"{max(self.loudest):.1f} dBFS); the recognizer's transcript changes by "
            f"{self.errors.cer:.1%} CER"
        )


def codec_ms(models: Models, codes: Tensor, quiet: QuietCodes, repeats: int = 200) -> dict:
    """Median CPU milliseconds of the codec decoding one step of `codes` (1, Q, frames), streamed,
    with every level and with the finer levels left out."""
    group = models.config.frames_per_step
    step = codes[:, :, :group]
    present = torch.ones_like(step, dtype=torch.bool)
    present[:, 1:] = False
    times: dict[str, list[float]] = {"all": [], "coarse": []}
    states = {"all": None, "coarse": None}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, mask in (("all", None), ("coarse", present)):
                started = time.thread_time()
                _, states[name] = models.codec.decode_stream(step, states[name], mask)
                times[name].append(time.thread_time() - started)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="manifest with dialogue pairs")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = load(DEMO_CHECKPOINT, "demo")
    config, rate = models.config, models.config.codec.sample_rate
    started = time.thread_time()
    quiet = models.codec.quiet_codes
    table_s = time.thread_time() - started
    print(
        f"{datetime.now(UTC).isoformat(timespec='seconds')} {platform.machine()} "
        f"{os.cpu_count()} cpu, torch {torch.__version__}, 1 thread"
    )
    print(
        f"quiet level-0 codes: {int(quiet.quiet.sum())} of {quiet.quiet.numel()} "
        f"{quiet.quiet.nonzero().flatten().tolist()}, fill {quiet.fill.tolist()}, "
        f"found in {table_s:.2f} s"
    )
    manifest = Path(args.data)
    pairs = [(u, a) for u, a in dialogue_pairs(read_manifest(manifest)) if u.split == "test"]
    pairs = random.Random(args.seed).sample(pairs, min(args.turns, len(pairs)))
    step_samples = models.codec.hop * config.frames_per_step
    totals = {"off": Totals(), "on": Totals()}
    quality, mel = Quality(), MelDistance(rate)
    for i, (user, reference) in enumerate(pairs):
        speaker = torch.tensor([i % len(config.speakers)])
        emotion = torch.tensor([emotion_id(reference.emotion)])
        audio = read_audio(user.path(manifest.parent), rate)
        memory, _ = turn_memory(models, audio, speaker, emotion)
        reference_steps = -(-round(reference.duration * rate) // step_samples)
        max_steps = max(MIN_ANSWER_STEPS, 2 * reference_steps)
        runs = {
            name: answer(models, memory, speaker, emotion, max_steps, 1000 + i, table)
            for name, table in (("off", None), ("on", quiet))
        }
        if not all(run.steps for run in runs.values()):
            print(f"turn {i}: an answer ended at once")
            continue
        for name, run in runs.items():
            present = levels_present(run.codes, models.decoder.vocab)
            heard = transcribe(models.recognizer, render(models, run.codes, present)).text
            totals[name].add(run, heard, run.steps < max_steps)
        quality.add(models, runs["off"].codes, quiet, mel)
        print(
            f"turn {i}: steps {runs['off'].steps} off, {runs['on'].steps} on; quiet "
            f"{quality.share[-1]:.0%} off, left out {runs['on'].left_out / runs['on'].steps:.0%} on"
        )
    for name, total in totals.items():
        print(f"{name}: {total.report()}")
    off, on = totals["off"], totals["on"]
    per_off = (off.decoder_s + off.codec_s) / off.steps
    per_on = (on.decoder_s + on.codec_s) / on.steps
    print(
        f"decoder + codec per step, end to end: off {1000 * per_off:.3f} ms, on "
        f"{1000 * per_on:.3f} ms ({1 - per_on / per_off:.1%} less)"
    )
    print(quality.report())
    steps = step_ms(models, memory)
    codec = codec_ms(models, runs["off"].codes, quiet)
    saved = 1 - steps["coarse"] / steps["all"]
    print(
        f"decoder position (guided), median: every level {steps['all']:.3f} ms, level 0 "
        f"{steps['coarse']:.3f} ms ({saved:.1%} less); codec step, median: every level "
        f"{codec['all']:.3f} ms, level 0 {codec['coarse']:.3f} ms"
    )
    flops = step_flops(models, memory, runs["off"].codes)
    share = on.left_out / on.steps
    whole = flops["all"] + flops["codec"]
    cut = flops["all"] - flops["coarse"]
    print(
        f"FLOPs of a step: decoder position (guided) every level {flops['all'] / 1e6:.2f} M, "
        f"level 0 {flops['coarse'] / 1e6:.2f} M; codec {flops['codec'] / 1e6:.2f} M; compute "
        f"saved per answer: {share:.1%} of steps x {cut / whole:.1%} of a step's FLOPs = "
        f"{share * cut / whole:.1%}"
    )
    for rows in (1, 2, 8):
        print(
            f"code head, {rows} rows: every level {head_ms(models, rows, 'all'):.3f} ms, "
            f"level 0 {head_ms(models, rows, 'coarse'):.3f} ms"
        )
    half = head_ms(models, 4, "all") + head_ms(models, 4, "coarse")
    print(f"code head, 8 rows of which 4 quiet: {half:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
