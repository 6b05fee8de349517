"""Fitting and measuring the content end-of-turn head (`telugu-s2s train endpoint`).

Each user turn of the corpus (LEAD_S of quiet before it, TRAILING_S after) streams window by
window through Silero VAD, the recognizer and `models.asr.endpoint.Endpointer`, as a call
would. Every window of a pause is an example, labelled 1 when it lies after the turn's true end
of speech (the last sample above -40 dBFS; the corpus's pauses inside a turn are silence or a
breath below that). The head is fitted on the train split's turns with L-BFGS, then measured on
held-out turns (the test split: wordings and slot values never trained on) the way the agent
decides: its TurnDetector with eot="content" fed the head's probability, per threshold and
fallback silence, beside the silence rule alone. A false fire is an end of turn before the
true end; the delay is from the true end to the decision, p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.asr.checkpoint import SHIPPED as SHIPPED_RECOGNIZER
from models.asr.checkpoint import load_recognizer, recognizer_sha256
from models.asr.endpoint import EndpointConfig, Endpointer, EndpointHead, save_endpoint
from models.asr.model import Recognizer
from models.card import machine
from models.data.manifest import read_manifest
from models.speech.audio import MODEL_RATE, read_audio, resample
from models.speech.turns import TurnConfig, TurnDetector, TurnEventKind
from models.speech.vad import WINDOW, SileroVAD
from models.train.tokens import speech_end

LEAD_S = 0.3
TRAILING_S = 1.5
THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
FALLBACK_MS = (576, 960, 1200)
SILENCE_MS = (320, 416, 480, 576, 704, 960)
STREAMED_WITH = ("recognizer_sha256", "hidden", "mels", "tail_frames", "pool")
"""What a cache of streamed turns must share with the head fitted on it."""


@dataclass
class TurnStream:
    """One user turn as the agent hears it."""

    probs: np.ndarray
    """Silero's speech probability per window."""
    pause_windows: np.ndarray
    """Indices of the windows inside a pause."""
    inputs: np.ndarray
    """(len(pause_windows), config.inputs): the head's inputs in those windows."""
    true_end: int
    """Stream sample just after the last speech sample."""

    def labels(self) -> np.ndarray:
        """1.0 for the pause windows that end after the true end of speech."""
        return ((self.pause_windows + 1) * WINDOW >= self.true_end).astype(np.float32)


def stream_turn(
    path: Path, vad: SileroVAD, recognizer: Recognizer, config: EndpointConfig, speed: float = 1.0
) -> TurnStream:
    """`path` streamed as a call hears it: VAD, then the endpointer (asking for the
    recognizer's output up to the window before), then the recognizer hears the window.
    `speed` != 1 plays the clip faster or slower, its pitch and formants moving with it
    (speed perturbation: other voices than the corpus's)."""
    clip = read_audio(path, MODEL_RATE)
    if speed != 1.0:
        clip = resample(clip, round(MODEL_RATE * speed), MODEL_RATE)
    return stream_clip(clip, vad, recognizer, config)


def stream_clip(
    clip: np.ndarray, vad: SileroVAD, recognizer: Recognizer, config: EndpointConfig
) -> TurnStream:
    """stream_turn of a 16 kHz clip already in memory."""
    lead = int(LEAD_S * MODEL_RATE)
    total = lead + len(clip) + int(TRAILING_S * MODEL_RATE)
    total += -total % WINDOW
    audio = np.zeros(total, np.float32)
    audio[lead : lead + len(clip)] = clip
    vad.reset()
    endpointer = Endpointer(config)
    state = recognizer.init_state(1)
    latest: list[torch.Tensor | None] = [None]
    probs, windows, inputs = [], [], []
    with torch.inference_mode():
        for k in range(total // WINDOW):
            window = audio[k * WINDOW : (k + 1) * WINDOW]
            prob = vad.prob(np.ascontiguousarray(window))
            x = endpointer.features(prob, window, lambda: latest[0])
            out, state = recognizer.stream_outputs(torch.from_numpy(window)[None], state)
            if out.shape[1]:
                latest[0] = out[0, -1].clone()
            probs.append(prob)
            if x is not None:
                windows.append(k)
                inputs.append(x)
    return TurnStream(
        np.array(probs, np.float32),
        np.array(windows, np.int64),
        np.stack(inputs) if inputs else np.zeros((0, config.inputs), np.float32),
        lead + speech_end(clip),
    )


def fit(turns: list[TurnStream], config: EndpointConfig, seed: int = 0) -> EndpointHead:
    """The head fitted on every pause window of `turns` (L-BFGS, light L2 on the weights)."""
    x = torch.from_numpy(np.concatenate([t.inputs for t in turns]))
    y = torch.from_numpy(np.concatenate([t.labels() for t in turns]))
    torch.manual_seed(seed)
    head = EndpointHead(config)
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0) + 1e-6)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=300, line_search_fn="strong_wolfe")
    weights = [p for name, p in head.named_parameters() if name.endswith("weight")]

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x), y)
        loss = loss + 1e-3 * sum(w.pow(2).sum() for w in weights)
        loss.backward()
        return loss

    head.train()
    optimizer.step(closure)
    return head.eval()


