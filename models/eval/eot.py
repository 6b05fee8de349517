"""How early and how safely the learned end-of-turn head ends a turn, against the Silero
silence rule (`telugu-s2s eval eot`).

Each held-out user turn (a user entry of `split` with a paired answer, whose speaker and emotion
condition the encoder as in training) is followed by `trailing_s` of silence, encoded with the
codec and run through the encoder. The true end of speech is the last sample above -40 dBFS
(the training label). Times count from it, to the moment a decision can be made:

- model, per threshold: the first step after the last speech step whose end-of-turn
  probability exceeds the threshold. The encoder's output for step i exists once its chunk
  and look-ahead have arrived (input up to the end of step (i // C + 1) * C + L - 1, with C
  and L the chunk and look-ahead in steps); the encoder streams exactly what the offline pass
  computes (tests/unit/test_encoder.py), so the offline pass is used. A "false fire" is a
  step between the first and the last speech step above the threshold (the agent would have
  answered inside the turn, e.g. in a pause).
- Silero rule, per min_silence_ms: models.speech.vad.SileroVAD over 32 ms windows and
  models.speech.turns.TurnDetector (the agent's own rule), deciding after the window that completes
  the silence. A false fire is an end of turn decided before the end of speech.
- agent `--eot model`, per threshold: the same TurnDetector with eot="model" (its default
  model_min_silence_ms and min_silence_ms fallback), fed with each window the head's
  probability of the latest step ready by the end of that window: what the agent does.

Per threshold or rule: median and p95 delay (ms) over the turns where it fired after the end,
the false-fire rate and the miss rate (never fired after the end), as fractions of turns.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.manifest import dialogue_pairs, read_manifest
from models.loading import Models, load
from models.speech.audio import read_audio
from models.speech.turns import TurnConfig, TurnDetector, TurnEventKind
from models.speech.vad import WINDOW, SileroVAD
from models.train.common import select_device
from models.train.tokens import pad_to_steps, speech_end

log = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
SILENCE_MS = (320, 480, 576, 704)
TRAILING_S = 1.5
"""Silence after each turn: room for the slowest rule to fire."""


@dataclass(frozen=True)
class Outcome:
    """One detector on one turn."""

    false_fire: bool
    delay: int | None
    """Samples from the end of speech to the first decision after it; None if it never
    fired."""


def speech_start(wav: np.ndarray, dbfs: float = -40.0) -> int:
    """Index of the first sample above `dbfs` (len(wav) when there is none)."""
    loud = np.flatnonzero(np.abs(wav) > 10 ** (dbfs / 20))
    return int(loud[0]) if len(loud) else len(wav)


@torch.inference_mode()
def eot_probabilities(models: Models, wav: np.ndarray, speaker: int, emotion: int) -> np.ndarray:
    """Per-step end-of-turn probabilities of a 16 kHz stream."""
    device = next(models.encoder.parameters()).device
    padded = pad_to_steps(wav, models.codec.hop * models.config.frames_per_step)
    codes = models.codec.encode(torch.from_numpy(padded)[None].to(device))
    _, logits = models.encoder(
        codes, torch.tensor([speaker], device=device), torch.tensor([emotion], device=device)
    )
    return torch.sigmoid(logits[0].float()).cpu().numpy()


def ready_samples(models: Models, steps: int) -> np.ndarray:
    """(steps,) the stream sample count at which each encoder step's output exists."""
    encoder = models.encoder
    step_samples = models.codec.hop * models.config.frames_per_step
    index = np.arange(steps)
    return ((index // encoder.chunk + 1) * encoder.chunk + encoder.lookahead) * step_samples


def model_outcome(
    probs: np.ndarray, ready: np.ndarray, start: int, end: int, step_samples: int, threshold: float
) -> Outcome:
    """The head at one threshold on one turn (speech from sample `start` to `end`)."""
    first, last = start // step_samples, (end - 1) // step_samples
    fires = probs > threshold
    after = np.flatnonzero(fires[last + 1 :])
    delay = None if len(after) == 0 else int(ready[last + 1 + after[0]] - end)
    return Outcome(bool(fires[first : last + 1].any()), delay)


def window_eot(probs: np.ndarray, ready: np.ndarray, windows: int) -> list[float | None]:
    """The head's probability the agent has at the end of each VAD window: that of the latest
    step ready by then (None before the first)."""
    ends = (np.arange(windows) + 1) * WINDOW
    latest = np.searchsorted(ready, ends, side="right") - 1
    return [float(probs[i]) if i >= 0 else None for i in latest]


def detector_outcome(
    config: TurnConfig,
    probs: Sequence[float],
    end: int,
    eot_probs: Sequence[float | None] | None = None,
) -> Outcome:
    """The agent's TurnDetector with `config` on one turn's window probabilities (and, for
    eot="model", the head's probability with each window)."""
    detector = TurnDetector(config)
    false_fire, delay = False, None
    for index, prob in enumerate(probs):
        eot = None if eot_probs is None else eot_probs[index]
        event = detector.update(prob, float(index), eot)
        if event is None or event.kind is not TurnEventKind.END_OF_TURN:
            continue
        decided = (index + 1) * WINDOW
        if decided < end:
            false_fire = True
        else:
            delay = decided - end
            break
    return Outcome(false_fire, delay)


def summarise(outcomes: list[Outcome], rate: int) -> dict[str, float | None]:
    """Median and p95 delay (ms) where it fired after the end; false-fire and miss rates."""
    delays = [1000 * o.delay / rate for o in outcomes if o.delay is not None]
    return {
        "median_delay_ms": float(np.median(delays)) if delays else None,
        "p95_delay_ms": float(np.percentile(delays, 95)) if delays else None,
        "false_fire_rate": sum(o.false_fire for o in outcomes) / len(outcomes),
        "miss_rate": 1 - len(delays) / len(outcomes),
    }


def evaluate_eot(
    checkpoint: str | Path,
    manifest: str | Path,
    split: str = "test",
    thresholds: Sequence[float] = THRESHOLDS,
    silence_ms: Sequence[int] = SILENCE_MS,
    max_turns: int | None = 200,
    device: str = "auto",
    trailing_s: float = TRAILING_S,
    seed: int = 0,
) -> dict[str, Any]:
    """End-of-turn delay and false-fire rate of the checkpoint's head at each threshold and of
    the Silero rule at each min_silence_ms, on (up to `max_turns`, chosen at random) user turns
    of `split` (see the module doc)."""
    manifest = Path(manifest)
    models = load(checkpoint, device=select_device(device))
    config = models.config
    rate = config.codec.sample_rate
    turns = [(u, a) for u, a in dialogue_pairs(read_manifest(manifest)) if u.split == split]
    if not turns:
        raise ValueError(f"{manifest} has no {split} user turns with a paired answer")
    if max_turns is not None and len(turns) > max_turns:
        turns = random.Random(seed).sample(turns, max_turns)
    step_samples = models.codec.hop * config.frames_per_step
    vad = SileroVAD()
    model: dict[float, list[Outcome]] = {t: [] for t in thresholds}
    silero: dict[int, list[Outcome]] = {m: [] for m in silence_ms}
    agent: dict[float, list[Outcome]] = {t: [] for t in thresholds}
    scored = 0
    for user, answer in turns:
        speech = read_audio(user.path(manifest.parent), rate)
        end = speech_end(speech)
        if end == 0:
            log.warning("%s has no speech above -40 dBFS: skipped", user.key)
            continue
        start = speech_start(speech)
        scored += 1
        wav = np.concatenate((speech, np.zeros(round(trailing_s * rate), dtype=np.float32)))
        probs = eot_probabilities(
            models,
            wav,
            config.speakers.index(answer.speaker),
            config.emotions.index(answer.emotion),
        )
        ready = ready_samples(models, len(probs))
        for threshold in thresholds:
            model[threshold].append(
                model_outcome(probs, ready, start, end, step_samples, threshold)
            )
        vad.reset()
        windows = pad_to_steps(wav, WINDOW).reshape(-1, WINDOW)
        vad_probs = [vad.prob(w) for w in windows]
        for min_silence in silence_ms:
            rule = replace(TurnConfig(), min_silence_ms=min_silence)
            silero[min_silence].append(detector_outcome(rule, vad_probs, end))
        eot_probs = window_eot(probs, ready, len(windows))
        for threshold in thresholds:
            rule = replace(TurnConfig(), eot="model", eot_threshold=threshold)
            agent[threshold].append(detector_outcome(rule, vad_probs, end, eot_probs))
    return {
        "checkpoint": str(checkpoint),
        "split": split,
        "turns": scored,
        "step_ms": config.step_ms,
        "model": [{"threshold": t, **summarise(o, rate)} for t, o in model.items() if o],
        "silero": [{"min_silence_ms": m, **summarise(o, rate)} for m, o in silero.items() if o],
        "agent_model": [{"threshold": t, **summarise(o, rate)} for t, o in agent.items() if o],
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a small text table."""

    def ms(value: float | None) -> str:
        return "     -" if value is None else f"{value:6.0f}"

    lines = [
        f"{result['checkpoint']}: {result['turns']} {result['split']} turns "
        f"(step {result['step_ms']:g} ms)",
        "detector                  median_ms  p95_ms  false_fire  miss",
    ]
    rows = [(f"head p > {r['threshold']:g}", r) for r in result["model"]]
    rows += [(f"silero {r['min_silence_ms']} ms", r) for r in result["silero"]]
    rows += [(f"agent --eot model {r['threshold']:g}", r) for r in result["agent_model"]]
    for name, r in rows:
        lines.append(
            f"{name:25} {ms(r['median_delay_ms'])}    {ms(r['p95_delay_ms'])}  "
            f"{r['false_fire_rate']:10.2f}  {r['miss_rate']:4.2f}"
        )
    return "\n".join(lines)


def add_eval_eot_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `eot` to the subcommands of `telugu-s2s eval`."""
    p = subparsers.add_parser(
        "eot",
        help="end-of-turn delay and false fires: learned head vs Silero silence rule",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (codec + S2S)")
    p.add_argument("--data", required=True, help="manifest (JSONL) with dialogue pairs")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument(
        "--thresholds", type=float, nargs="+", default=list(THRESHOLDS), help="head thresholds"
    )
    p.add_argument(
        "--silence-ms", type=int, nargs="+", default=list(SILENCE_MS), help="Silero rules"
    )
    p.add_argument("--max-turns", type=int, default=200, help="user turns scored (random pick)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run_eval_eot)
    return p


def _run_eval_eot(args: argparse.Namespace) -> int:
    result = evaluate_eot(
        args.checkpoint,
        args.data,
        args.split,
        args.thresholds,
        args.silence_ms,
        args.max_turns,
        args.device,
    )
    if not args.json:
        print(format_table(result))
    print(json.dumps(result))
    return 0
