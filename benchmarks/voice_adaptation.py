"""Time from a voice clip's bytes to a ready speaker embedding: decode (PyAV), resample to
16 kHz mono, the length and energy checks, and the GE2E embedding of its voiced speech (at most
5 s), exactly as an offer's clip is taken (`agent.voice.VoiceEncoder.from_clip`), on one
torch thread, for 3 s and 10 s clips of espeak-ng Telugu in each format a browser sends.
Median and p95 over `--runs` runs.

    python -m benchmarks.voice_adaptation [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from agent.voice import VoiceEncoder
from models.data.espeak import synthesize
from models.speech.audio import MODEL_RATE
from models.speech.clip import BROWSER_FORMATS, check_clip, decode_clip, encode_clip

SECONDS = (3.0, 10.0)
TEXT = (
    "నమస్కారం, మీరు ఎలా ఉన్నారు? ఈ రోజు వాతావరణం చాలా బాగుంది. "
    "నిన్న క్రికెట్ మ్యాచ్ చూశారా? భారత్ గెలిచింది. నాకు పులిహోర అంటే చాలా ఇష్టం."
)


def speech(seconds: float) -> np.ndarray:
    """`seconds` of espeak-ng Telugu at 16 kHz (the text repeated as needed)."""
    once = synthesize(TEXT, MODEL_RATE)
    return np.tile(once, -(-int(seconds * MODEL_RATE) // once.size))[: int(seconds * MODEL_RATE)]


def cpu_model() -> str:
    """The processor's name (Linux), else the platform's."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def timed_ms(run, runs: int) -> np.ndarray:  # noqa: ANN001 - a callable of no arguments
    run()  # warm-up: first-call allocations, codec set-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    voices = VoiceEncoder()
    voices.encoder()
    print(
        f"{datetime.now(UTC).isoformat(timespec='seconds')} {platform.machine()} "
        f"{os.cpu_count()} cpu, {cpu_model()}, torch {torch.__version__}, 1 thread, "
        f"{args.runs} runs, load average {_load()}"
    )
    print(f"{'clip':>9} {'bytes':>8} {'total p50':>10} {'p95':>7} {'decode+checks p50':>18}")
    for seconds in SECONDS:
        pcm = speech(seconds)
        for fmt in BROWSER_FORMATS:
            clip = encode_clip(pcm, fmt)
            total = timed_ms(lambda clip=clip: voices.from_clip(clip), args.runs)
            decode = timed_ms(lambda clip=clip: check_clip(decode_clip(clip)), args.runs)
            print(
                f"{seconds:>4g} s {fmt:>4} {len(clip):>8} {np.median(total):>10.1f} "
                f"{np.percentile(total, 95):>7.1f} {np.median(decode):>18.1f}"
            )
        embed = timed_ms(lambda pcm=pcm: voices.embed(pcm), args.runs)
        print(f"{seconds:>4g} s embedding alone: p50 {np.median(embed):.1f} ms")
    print(f"load average at the end {_load()}")
    return 0


def _load() -> str:
    """The machine's 1-minute load average (other work shares its cores)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