def head_probs(head: EndpointHead, turn: TurnStream) -> np.ndarray:
    """Per window of the turn, the head's probability (0 outside pauses)."""
    probs = np.zeros(len(turn.probs), np.float32)
    if len(turn.pause_windows):
        with torch.inference_mode():
            logits = head(torch.from_numpy(turn.inputs))
        probs[turn.pause_windows] = torch.sigmoid(logits).numpy()
    return probs


def decide(turn: TurnStream, config: TurnConfig, eot: np.ndarray | None) -> float | None:
    """Delay (ms) of the first end of turn after the true end; -1.0 for a false fire (an end
    before it); None: no end at all."""
    detector = TurnDetector(config)
    for k, prob in enumerate(turn.probs):
        event = detector.update(float(prob), 0.0, None if eot is None else float(eot[k]))
        if event is None or event.kind is not TurnEventKind.END_OF_TURN:
            continue
        decided = (k + 1) * WINDOW
        if decided < turn.true_end:
            return -1.0
        return (decided - turn.true_end) * 1000 / MODEL_RATE
    return None


def summary(results: list[float | None]) -> dict[str, float | None]:
    fired = [r for r in results if r is not None and r >= 0]
    return {
        "false_fire": round(float(np.mean([r is not None and r < 0 for r in results])), 4),
        "delay_p50_ms": round(float(np.percentile(fired, 50)), 1) if fired else None,
        "delay_p95_ms": round(float(np.percentile(fired, 95)), 1) if fired else None,
    }


def trade_off(
    head: EndpointHead, turns: list[TurnStream], probs: list[np.ndarray]
) -> dict[str, dict[str, Any]]:
    """The silence rule at several lengths, then the head (its probabilities `probs` on
    `turns`) per fallback and threshold."""
    rows: dict[str, dict[str, Any]] = {}
    for ms in SILENCE_MS:
        rows[f"silence {ms} ms"] = summary(
            [decide(t, TurnConfig(min_silence_ms=ms), None) for t in turns]
        )
    for fallback in FALLBACK_MS:
        for threshold in THRESHOLDS:
            config = replace(head.config, threshold=threshold, max_silence_ms=fallback)
            turns_config = config.turns(TurnConfig())
            results = [decide(t, turns_config, p) for t, p in zip(turns, probs, strict=True)]
            rows[f"head >= {threshold}, fallback {fallback} ms"] = summary(results)
    return rows


def user_turns(manifest: str | Path, split: str, count: int, seed: int) -> list[Path]:
    root = Path(manifest).parent
    users = [e for e in read_manifest(manifest, split) if e.dialogue.role == "user"]
    chosen = random.Random(seed).sample(users, min(count, len(users)))
    return [root / e.audio for e in chosen]


