"""Prometheus instruments of the agent, in a registry of their own (one per server), with
what the server process holds (memory, file descriptors, threads, asyncio tasks): the churn
test and benchmark read those from /metrics."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

ANSWER_THREAD = "answer-"
"""Name prefix of a call's answering thread (agent.session); the process's one listening
thread (agent.listening) is not a call's."""
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
LATENCY_BUCKETS_MS = (5, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000)


class AgentMetrics:
    """Sessions, turns, barge-ins and per-stage latency of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.active_sessions = Gauge(
            "telugu_s2s_active_sessions", "Calls in progress", registry=self.registry
        )
        self.sessions = Counter("telugu_s2s_sessions", "Calls accepted", registry=self.registry)
        self.turns = Counter("telugu_s2s_turns", "User turns answered", registry=self.registry)
        self.barge_ins = Counter(
            "telugu_s2s_barge_ins", "Answers cut short by the user", registry=self.registry
        )
        self.answers_ahead = Counter(
            "telugu_s2s_answers_ahead",
            "Answers started in a pause before the end of the turn was decided, by outcome: "
            "used (the turn ended there), discarded (the user went on), stale (heard "
            "differently by the end of the turn)",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "telugu_s2s_rejected_requests",
            "Call requests refused",
            ["reason"],
            registry=self.registry,
        )
        self.stage_ms = Histogram(
            "telugu_s2s_stage_latency_ms",
            "Per-turn latency of each stage in milliseconds",
            ["stage"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.voice_ms = Histogram(
            "telugu_s2s_voice_ms",
            "From a voice's audio to its speaker embedding (clip: decode and checks included)",
            ["source"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.answer_underruns = Counter(
            "telugu_s2s_answer_underrun_frames",
            "Silent frames sent inside an answer because generation fell behind",
            registry=self.registry,
        )
        self.concealed_frames = Counter(
            "telugu_s2s_concealed_frames",
            "Lost received frames rebuilt by Opus PLC or from in-band FEC",
            ["how"],
            registry=self.registry,
        )

        self.capacity = Gauge(
            "telugu_s2s_capacity_calls",
            "Calls this server admits at once (measured at start-up or configured)",
            registry=self.registry,
        )
        self.listen_batch = Histogram(
            "telugu_s2s_batch_calls",
            "Calls heard together in one listening batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.listen_lag_ms = Histogram(
            "telugu_s2s_listen_lag_ms",
            "From a window's arrival to the end of the batch that heard it (lag behind real time)",
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.vad_wait_ms = Histogram(
            "telugu_s2s_vad_wait_ms",
            "From a window's arrival to its VAD probability: how late the turn detector hears it",
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.lag_max_ms = Gauge(
            "telugu_s2s_lag_ms_max",
            "Largest listening lag of the latest batch, in milliseconds",
            registry=self.registry,
        )
        self.calls_behind = Counter(
            "telugu_s2s_calls_behind",
            "Times a call's listening fell behind real time by more than the call allows",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, _open_fds...
        Gauge(
            "telugu_s2s_asyncio_tasks", "asyncio tasks of the server's loop", registry=self.registry
        ).set_function(_tasks)
        Gauge(
            "telugu_s2s_threads", "Threads of the server process", registry=self.registry
        ).set_function(threading.active_count)
        Gauge(
            "telugu_s2s_call_threads", "Worker threads of calls", registry=self.registry
        ).set_function(_call_threads)

    def observe_listening(self, calls: int, lags_ms: list[float]) -> None:
        """Record one listening batch: how many calls it held and how late each window was."""
        self.listen_batch.observe(calls)
        for lag in lags_ms:
            self.listen_lag_ms.observe(lag)
        self.lag_max_ms.set(max(lags_ms))

    def observe_turn(self, stages_ms: dict[str, float]) -> None:
        """Record one answered turn's stage breakdown."""
        self.turns.inc()
        for stage, ms in stages_ms.items():
            self.stage_ms.labels(stage=stage).observe(ms)


def _tasks() -> float:
    """asyncio tasks of the loop running in this thread (/metrics is served on it)."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no running loop in this thread
        return float("nan")


def _call_threads() -> float:
    names = (t.name for t in threading.enumerate())
    return sum(name.startswith(ANSWER_THREAD) for name in names)
