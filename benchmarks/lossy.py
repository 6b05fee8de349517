"""Voice-to-voice and answer continuity over impaired, phone-like links.

Spawns one parrot agent, then for each link condition makes one call of N Telugu turns
through the caller's userspace impairment stage (agent/caller/impairment.py: delay, jitter,
reordering and loss on every media packet, both directions) and prints p50/p95 of
voice-to-voice and of each answer's continuity (longest stall, audio missing, frames
rebuilt), with the frames each side concealed. Ends with one JSON line.

    python -m benchmarks.lossy --turns 20                   # the agent as it is
    python -m benchmarks.lossy --turns 20 --receive skip    # no concealment, no FEC (before)
    python -m benchmarks.lossy --turns 20 --receive aiortc  # aiortc's buffer, no FEC

Run it as a module from the repository root, so that `agent` is this checkout's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import urllib.request
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from agent.caller.caller import call
from agent.caller.impairment import PROFILES, LinkProfile
from agent.config import JitterMode
from benchmarks.latency import conversation, free_port, percentile, spawn_agent

CONCEALED = re.compile(r'^telugu_s2s_concealed_frames_total\{how="(\w+)"\} ([0-9.e+]+)$', re.M)


def agent_concealed(url: str) -> dict[str, float]:
    """The agent's running totals of frames rebuilt by PLC and FEC, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {how: float(n) for how, n in CONCEALED.findall(text)}


def stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "max": round(max(values), 1) if values else float("nan"),
        "n": len(values),
    }


async def run_condition(
    url: str, audio: Any, link: LinkProfile, receive: JitterMode
) -> dict[str, Any]:
    """One call over `link`; the figures of its answered turns."""
    agent_before = agent_concealed(url)
    report, _ = await call(url, audio, link=link, jitter=receive, opus_fec=receive == "adaptive")
    agent_after = agent_concealed(url)
    turns = [t for t in report.turns if t.voice_to_voice_ms is not None]
    continuity = [t.continuity for t in turns if t.continuity is not None]
    return {
        "link": asdict(link),
        "turns": len(report.turns),
        "answered": report.answered,
        "voice_to_voice_ms": stats([t.voice_to_voice_ms for t in turns]),
        "answer_stall_ms": stats([c.stall_ms for c in continuity]),
        "answer_missing_ms": stats([c.missing_ms for c in continuity]),
        "answer_rebuilt_frames": stats([c.rebuilt_frames for c in continuity]),
        "caller_concealed": report.client_concealment,
        "agent_concealed": {
            how: agent_after.get(how, 0) - agent_before.get(how, 0) for how in agent_after
        },
        "packets": {k: v for k, v in report.link.items() if k in ("uplink", "downlink")},
    }


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        f"{'condition':24} {'answered':>8} {'v2v p50':>8} {'v2v p95':>8} {'stall p50':>9} "
        f"{'stall p95':>9} {'miss p50':>8} {'miss p95':>8} {'rebuilt/ans':>11} "
        f"{'caller plc/fec':>14} {'agent plc/fec':>13}"
    )
    print(head)
    for r in results:
        caller = r["caller_concealed"]
        agent = r["agent_concealed"]
        print(
            f"{r['link']['name']:24} {r['answered']:>4}/{r['turns']:<3} "
            f"{r['voice_to_voice_ms']['p50']:8.1f} {r['voice_to_voice_ms']['p95']:8.1f} "
            f"{r['answer_stall_ms']['p50']:9.1f} {r['answer_stall_ms']['p95']:9.1f} "
            f"{r['answer_missing_ms']['p50']:8.1f} {r['answer_missing_ms']['p95']:8.1f} "
            f"{r['answer_rebuilt_frames']['p50']:11.1f} "
            f"{caller.get('plc', 0):>7.0f}/{caller.get('fec', 0):<6.0f} "
            f"{agent.get('plc', 0):>6.0f}/{agent.get('fec', 0):<6.0f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20, help="turns per condition")
    parser.add_argument("--conditions", nargs="+", choices=list(PROFILES), default=list(PROFILES))
    parser.add_argument("--seed", type=int, default=1, help="seed of the impairment draws")
    parser.add_argument(
        "--receive",
        choices=["adaptive", "skip", "aiortc"],
        default="adaptive",
        help="receive path on both ends (serve --jitter); FEC is sent only with adaptive",
    )
    parser.add_argument("--answer-room", type=float, default=1.5)
    args = parser.parse_args()

    audio = conversation(args.turns, args.answer_room)
    port = free_port()
    server_args = ["--responder", "parrot", "--jitter", args.receive]
    if args.receive != "adaptive":
        server_args.append("--no-opus-fec")
    proc = spawn_agent(port, server_args)
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        for name in args.conditions:
            link = replace(PROFILES[name], seed=args.seed)
            results.append(asyncio.run(run_condition(url, audio, link, args.receive)))
    finally:
        proc.terminate()
        proc.wait(10)

    print_table(results)
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} {os.cpu_count()} cpu {platform.platform()}",
                "receive": args.receive,
                "seed": args.seed,
                "results": results,
            },
            ensure_ascii=False,
        )
    )
    return 0 if all(r["answered"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
