"""How many calls one server process holds in real time, measured at start-up on this machine.

A process does its model work on two threads (agent/listening.py, the responder's answering)
and its media (Opus, SRTP, RTP) on the event loop, all under one interpreter lock: about one
core, whatever the machine has. Its load with k calls is the fraction of real time that
k calls' work takes:

    load(k) = listening(k) + answering(k) + k * media_per_call

listening(k): the responder hearing k calls' windows as batches, per second of audio;
answering(k): k answers generated at once (the worst case: every call answering together),
per second of answer; media_per_call: the event loop's share per call, measured in calls by
benchmarks/load.py (not measurable without peers). Both model terms are measured through the
responder's own API on synthetic audio, so batching across calls counts as it does in a call.
The capacity is the largest k whose load stays within `budget` (headroom for the rest).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from agent.responders import CallOptions, Responder, UserTurn
from models.controls import DEFAULT_EMOTION, DEFAULT_SPEAKER
from models.speech.audio import MODEL_RATE
from models.speech.vad import WINDOW

log = logging.getLogger(__name__)
MEDIA_PER_CALL = 0.07
"""Event-loop share of one core per call (Opus decode and encode, SRTP, RTP, resampling,
events): an estimate from profiling the server's loop under `benchmarks.load --calls 3` on
2 cores, not measured at start-up (docs/benchmarks.md)."""
BUDGET = 0.8
"""Load a process may carry and still keep real time (the rest absorbs bursts)."""
WINDOWS = 16
"""Windows heard per probe (0.5 s of audio; a multiple of the chunks)."""
CHUNKS = 10
"""Answer chunks drawn per call per probe, after the first (within the answering thread's
lead, so that its pacing to real time does not count)."""


@dataclass(frozen=True)
class Capacity:
    """The calls a process admits, and the measurement behind the figure."""

    calls: int
    load: dict[int, float]
    """Measured load per number of calls."""

    def describe(self) -> str:
        shown = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(self.load.items()))
        return f"{self.calls} calls (load by calls {shown})"


def call_load(
    responder: Responder,
    calls: int,
    media_per_call: float = MEDIA_PER_CALL,
    chunk_windows: int = 4,
) -> float:
    """The measured load of `calls` calls (listening plus all of them answering), heard in
    chunks of `chunk_windows` windows as the listening thread joins them."""
    rng = np.random.default_rng(calls)
    options = CallOptions(DEFAULT_SPEAKER, DEFAULT_EMOTION)
    sessions = [responder.open(options) for _ in range(calls)]
    try:
        audio = (0.05 * rng.standard_normal((calls, WINDOWS * WINDOW))).astype(np.float32)
        started = time.perf_counter()
        for w in range(0, WINDOWS, chunk_windows):
            chunk = slice(w * WINDOW, (w + chunk_windows) * WINDOW)
            responder.hear_batch(sessions, list(audio[:, chunk]), [w * WINDOW] * calls)
        listening = (time.perf_counter() - started) / (WINDOWS * WINDOW / MODEL_RATE)
        turn = UserTurn(1, 0, WINDOWS * WINDOW)
        answers = [s.respond(turn) for s in sessions]
        for answer in answers:  # the first chunk: the turn's memory and the delay pattern
            next(answer, None)
        samples = 0
        started = time.perf_counter()
        for _ in range(CHUNKS):
            for answer in answers:
                chunk = next(answer, None)
                samples += 0 if chunk is None else len(chunk)
        elapsed = time.perf_counter() - started
        for answer in answers:
            answer.close()
        per_call_s = samples / calls / MODEL_RATE
        answering = elapsed / per_call_s if per_call_s > 0 else 0.0
    finally:
        for session in sessions:
            session.close()
    return listening + answering + calls * media_per_call


def measure_capacity(
    responder: Responder,
    budget: float = BUDGET,
    most: int = 64,
    media_per_call: float = MEDIA_PER_CALL,
    chunk_windows: int = 4,
) -> Capacity:
    """The largest number of calls (1 .. `most`) whose load fits `budget`: doubling, then
    halving the interval. At least 1, so that a slow machine still takes one call."""
    call_load(responder, 1, media_per_call, chunk_windows)  # warm-up: threads, kernels
    loads: dict[int, float] = {}

    def fits(k: int) -> bool:
        loads[k] = call_load(responder, k, media_per_call, chunk_windows)
        return loads[k] <= budget

    if not fits(1):
        return Capacity(1, loads)
    low, high = 1, 2
    while high <= most and fits(high):
        low, high = high, high * 2
    high = min(high, most + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    capacity = Capacity(low, loads)
    log.info("capacity: %s", capacity.describe())
    return capacity
