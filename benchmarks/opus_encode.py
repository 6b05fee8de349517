"""What sending an answer costs per 20 ms frame: the way out before (16 kHz answer resampled
to 48 kHz, encoded by aiortc's encoder with the speech settings) against now (the speech
encoder taking the 16 kHz answer as it is), in CPU milliseconds per frame (median of
--repeats passes over 4 s of espeak-ng Telugu), and the PESQ-WB of what a receiver decodes.

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
from aiortc.codecs.opus import SAMPLE_RATE, SAMPLES_PER_FRAME, OpusEncoder
from av import AudioResampler
from pesq import pesq

from agent.aiortc_fixes.opus_codec import OpusDecoder
from agent.aiortc_fixes.opus_send import EXPECTED_LOSS_PERCENT, SPEECH_BITRATE, SpeechOpusEncoder
from models.speech.audio import MODEL_RATE, Resampler, frame_from_pcm, resample, to_float
from tests.speech import SENTENCES, conversation

Encode = Callable[[np.ndarray, int], list[bytes]]


class WideOpusEncoder(OpusEncoder):
    """The speech settings at 48 kHz: what the agent's encoder did before it took 16 kHz."""

    def __init__(self) -> None:
        super().__init__()
        self.codec.bit_rate = SPEECH_BITRATE
        self.codec.layout = "mono"
        self.codec.options = {
            "application": "voip",
            "fec": "1",
            "packet_loss": str(EXPECTED_LOSS_PERCENT),
        }
        self.resampler = AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=SAMPLES_PER_FRAME
        )


def before() -> Encode:
    """16 kHz chunks -> the session's resampler to 48 kHz -> the 48 kHz encoder."""
    up, encoder = Resampler(SAMPLE_RATE), WideOpusEncoder()
    up.prime(MODEL_RATE)

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


def measure(make: Callable[[], Encode], speech: np.ndarray, repeats: int) -> tuple[float, float]:
    """(median CPU ms per frame, PESQ-WB of the decoded speech)."""
    frame = MODEL_RATE // 50
    chunks = [speech[i : i + frame] for i in range(0, len(speech) - frame + 1, frame)]
    costs, packets = [], []
    for _ in range(repeats):
        encode = make()
        started = time.process_time()
        packets = [p for i, chunk in enumerate(chunks) for p in encode(chunk, i * frame)]
        costs.append((time.process_time() - started) * 1000 / len(chunks))
    decoder = OpusDecoder()
    heard = resample(
        np.concatenate([to_float(decoder.decode(p)) for p in packets]), SAMPLE_RATE, MODEL_RATE
    )
    span = len(heard) - 400
    lag = max(range(400), key=lambda k: float(np.dot(speech[:span], heard[k : k + span])))
    size = min(len(speech), len(heard) - lag)
    return float(np.median(costs)), pesq(MODEL_RATE, speech[:size], heard[lag : lag + size], "wb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    speech = conversation([*SENTENCES, 0.2], MODEL_RATE)[: 4 * MODEL_RATE]
    print(
        f"{datetime.now(UTC).isoformat(timespec='seconds')} {platform.machine()} "
        f"{os.cpu_count()} cpu, load {os.getloadavg()[0]:.2f}"
    )
    for name, make in (("before: 48 kHz", before), ("now: 16 kHz", after)):
        ms, score = measure(make, speech, args.repeats)
        print(f"{name}: {ms:.3f} ms CPU per 20 ms frame, PESQ-WB {score:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
