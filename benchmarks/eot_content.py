"""Can what was said end a turn? A feasibility measurement for a content end-of-turn head.

The silence rule waits 576 ms after every turn because pauses inside turns are that long.
A head that hears *what* was said (the shipped streaming recognizer's GRU outputs carry the
words and the voice's fall) could end a complete turn sooner and wait through a pause after
an unfinished clause. This measures that on the corpus, the way the agent would run it:

- each user turn of the manifest (0.3 s of quiet before it, 1.5 s after, as `eval eot`) is
  streamed window by window (512 samples) through Silero VAD, the agent's TurnDetector
  (silence rule) and the recognizer; after each window the recognizer's latest GRU output;
- training examples (train split): every window in a pause of the detector (a silence inside
  a turn, or the turn's final silence before the rule ends it), labelled 1 if it lies after
  the turn's true end of speech (the last sample above -40 dBFS), else 0;
- the head (`--head`): logistic regression, or one hidden layer of 64, over the GRU output and
  the silence so far (standardised), fitted with L-BFGS;
- beside it, on the same turns, the shipped S2S encoder's end-of-turn head (`--eot model`),
  with `eval eot`'s timing (the probability of the latest step ready after each window);
- evaluation (test split): the agent's rule with `eot="model"` fed the head's probability in
  pauses (its model_min_silence_ms, the 576 ms silence rule as fallback), per threshold: false
  fires (an end of turn before the true end) over all turns and over the turns that pause
  inside, and the end-of-turn delay after the true end, p50 and p95; beside the silence rule
  at several lengths.

    python -m benchmarks.eot_content --data build/demo/data/manifest.jsonl [--train 500]
        [--head linear|mlp] [--cache build/eot-streams.pt]

It prints a table and one JSON line. A research measurement: the agent does not use this
head (docs/benchmarks.md says what it found).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from models.asr.checkpoint import load_recognizer
from models.asr.model import Recognizer
from models.card import machine
from models.data.manifest import Entry, read_manifest
from models.eval.eot import eot_probabilities, ready_samples, window_eot
from models.loading import DEMO_CHECKPOINT, Models, load
from models.speech.audio import MODEL_RATE, read_audio
from models.speech.turns import TurnConfig, TurnDetector, TurnEventKind
from models.speech.vad import WINDOW, SileroVAD
from models.train.tokens import speech_end

LEAD_S = 0.3
TRAILING_S = 1.5
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
SILENCE_MS = (320, 416, 480, 576)


@dataclass
class Stream:
    """One user turn as the agent hears it: per window its VAD probability, the recognizer's
    GRU output after it, and whether the silence rule has it in a pause (and for how long)."""

    probs: np.ndarray
    outputs: np.ndarray
    """(windows, hidden)"""
    pause_ms: np.ndarray
    """Silence so far inside the turn after each window (0: not in a pause)."""
    true_end: int
    """Stream sample just after the last speech sample."""


def stream(path: Path, vad: SileroVAD, recognizer: Recognizer) -> Stream:
    clip = read_audio(path, MODEL_RATE)
    lead = int(LEAD_S * MODEL_RATE)
    total = lead + len(clip) + int(TRAILING_S * MODEL_RATE)
    total += -total % WINDOW
    audio = np.zeros(total, np.float32)
    audio[lead : lead + len(clip)] = clip
    true_end = lead + speech_end(clip)
    vad.reset()
    detector = TurnDetector(TurnConfig())
    state = recognizer.init_state(1)
    latest = torch.zeros(recognizer.config.hidden)
    probs, outputs, pause_ms = [], [], []
    with torch.inference_mode():
        for k in range(total // WINDOW):
            window = audio[k * WINDOW : (k + 1) * WINDOW]
            prob = vad.prob(np.ascontiguousarray(window))
            detector.update(prob, 0.0)
            out, state = recognizer.stream_outputs(torch.from_numpy(window)[None], state)
            if out.shape[1]:
                latest = out[0, -1]
            pause = detector.pause()
            ms = 0 if pause is None else pause.silence_ms
            probs.append(prob)
            outputs.append(latest.clone())
            pause_ms.append(ms)
    return Stream(
        np.array(probs, np.float32),
        torch.stack(outputs).numpy(),
        np.array(pause_ms, np.float32),
        true_end,
    )


def encoder_probs(models: Models, s: Stream, entry: Entry, root: Path) -> np.ndarray:
    """The S2S encoder head's probability the agent has after each window of the stream
    (`eval eot`'s timing; 0 before the first step is ready), conditioned on female_1."""
    clip = read_audio(root / entry.audio, MODEL_RATE)
    audio = np.zeros(len(s.probs) * WINDOW, np.float32)
    lead = int(LEAD_S * MODEL_RATE)
    audio[lead : lead + len(clip)] = clip
    with torch.inference_mode():
        probs = eot_probabilities(models, audio, models.config.speakers.index("female_1"), 0)
    ready = ready_samples(models, len(probs))
    return np.array([0.0 if p is None else p for p in window_eot(probs, ready, len(s.probs))])


def features(s: Stream) -> np.ndarray:
    return np.concatenate([s.outputs, s.pause_ms[:, None] / 1000.0], axis=1)


def head_module(kind: str, inputs: int) -> torch.nn.Module:
    """'linear': logistic regression; 'mlp': one hidden layer of 64."""
    if kind == "linear":
        return torch.nn.Linear(inputs, 1)
    return torch.nn.Sequential(torch.nn.Linear(inputs, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))


def fit(streams: list[Stream], kind: str) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """The head fitted on the pause windows of `streams`; -> (head, mean, std)."""
    xs, ys = [], []
    for s in streams:
        in_pause = s.pause_ms > 0
        ends = (np.arange(len(s.probs)) + 1) * WINDOW
        xs.append(features(s)[in_pause])
        ys.append((ends[in_pause] >= s.true_end).astype(np.float32))
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y)
    torch.manual_seed(0)
    layer = head_module(kind, x.shape[1])
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=300, line_search_fn="strong_wolfe")
    positive = float(yt.mean())

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = layer(xt)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt)
        weights = [p for name, p in layer.named_parameters() if name.endswith("weight")]
        loss = loss + 1e-3 * sum(w.pow(2).sum() for w in weights)
        loss.backward()
        return loss

    optimizer.step(closure)
    print(f"fitted on {len(y)} pause windows ({positive:.1%} after the end of the turn)")
    return layer, mean, std


