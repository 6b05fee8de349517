"""Streaming decode cost of the demo codec's two decoders on one thread: milliseconds per
20 ms of audio (4 frames a call, as the server decodes answers) at batch 1 and 8, the
decoder's parameters and its algorithmic delay. Random weights: the cost does not depend
on them.

    python -m benchmarks.codec_decode
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from models.codec import TeluCodec
from models.config import DEMO

FRAMES_PER_CALL = 4
CALLS = 100
WARMUP = 10


def ms_per_call(codec: TeluCodec, batch: int) -> float:
    """Median milliseconds of one `decode_stream` call of FRAMES_PER_CALL frames."""
    frames = FRAMES_PER_CALL * (CALLS + WARMUP)
    codes = torch.randint(0, codec.config.codebook_size, (batch, 8, frames))
    times, state = [], None
    with torch.inference_mode():
        for call in range(CALLS + WARMUP):
            start = time.perf_counter()
            chunk = codes[:, :, call * FRAMES_PER_CALL : (call + 1) * FRAMES_PER_CALL]
            _, state = codec.decode_stream(chunk, state)
            if call >= WARMUP:
                times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    chunk_ms = 1000 * FRAMES_PER_CALL * DEMO.codec.hop / DEMO.codec.sample_rate
    print(f"| decoder | params | delay (ms) | ms per {chunk_ms:g} ms, batch 1 | batch 8 |")
    print("|---|---:|---:|---:|---:|")
    for decoder in ("conv", "istft"):
        codec = TeluCodec(replace(DEMO.codec, decoder=decoder)).eval()
        params = sum(p.numel() for p in codec.decoder.parameters())
        delay_ms = 1000 * (codec.delay + codec.hop) / codec.config.sample_rate
        one, eight = ms_per_call(codec, 1), ms_per_call(codec, 8)
        print(f"| {decoder} | {params:,} | {delay_ms:g} | {one:.2f} | {eight:.2f} |")


if __name__ == "__main__":
    main()
