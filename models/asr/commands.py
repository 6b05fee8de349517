"""`telugu-s2s transcribe CLIP`: a clip through the streaming recognizer, chunk by chunk."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from models.asr.checkpoint import SHIPPED


def add_transcribe_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `transcribe` to the console script's commands."""
    p = commands.add_parser(
        "transcribe",
        help="transcribe a Telugu audio file with the streaming recognizer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("clip", help="audio file (any sample rate; mixed to mono)")
    p.add_argument("--checkpoint", default=str(SHIPPED), help="recognizer checkpoint directory")
    p.add_argument("--json", action="store_true", help="print one JSON object with word timings")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run_transcribe)
    return p


def _run_transcribe(args: argparse.Namespace) -> int:
    from models.asr.checkpoint import load_recognizer
    from models.asr.stream import transcribe
    from models.speech.audio import read_audio

    model = load_recognizer(args.checkpoint)
    pcm = read_audio(args.clip, model.config.sample_rate)
    result = transcribe(model, pcm)
    if not args.json:
        print(result.text)
        return 0
    words = [
        asdict(word) | {k: round(getattr(word, k), 3) for k in ("start", "end")}
        for word in result.words
    ]
    duration = round(len(pcm) / model.config.sample_rate, 3)
    print(
        json.dumps(
            {"text": result.text, "words": words, "duration_s": duration}, ensure_ascii=False
        )
    )
    return 0
