"""What sending an answer costs per 20 ms frame: the way out before (16 kHz answer resampled
to 48 kHz, encoded by the speech encoder at 48 kHz) against now (the speech
encoder taking the 16 kHz answer as it is), in CPU milliseconds per frame (median of
--repeats passes over 4 s of espeak-ng Telugu, the two ways alternating), and the PESQ-WB
of what a receiver decodes.

    python -m benchmarks.opus_encode
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from aiortc.codecs.opus import SAMPLE_RATE
from pesq import pesq

from agent.aiortc_fixes.opus_codec import OpusDecoder
from agent.aiortc_fixes.opus_send import SpeechOpusEncoder
from benchmarks.latency import TURNS
from models.data.espeak import synthesize
from models.speech.audio import MODEL_RATE, Resampler, frame_from_pcm, resample, to_float

Encode = Callable[[np.ndarray, int], list[bytes]]


def before() -> Encode:
    """16 kHz chunks -> the session's resampler to 48 kHz -> the speech encoder at 48 kHz."""
    up, encoder = Resampler(SAMPLE_RATE), SpeechOpusEncoder(rate=SAMPLE_RATE)

    def encode(chunk: np.ndarray, pts: int) -> list[bytes]:
        wide = up.pcm(chunk, MODEL_RATE)
        return encoder.encode(frame_from_pcm(wide, SAMPLE_RATE, pts=pts * 3))[0]

    return encode


def after() -> Encode:
    """16 kHz chunks -> the speech encoder as they are."""
    encoder = SpeechOpusEncoder()

    def encode(chunk: np.ndarray, pts: int) -> list[bytes]:
        return encoder.encode(frame_from_pcm(chunk, MODEL_RATE, pts=pts))[0]

    return encode


def frames_of(speech: np.ndarray) -> list[np.ndarray]:
    frame = MODEL_RATE // 50
    return [speech[i : i + frame] for i in range(0, len(speech) - frame + 1, frame)]


def encode_all(make: Callable[[], Encode], chunks: list[np.ndarray]) -> tuple[float, list[bytes]]:
    """(CPU ms per frame, the packets) of one pass of a fresh encoder over `chunks`."""
    encode = make()
    started = time.process_time()
    packets = [p for i, chunk in enumerate(chunks) for p in encode(chunk, i * len(chunk))]
    return (time.process_time() - started) * 1000 / len(chunks), packets


def pesq_of(packets: list[bytes], speech: np.ndarray) -> float:
    """PESQ-WB of what a receiver decodes from `packets`, aligned to `speech`."""
    decoder = OpusDecoder()
    heard = resample(
        np.concatenate([to_float(decoder.decode(p)) for p in packets]), SAMPLE_RATE, MODEL_RATE
    )
    span = len(heard) - 400
    lag = max(range(400), key=lambda k: float(np.dot(speech[:span], heard[k : k + span])))
    size = min(len(speech), len(heard) - lag)
    return pesq(MODEL_RATE, speech[:size], heard[lag : lag + size], "wb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    speech = np.concatenate([synthesize(text, MODEL_RATE) for text in TURNS])[: 4 * MODEL_RATE]
    print(
        f"{datetime.now(UTC).isoformat(timespec='seconds')} {platform.machine()} "
        f"{os.cpu_count()} cpu, load {os.getloadavg()[0]:.2f}"
    )
    chunks = frames_of(speech)
    ways = {"before: 48 kHz": before, "now: 16 kHz": after}
    costs: dict[str, list[float]] = {name: [] for name in ways}
    packets: dict[str, list[bytes]] = {}
    for _ in range(args.repeats):  # alternating, so that both see the same machine
        for name, make in ways.items():
            ms, packets[name] = encode_all(make, chunks)
            costs[name].append(ms)
    for name in ways:
        print(
            f"{name}: {np.median(costs[name]):.3f} ms CPU per 20 ms frame (median of "
            f"{args.repeats}), PESQ-WB {pesq_of(packets[name], speech):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
