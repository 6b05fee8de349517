"""Does the content end-of-turn head carry over to voices outside the corpus?

The latency benchmark's eight sentences in its four espeak-ng voices (benchmarks/latency.py,
none of them the corpus's personas) stream through the head exactly as `train endpoint`
streams the corpus (models.train.endpoint.stream_clip, 16 kHz, no codec on the way), and the
agent's rule decides at the head's operating point. Per voice: the end-of-turn delays after
the true end of speech, how many turns the head ended sooner than its fallback silence would
have, and false fires.

    python -m benchmarks.endpoint_voices [--endpoint DIR]

It prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import torch

from benchmarks.latency import TURNS, VOICES
from models.asr.checkpoint import load_recognizer
from models.asr.endpoint import SHIPPED, load_endpoint
from models.card import machine
from models.data.espeak import synthesize
from models.speech.audio import MODEL_RATE
from models.speech.turns import TurnConfig
from models.speech.vad import SileroVAD
from models.train.endpoint import decide, head_probs, stream_clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default=str(SHIPPED), help="the head's checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(1)
    head, recognizer, vad = load_endpoint(args.endpoint), load_recognizer(), SileroVAD()
    rule = head.config.turns(TurnConfig())
    fallback = head.config.max_silence_ms
    silence = replace(rule, eot="silence")
    rows = {}
    for voice, speed in VOICES:
        delays, by_head = [], 0
        for text in TURNS:
            turn = stream_clip(
                synthesize(text, MODEL_RATE, voice=voice, speed=speed), vad, recognizer, head.config
            )
            delay = decide(turn, rule, head_probs(head, turn))
            alone = decide(turn, silence, None)  # the fallback silence without the head
            by_head += delay is not None and alone is not None and delay < alone
            delays.append(delay)
        fired = [d for d in delays if d is not None and d >= 0]
        rows[voice] = {
            "turns": len(delays),
            "false_fires": sum(d is not None and d < 0 for d in delays),
            "ended_by_head": by_head,
            "delay_p50_ms": round(float(np.percentile(fired, 50)), 1) if fired else None,
            "delays_ms": [None if d is None else round(d) for d in delays],
        }
    print(f"{'voice':8} {'ended by head':>14} {'false fires':>12} {'p50 ms':>8}  delays ms")
    for voice, row in rows.items():
        print(
            f"{voice:8} {row['ended_by_head']:>10}/{row['turns']:<3} {row['false_fires']:>12} "
            f"{row['delay_p50_ms']!s:>8}  {row['delays_ms']}"
        )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "endpoint": args.endpoint,
        "threshold": head.config.threshold,
        "fallback_ms": fallback,
        "voices": rows,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
