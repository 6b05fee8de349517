"""What batching across calls saves, offline, with the demo model on one thread: the load per
call of listening (the s2s responder's `hear_batch`) by calls and by windows per chunk, the
time of one answering step (agent/responders/answering.py, guided) by calls with the decoder
in float32 and in int8 (`serve --decoder-precision int8`, `models.speed.with_decoder_precision`),
and the code head's share of a step.

    python -m benchmarks.batching
"""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime

import numpy as np
import torch

from agent.responders import CallOptions
from agent.responders.answering import AnsweringThread
from agent.responders.s2s import S2SResponder
from models.loading import DEMO_CHECKPOINT, load
from models.s2s.sampling import ANSWERS
from models.speech.vad import WINDOW
from models.speed import with_decoder_precision

WINDOWS = 48
STEPS = 40


def listening_load(responder: S2SResponder, calls: int, per_chunk: int) -> float:
    """Fraction of one core that listening to each of `calls` calls takes."""
    sessions = [responder.open(CallOptions("female_1", "NEUTRAL")) for _ in range(calls)]
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal((calls, WINDOWS * WINDOW))).astype(np.float32)
    started = 0.0
    for w in range(0, WINDOWS, per_chunk):
        if w == 8:  # past the streams' start
            started = time.perf_counter()
        chunk = slice(w * WINDOW, (w + per_chunk) * WINDOW)
        responder.hear_batch(sessions, list(audio[:, chunk]), [w * WINDOW] * calls)
    elapsed = time.perf_counter() - started
    for session in sessions:
        session.close()
    return elapsed / ((WINDOWS - 8) * WINDOW / 16_000) / calls


def step_ms(responder: S2SResponder, calls: int) -> float:
    """Milliseconds of one answering step with `calls` answers in the batch (drawn again
    with the next seeds when one of them ends within the steps timed)."""
    for attempt in range(10):
        elapsed = _timed_steps(responder, calls, first_seed=attempt * calls)
        if elapsed is not None:
            return elapsed / STEPS * 1000
    raise RuntimeError(f"every draw of {calls} answers ended within {STEPS} steps")


def _timed_steps(responder: S2SResponder, calls: int, first_seed: int) -> float | None:
    """Seconds of STEPS answering steps of `calls` answers; None if one ended before."""
    models = responder.models
    thread = AnsweringThread(models, 0.02, lead_s=100.0)
    readers = []
    with torch.inference_mode():
        for i in range(calls):
            memory = models.decoder.project_memory(torch.randn(1, 100, models.config.encoder.dim))
            speaker, emotion = torch.tensor([0]), torch.tensor([0])
            generator = torch.Generator().manual_seed(first_seed + i)
            answer = thread.start(memory, speaker, emotion, ANSWERS, generator, STEPS + 10)
            readers.append(answer.read())
    try:
        for reader in readers:
            next(reader)
        started = time.perf_counter()
        for _ in range(STEPS):
            for reader in readers:
                next(reader)
        return time.perf_counter() - started
    except StopIteration:
        return None
    finally:
        thread.stop()


def head_ms(responder: S2SResponder, rows: int) -> float:
    """Milliseconds of the decoder's code head for `rows` rows."""
    head = responder.models.decoder.output
    x = torch.randn(rows, head.in_features)
    with torch.inference_mode():
        for _ in range(5):
            head(x)
        started = time.perf_counter()
        for _ in range(200):
            head(x)
    return (time.perf_counter() - started) / 200 * 1000


def main() -> int:
    torch.set_num_threads(1)
    responder = S2SResponder(load(DEMO_CHECKPOINT, "demo"), seed=0)
    print(
        f"{datetime.now(UTC).isoformat(timespec='seconds')} {platform.machine()} "
        f"{os.cpu_count()} cpu"
    )
    for per_chunk in (1, 2, 4, 8):
        for calls in (1, 2, 4):
            load_ = listening_load(responder, calls, per_chunk)
            print(f"listening: {per_chunk} windows/chunk, {calls} calls: {load_:.3f} core per call")
    int8 = S2SResponder(with_decoder_precision(responder.models, "int8"), seed=0)
    for calls in (1, 4, 8):
        steps = [step_ms(r, calls) for _ in range(3) for r in (responder, int8)]  # alternating
        print(
            f"answering: {calls} answers: {np.median(steps[0::2]):.1f} ms per step in float32, "
            f"{np.median(steps[1::2]):.1f} in int8"
        )
    weights = responder.models.decoder.output.weight
    print(f"code head {tuple(weights.shape)}, 8 rows: {head_ms(responder, 8):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
