"""The recognizer on held-out speech (`telugu-s2s eval asr`): CER and WER on user turns and on
agent answers separately, each clip streamed in 20 ms chunks as the agent runs it, and the
real-time factor (processing seconds per second of audio, on this machine's torch threads)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from models.asr.checkpoint import SHIPPED, load_recognizer
from models.asr.errors import ErrorRates
from models.asr.stream import CHUNK_S, transcribe
from models.data.manifest import read_manifest
from models.speech.audio import read_audio


def evaluate_asr(
    checkpoint: str | Path, manifest: str | Path, split: str = "test", limit: int | None = None
) -> dict[str, Any]:
    """Error rates per role ("user", "agent"; entries without a dialogue count as "user") and
    the streaming real-time factor over the first `limit` entries of `split`."""
    model = load_recognizer(checkpoint)
    entries = read_manifest(manifest, split)[:limit]
    if not entries:
        raise ValueError(f"{manifest} has no {split} entries")
    root = Path(manifest).parent
    rates = {"user": ErrorRates(), "agent": ErrorRates()}
    clips = dict.fromkeys(rates, 0)
    audio_s = compute_s = 0.0
    for entry in entries:
        role = entry.dialogue.role if entry.dialogue else "user"
        pcm = read_audio(entry.path(root), model.config.sample_rate)
        began = time.perf_counter()
        result = transcribe(model, pcm)
        compute_s += time.perf_counter() - began
        audio_s += len(pcm) / model.config.sample_rate
        rates[role].add(entry.text, result.text)
        clips[role] += 1
    by_role = {
        role: {"clips": clips[role], "cer": r.cer, "wer": r.wer, "chars": r.chars, "words": r.words}
        for role, r in rates.items()
        if clips[role]
    }
    return {
        "checkpoint": str(checkpoint),
        "split": split,
        **by_role,
        "audio_s": audio_s,
        "rtf": compute_s / audio_s,
        "chunk_ms": round(CHUNK_S * 1000),
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def add_eval_asr_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `asr` to the subcommands of `telugu-s2s eval`."""
    p = subparsers.add_parser(
        "asr",
        help="CER/WER and real-time factor of the streaming recognizer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default=str(SHIPPED), help="recognizer checkpoint directory")
    p.add_argument("--data", required=True, help="manifest (JSONL) with transcripts")
    p.add_argument("--split", default="test", help="which entries to transcribe")
    p.add_argument("--limit", type=int, help="only the first N entries of the split")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run_eval_asr)
    return p


def _run_eval_asr(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate_asr(args.checkpoint, args.data, args.split, args.limit)
    if args.json:
        print(json.dumps(result))
        return 0
    for role in ("user", "agent"):
        if role in result:
            r = result[role]
            print(f"{role:5}  clips={r['clips']}  CER={r['cer']:.1%}  WER={r['wer']:.1%}")
    print(f"real-time factor {result['rtf']:.3f} ({result['torch_threads']} torch threads)")
    return 0