def train_endpoint(
    manifest: str | Path,
    out: str | Path,
    recognizer_dir: str | Path = SHIPPED_RECOGNIZER,
    train_turns: int = 1000,
    test_turns: int = 300,
    threshold: float = EndpointConfig.threshold,
    max_silence_ms: int = EndpointConfig.max_silence_ms,
    seed: int = 0,
    cache: str | Path | None = None,
    perturb: float = 0.0,
) -> dict[str, Any]:
    """Stream, fit, measure and save; -> the run's figures (also in the checkpoint). Each
    train turn plays at a speed drawn from 1 +- `perturb`; the held-out turns as they are."""
    began = time.perf_counter()
    recognizer = load_recognizer(recognizer_dir)
    config = EndpointConfig(
        hidden=recognizer.config.hidden,
        mels=recognizer.config.mels,
        window=recognizer.config.window,
        hop=recognizer.config.hop,
        recognizer_sha256=recognizer_sha256(recognizer_dir),
        threshold=threshold,
        max_silence_ms=max_silence_ms,
    )
    cached = Path(cache) if cache else None
    if cached is not None and cached.exists():
        saved = torch.load(cached, weights_only=False)
        if (
            any(saved["config"][k] != getattr(config, k) for k in STREAMED_WITH)
            or saved["config"].get("perturb", 0.0) != perturb
        ):
            raise ValueError(f"{cached} was streamed with another recognizer or sizes")
        streams = saved["streams"]
    else:
        vad = SileroVAD()
        rng = np.random.default_rng(seed)
        streams = {
            "train": [
                stream_turn(p, vad, recognizer, config, 1.0 + perturb * rng.uniform(-1, 1))
                for p in user_turns(manifest, "train", train_turns, seed)
            ],
            "test": [
                stream_turn(p, vad, recognizer, config)
                for p in user_turns(manifest, "test", test_turns, seed)
            ],
        }
        if cached is not None:
            key = {k: getattr(config, k) for k in STREAMED_WITH} | {"perturb": perturb}
            torch.save({"config": key, "streams": streams}, cached)
    heard = time.perf_counter()
    head = fit(streams["train"], config, seed)
    test = streams["test"]
    probs = [head_probs(head, t) for t in test]
    rows = trade_off(head, test, probs)
    operating = config.turns(TurnConfig())
    chosen = summary([decide(t, operating, p) for t, p in zip(test, probs, strict=True)])
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "train_turns": len(streams["train"]),
        "speed_perturbation": perturb,
        "test_turns": len(test),
        "pause_windows": int(sum(len(t.pause_windows) for t in streams["train"])),
        "seconds_streaming": round(heard - began, 1),
        "seconds": round(time.perf_counter() - began, 1),
        "operating_point": {"threshold": threshold, "max_silence_ms": max_silence_ms, **chosen},
        "rows": rows,
    }
    save_endpoint(out, head, {"train": result})
    return result


def add_train_endpoint_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `endpoint` to the subcommands of `telugu-s2s train`."""
    p = subparsers.add_parser(
        "endpoint",
        help="fit the content end-of-turn head on a corpus's user turns and measure it on "
        "held-out ones (`serve --eot content`)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="manifest (JSONL) of the corpus")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument(
        "--recognizer", default=str(SHIPPED_RECOGNIZER), help="recognizer checkpoint it listens to"
    )
    p.add_argument("--train-turns", type=int, default=1000, help="train-split user turns")
    p.add_argument("--test-turns", type=int, default=300, help="test-split user turns measured")
    p.add_argument(
        "--threshold", type=float, default=EndpointConfig.threshold, help="operating point"
    )
    p.add_argument(
        "--max-silence-ms",
        type=int,
        default=EndpointConfig.max_silence_ms,
        help="the silence rule beside the head",
    )
    p.add_argument(
        "--perturb",
        type=float,
        default=0.0,
        help="each train turn plays at a speed drawn from 1 +- this (pitch and formants move)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cache", help="file keeping the streamed turns (read back if it exists)")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    result = train_endpoint(
        args.data,
        args.out,
        args.recognizer,
        args.train_turns,
        args.test_turns,
        args.threshold,
        args.max_silence_ms,
        args.seed,
        args.cache,
        args.perturb,
    )
    print(f"{result['test_turns']} held-out turns")
    print(f"{'rule':36} {'false fires':>11} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in result["rows"].items():
        print(
            f"{name:36} {row['false_fire']:11.3f} "
            f"{row['delay_p50_ms']!s:>8} {row['delay_p95_ms']!s:>8}"
        )
    print(json.dumps(result, ensure_ascii=False))
    return 0