def decide(s: Stream, config: TurnConfig, head_probs: np.ndarray | None) -> float | None:
    """Delay (ms) of the first end of turn after the true end; -1.0 for a false fire; None:
    never."""
    detector = TurnDetector(config)
    for k, prob in enumerate(s.probs):
        eot = None if head_probs is None else float(head_probs[k])
        event = detector.update(float(prob), 0.0, eot)
        if event is None or event.kind is not TurnEventKind.END_OF_TURN:
            continue
        decided = (k + 1) * WINDOW
        if decided < s.true_end:
            return -1.0
        return (decided - s.true_end) * 1000 / MODEL_RATE
    return None


def summary(results: list[float | None]) -> dict[str, float | None]:
    fired = [r for r in results if r is not None and r >= 0]
    false = [r is not None and r < 0 for r in results]
    return {
        "false_fire": round(float(np.mean(false)), 4),
        "delay_p50_ms": round(float(np.percentile(fired, 50)), 1) if fired else None,
        "delay_p95_ms": round(float(np.percentile(fired, 95)), 1) if fired else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="manifest (JSONL) of the corpus")
    parser.add_argument("--train", type=int, default=600, help="train-split user turns")
    parser.add_argument("--test", type=int, default=300, help="test-split user turns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head", choices=["linear", "mlp"], default="linear")
    parser.add_argument(
        "--cache", help="file to keep the streamed turns in (read back if it exists)"
    )
    parser.add_argument(
        "--encoder-head",
        default=str(DEMO_CHECKPOINT),
        help="S2S checkpoint whose encoder end-of-turn head (`--eot model`) is measured on "
        "the same turns ('' : none)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    root = Path(args.data).parent
    rng = random.Random(args.seed)
    splits = {}
    for split, count in (("train", args.train), ("test", args.test)):
        users = [e for e in read_manifest(args.data, split) if e.dialogue.role == "user"]
        splits[split] = rng.sample(users, min(count, len(users)))
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        streams = torch.load(cache, weights_only=False)
    else:
        vad, recognizer = SileroVAD(), load_recognizer()
        streams = {
            split: [stream(root / e.audio, vad, recognizer) for e in entries]
            for split, entries in splits.items()
        }
        if cache is not None:
            torch.save(streams, cache)
    heard = time.perf_counter()
    layer, mean, std = fit(streams["train"], args.head)
    test = streams["test"]
    rows = {}
    for ms in SILENCE_MS:
        rows[f"silence {ms} ms"] = summary(
            [decide(s, TurnConfig(min_silence_ms=ms), None) for s in test]
        )
    for threshold in THRESHOLDS:
        config = TurnConfig(eot="model", eot_threshold=threshold)
        results = []
        for s in test:
            with torch.no_grad():
                logits = layer(torch.from_numpy((features(s) - mean) / std))[:, 0]
            probs = torch.sigmoid(logits).numpy() * (s.pause_ms > 0)
            results.append(decide(s, config, probs))
        rows[f"content head >= {threshold}"] = summary(results)
    if args.encoder_head:
        models = load(args.encoder_head)
        for threshold in THRESHOLDS:
            config = TurnConfig(eot="model", eot_threshold=threshold)
            results = []
            for s, entry in zip(test, splits["test"], strict=True):
                results.append(decide(s, config, encoder_probs(models, s, entry, root)))
            rows[f"encoder head >= {threshold}"] = summary(results)
    print(f"{len(test)} test turns")
    print(f"{'rule':28} {'false fires':>11} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in rows.items():
        print(
            f"{name:28} {row['false_fire']:11.3f} "
            f"{row['delay_p50_ms']!s:>8} {row['delay_p95_ms']!s:>8}"
        )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "head": args.head,
        "train_turns": len(streams["train"]),
        "test_turns": len(test),
        "seconds_hearing": round(heard - began, 1),
        "rows": rows,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
