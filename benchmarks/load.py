"""Many callers at once: voice-to-voice, answered turns and missing answer audio per number of
simultaneous calls, until the agent starts refusing calls.

One process drives every caller (real aiortc peers, so the callers cost little next to the
agent); each speaks the same Telugu conversation as benchmarks/latency.py, its start staggered
evenly over one turn so that turns do not all end at the same moment. For each N it prints
voice-to-voice p50/p95 over all answered turns of all calls, answered/total turns, refused
calls (503 from admission control), answer audio missing at the callers, and what the agent's
/metrics say of its load and lag, then one JSON line with everything.

    python -m benchmarks.load --spawn --calls 1,2,4,6,8 --turns 4
    python -m benchmarks.load --spawn --calls 1,6 --server-arg=--workers=1
    python -m benchmarks.load --url http://127.0.0.1:8080 --calls 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from agent.caller.caller import call
from benchmarks.latency import (
    add_agent_arguments,
    conversation,
    free_port,
    percentile,
    spawn_agent,
)

REFUSED = "refused"


async def one_caller(url: str, audio: np.ndarray, delay_s: float) -> dict[str, Any]:
    """One call after `delay_s`: its turns, or `refused` with the HTTP status."""
    await asyncio.sleep(delay_s)
    try:
        report, _ = await call(url, audio)
    except RuntimeError as err:  # the offer was refused (503 at capacity, 429 per client)
        return {REFUSED: str(err)}
    return report.to_json()


async def run_calls(url: str, audio: np.ndarray, calls: int, stagger_s: float) -> list[dict]:
    """`calls` simultaneous callers, started `stagger_s / calls` apart."""
    step = stagger_s / calls
    return await asyncio.gather(*(one_caller(url, audio, i * step) for i in range(calls)))


def agent_metrics(url: str) -> dict[str, float]:
    """The agent's load figures from /metrics (sums over labels)."""
    wanted = (
        "telugu_s2s_active_sessions",
        "telugu_s2s_capacity_calls",
        "telugu_s2s_lag_ms_max",
        "telugu_s2s_calls_behind_total",
        "telugu_s2s_batch_calls_sum",
        "telugu_s2s_batch_calls_count",
        "telugu_s2s_vad_wait_ms_sum",
        "telugu_s2s_vad_wait_ms_count",
        "process_cpu_seconds_total",
    )
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    refused = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "telugu_s2s_rejected_requests_total"
        and s.labels.get("reason") == "at_capacity"
    ]
    found["refused_at_capacity_total"] = sum(refused)
    return found


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    """How much a counter of /metrics grew between two readings."""
    return after.get(name, 0.0) - before.get(name, 0.0)


def _mean_between(
    before: dict[str, float], after: dict[str, float], name: str, digits: int = 1
) -> float | None:
    """The mean of a histogram's observations between two readings of /metrics."""
    count = _delta(before, after, f"{name}_count")
    return round(_delta(before, after, f"{name}_sum") / count, digits) if count else None


def summarise(results: list[dict]) -> dict[str, Any]:
    """The figures of one N."""
    admitted = [r for r in results if REFUSED not in r]
    turns = [t for r in admitted for t in r["turns"]]
    v2v = [t["voice_to_voice_ms"] for t in turns if t["voice_to_voice_ms"] is not None]
    respond = [
        t["server"]["respond"]
        for t in turns
        if t["voice_to_voice_ms"] is not None and "respond" in t["server"]
    ]
    stages = {
        stage: round(percentile([t["server"][stage] for t in turns if stage in t["server"]], 50), 1)
        for stage in ("eot_wait", "respond", "playout_queue", "send", "speech_end_to_rtp")
    }
    legs = {
        leg: round(percentile([t["path"][leg] for t in turns if leg in t["path"]], 50), 1)
        for leg in ("speech_end_to_vad_ms", "rtp_to_ear_ms")
    }
    missing = [t["continuity"]["missing_ms"] for t in turns if t.get("continuity") is not None]
    return {
        "calls": len(results),
        "admitted": len(admitted),
        "refused": len(results) - len(admitted),
        "turns": len(turns),
        "answered": len(v2v),
        "v2v_p50_ms": round(percentile(v2v, 50), 1),
        "v2v_p95_ms": round(percentile(v2v, 95), 1),
        "respond_p50_ms": round(percentile(respond, 50), 1),
        "missing_answer_ms": round(float(sum(missing)), 1),
        "server_p50_ms": stages,
        "path_p50_ms": legs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_agent_arguments(parser)
    parser.add_argument("--calls", default="1,2,4,6,8", help="comma-separated numbers of calls")
    parser.add_argument("--turns", type=int, default=4, help="turns each caller speaks")
    parser.add_argument("--answer-room", type=float, default=1.5)
    args = parser.parse_args()
    if not args.url and not args.spawn:
        parser.error("give --url of a running agent, or --spawn")
    counts = [int(n) for n in args.calls.split(",")]
    audio = conversation(args.turns, args.answer_room)
    turn_s = len(audio) / 48_000 / max(args.turns, 1)
    proc: subprocess.Popen | None = None
    url = args.url
    rows = []
    try:
        if args.spawn:
            port = free_port()
            proc = spawn_agent(port, list(args.server_arg), timeout_s=120)
            url = f"http://127.0.0.1:{port}"
        for n in counts:
            before = agent_metrics(url)
            started, callers_cpu = time.monotonic(), time.process_time()
            results = asyncio.run(run_calls(url, audio, n, turn_s))
            callers_cpu = time.process_time() - callers_cpu
            row = summarise(results)
            after = agent_metrics(url)
            row["wall_s"] = round(time.monotonic() - started, 1)
            row["capacity"] = after.get("telugu_s2s_capacity_calls")
            row["lag_max_ms"] = after.get("telugu_s2s_lag_ms_max")
            row["calls_behind"] = _delta(before, after, "telugu_s2s_calls_behind_total")
            row["mean_batch"] = _mean_between(before, after, "telugu_s2s_batch_calls", digits=2)
            row["vad_wait_mean_ms"] = _mean_between(before, after, "telugu_s2s_vad_wait_ms")
            cpu_s = _delta(before, after, "process_cpu_seconds_total")
            row["agent_cores"] = round(cpu_s / row["wall_s"], 2)
            row["caller_cores"] = round(callers_cpu / row["wall_s"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            time.sleep(2.0)  # let the previous calls' hang-ups land
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
    header = (
        f"{'calls':>5} {'admitted':>8} {'refused':>7} {'answered':>9} {'v2v p50':>8} "
        f"{'v2v p95':>8} {'respond p50':>11} {'missing ms':>10} {'lag max':>8} {'batch':>6} "
        f"{'vad wait':>8} {'agent cores':>11} {'caller cores':>12}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['calls']:5d} {r['admitted']:8d} {r['refused']:7d} "
            f"{r['answered']:4d}/{r['turns']:<4d} {r['v2v_p50_ms']:8.1f} {r['v2v_p95_ms']:8.1f} "
            f"{r['respond_p50_ms']:11.1f} {r['missing_answer_ms']:10.1f} "
            f"{r['lag_max_ms'] or 0:8.1f} {r['mean_batch'] or 0:6} "
            f"{r['vad_wait_mean_ms'] or 0:8.1f} {r['agent_cores']:11.2f} {r['caller_cores']:12.2f}"
        )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu {platform.platform()}",
        "server_args": args.server_arg,
        "turns_per_call": args.turns,
        "rows": rows,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
