"""Codec quality on a manifest split (`telugu-s2s eval codec`): PESQ-WB, STOI, SI-SDR and mel
distance of whole utterances decoded from the first k quantizer levels, every k by default, and
whether each level improves PESQ-WB and mel distance over the one below.

Each utterance is read at the codec's rate, zero-padded to whole codec frames after the
decoder's delay (so the decoded PCM, which lags by that delay, holds all of it), encoded once
with the most levels asked for and decoded from each prefix of its codes (residual VQ: the first
k levels of the codes are the k-level encoding); metrics compare the original length, realigned.
The checkpoint may be an export or a codec training run directory (both hold config.json and
the codec's weights).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.checkpoints import load_config, load_extra, load_state
from models.codec import TeluCodec
from models.data.manifest import read_manifest
from models.eval.metrics import MelDistance, pesq_wb, si_sdr, stoi
from models.speech.audio import read_audio
from models.train.common import select_device, set_threads

log = logging.getLogger(__name__)

METRICS = ("pesq_wb", "stoi", "si_sdr", "mel_distance")
IMPROVES = ("improves_pesq_wb", "improves_mel_distance")
"""Per-level flags: higher PESQ-WB, lower mel distance than the level below."""


def _mean(values: list[float]) -> float | None:
    """Mean of the finite values; None when there are none (JSON has no NaN)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def evaluate_codec(
    checkpoint_dir: str | Path,
    manifest: str | Path,
    split: str = "test",
    levels: Sequence[int] | None = None,
    max_files: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Mean metrics per number of levels (all of 1..num_quantizers by default) over the first
    `max_files` (all by default) entries of `split`: {"files", "seconds", "step", "decoder",
    "delay_ms", "levels": {k: {"bitrate_bps", metric: mean, "improves_pesq_wb",
    "improves_mel_distance"}}, "every_level_improves"}. The improves flags compare with the
    next smaller k asked for (None for the smallest, or when a mean is None). A metric no file
    could be scored on (PESQ finds no speech) is None."""
    config = load_config(checkpoint_dir)
    torch_device = select_device(device)
    codec = TeluCodec(config.codec)
    load_state(checkpoint_dir, "codec", codec)
    codec.to(torch_device).eval()
    levels = sorted(set(levels or range(1, config.codec.num_quantizers + 1)))
    for k in levels:
        codec.quantizer.check_levels(k)
    entries = read_manifest(manifest, split)[:max_files]
    if not entries:
        raise ValueError(f"{manifest} has no {split} entries")
    rate, hop, delay = config.codec.sample_rate, config.codec.hop, codec.delay
    mel_distance = MelDistance(rate)
    scores: dict[int, dict[str, list[float]]] = {k: {m: [] for m in METRICS} for k in levels}
    seconds = 0.0
    root = Path(manifest).parent
    for entry in entries:
        reference = read_audio(entry.path(root), rate)
        seconds += len(reference) / rate
        padded = np.pad(reference, (0, delay + -(len(reference) + delay) % hop))
        wav = torch.from_numpy(padded)[None].to(torch_device)
        with torch.no_grad():
            codes = codec.encode(wav, max(levels))
            for k in levels:
                decoded = codec.decode(codes[:, :k])[0, delay : delay + len(reference)]
                decoded = decoded.float().cpu().numpy()
                found = scores[k]
                found["pesq_wb"].append(pesq_wb(reference, decoded, rate))
                found["stoi"].append(stoi(reference, decoded, rate))
                found["si_sdr"].append(si_sdr(reference, decoded))
                found["mel_distance"].append(mel_distance(reference, decoded))
        log.info("scored %s", entry.key)
    rows = {
        k: {
            "bitrate_bps": config.codec.bitrate_bps(k),
            **{m: _mean(values) for m, values in scores[k].items()},
        }
        for k in levels
    }
    _flag_improvements(rows)
    return {
        "checkpoint": str(checkpoint_dir),
        "split": split,
        "files": len(entries),
        "seconds": seconds,
        "step": load_extra(checkpoint_dir).get("step"),
        "decoder": config.codec.decoder,
        "delay_ms": 1000.0 * delay / rate,
        "levels": rows,
        "every_level_improves": all(
            row[flag] for row in list(rows.values())[1:] for flag in IMPROVES
        ),
    }


def _flag_improvements(rows: dict[int, dict[str, Any]]) -> None:
    """Add to each row whether it beats the row before it on PESQ-WB (higher) and mel
    distance (lower); None for the first row or a missing mean."""
    previous: dict[str, Any] | None = None
    for row in rows.values():
        for flag, metric, sign in zip(IMPROVES, ("pesq_wb", "mel_distance"), (1, -1), strict=True):
            known = previous is not None and None not in (row[metric], previous[metric])
            row[flag] = sign * (row[metric] - previous[metric]) > 0 if known else None
        previous = row


def format_table(result: dict[str, Any]) -> str:
    """The per-level means as a text table."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def mark(value: bool | None) -> str:
        return {None: "-", True: "yes", False: "NO"}[value]

    header = (
        f"{'levels':>6} {'kbps':>6} " + " ".join(f"{m:>12}" for m in METRICS) + " better: pesq mel"
    )
    rows = [
        f"{k:>6} {row['bitrate_bps'] / 1000:>6.1f} "
        + " ".join(f"{cell(row[m]):>12}" for m in METRICS)
        + f" {mark(row['improves_pesq_wb']):>12} {mark(row['improves_mel_distance']):>3}"
        for k, row in result["levels"].items()
    ]
    title = (
        f"{result['checkpoint']} (step {result['step']}, {result['decoder']} decoder, "
        f"{result['delay_ms']:g} ms delay): {result['files']} {result['split']} files, "
        f"{result['seconds']:.1f} s; every level improves: {result['every_level_improves']}"
    )
    return "\n".join([title, header, *rows])


def add_eval_codec_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `codec` to the subcommands of `telugu-s2s eval`."""
    p = subparsers.add_parser(
        "codec",
        help="PESQ-WB, STOI, SI-SDR and mel distance of a codec checkpoint",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint directory with a codec (an export or a codec training run)",
    )
    p.add_argument("--data", required=True, help="manifest (JSONL)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--levels", type=int, nargs="+", help="quantizer levels (default: every level)")
    p.add_argument("--max-files", type=int, help="score only the first N files")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=_run_eval_codec)
    return p


def _run_eval_codec(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    result = evaluate_codec(
        args.checkpoint, args.data, args.split, args.levels, args.max_files, args.device
    )
    if not args.json:
        print(format_table(result))
    print(json.dumps(result))
    return 0
