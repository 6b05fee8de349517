"""Voice-to-voice latency of a running agent, over many turns of Telugu speech.

One headless aiortc caller speaks N Telugu turns (synthesized with espeak-ng), leaving room
after each for the answer, and measures for every turn the time from the last sample of its
speech to the first sample of the answer it hears back; the agent's own stage timings come
with each turn. Prints p50 and p95 of each figure and ends with one JSON line.

    python -m benchmarks.latency --url http://127.0.0.1:8080 --turns 20
    python -m benchmarks.latency --spawn --turns 20                 # starts its own agent
    python -m benchmarks.latency --spawn --jitter aiortc            # aiortc's jitter buffers
    python -m benchmarks.latency --spawn --eot model                # the model's end of turn
    python -m benchmarks.latency --spawn --responder parrot         # no model in the path
    python -m benchmarks.latency --spawn --turn udp                 # relay-only via a coturn
    python -m benchmarks.latency --url URL --relay-only             # via the agent's TURN
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from agent.caller.caller import CallReport, call, fetch_ice_servers
from agent.config import JitterMode
from agent.wire import WIRE_RATE
from models.data.espeak import synthesize
from turn.coturn import CoturnConfig
from turn.server import Coturn, free_range
from turn.server import free_port as turn_port

TURNS = (
    "నమస్కారం, మీరు ఎలా ఉన్నారు?",
    "ఈ రోజు వాతావరణం చాలా బాగుంది.",
    "నిన్న క్రికెట్ మ్యాచ్ చూశారా?",
    "నాకు పులిహోర అంటే చాలా ఇష్టం.",
    "హైదరాబాద్ కి ఎలా వెళ్ళాలి?",
    "ఇప్పుడు టైం ఎంత అయింది?",
    "మా అమ్మ గారు ఊరు వెళ్ళారు.",
    "ఆ సినిమా చాలా బాగుంది అండి.",
)
VOICES = (("te", 160), ("te+m3", 150), ("te+f2", 170), ("te+f4", 165))
"""The caller's espeak-ng voices and speeds, turn by turn (not the corpus's personas)."""


def conversation(turns: int, answer_room_s: float) -> np.ndarray:
    """`turns` Telugu sentences, each followed by room for the agent's answer."""
    parts = [np.zeros(WIRE_RATE // 2, dtype=np.float32)]
    for i in range(turns):
        voice, speed = VOICES[i % len(VOICES)]
        speech = synthesize(TURNS[i % len(TURNS)], WIRE_RATE, voice=voice, speed=speed)
        parts += [speech, np.zeros(int(len(speech) + answer_room_s * WIRE_RATE), np.float32)]
    return np.concatenate(parts)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(turns: list[dict]) -> dict[str, dict[str, float]]:
    """p50/p95 of voice-to-voice and of each server stage over the answered turns."""
    series: dict[str, list[float]] = {"voice_to_voice_ms": []}
    for turn in turns:
        if turn["voice_to_voice_ms"] is None:
            continue
        series["voice_to_voice_ms"].append(turn["voice_to_voice_ms"])
        for stage, ms in turn["server"].items():
            series.setdefault(f"server.{stage}", []).append(ms)
        for leg, ms in turn["path"].items():
            series.setdefault(f"path.{leg}", []).append(ms)
    return {
        name: {"p50": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1), "n": len(v)}
        for name, v in series.items()
    }


def answers_ahead(events: list[dict]) -> dict[str, int]:
    """How the answers the agent started ahead ended (its `answer_ahead` events)."""
    outcomes = Counter(e["outcome"] for e in events if e.get("type") == "answer_ahead")
    return {outcome: outcomes[outcome] for outcome in ("used", "discarded", "stale")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_agent(
    port: int, server_args: list[str], env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.Popen:
    """Start `telugu-s2s serve` on loopback and wait (up to `timeout_s`) until it answers
    /healthz."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signaling.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *server_args,
        ],
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the agent did not start")


def start_coturn() -> tuple[Coturn, dict[str, str]]:
    """coturn on free loopback ports (test mode: the agent's host address is a peer) and the
    environment that gives the spawned agent its secret."""
    low, high = free_range(32)
    config = CoturnConfig(
        listening_ips=("127.0.0.1",),
        relay_ips=("127.0.0.1",),
        port=turn_port(),
        tls_port=turn_port(),
        min_port=low,
        max_port=high,
        test_mode=True,
    )
    secret = secrets.token_urlsafe(24)
    return Coturn(config, secret).start(), {"TURN_SECRET": secret}


async def call_agent(
    url: str, audio: np.ndarray, endpoint: str, jitter: JitterMode, relay_only: bool
) -> tuple[CallReport, np.ndarray]:
    """One call; relay-only through the agent's own /ice-config TURN servers when asked."""
    servers = await fetch_ice_servers(url) if relay_only else None
    return await call(
        url, audio, endpoint=endpoint, jitter=jitter, ice_servers=servers, relay_only=relay_only
    )


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """--url of a running agent, or --spawn one (with --server-arg ...)."""
    parser.add_argument("--url", help="a running agent")
    parser.add_argument("--spawn", action="store_true", help="start an agent for the run")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument for the spawned agent (repeatable)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_agent_arguments(parser)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument(
        "--jitter",
        choices=["adaptive", "aiortc"],
        default="adaptive",
        help="receive jitter buffer on both ends (spawned agent and caller)",
    )
    parser.add_argument("--endpoint", choices=["offer", "whip"], default="offer")
    parser.add_argument(
        "--responder",
        choices=["s2s", "codec", "parrot"],
        default="s2s",
        help="the spawned agent's responder",
    )
    parser.add_argument(
        "--eot",
        choices=["silence", "model", "content"],
        default="silence",
        help="the spawned agent's end-of-turn rule",
    )
    parser.add_argument(
        "--answer-room",
        type=float,
        default=1.5,
        help="seconds of silence after each turn beyond the turn's length",
    )
    parser.add_argument(
        "--turn",
        choices=["udp", "tcp"],
        help="with --spawn: start coturn on loopback too and call relay-only over this transport",
    )
    parser.add_argument(
        "--relay-only",
        action="store_true",
        help="with --url: call relay-only through the TURN servers of the agent's /ice-config",
    )
    args = parser.parse_args()
    if not args.url and not args.spawn:
        parser.error("give --url of a running agent, or --spawn")

    if args.turn and not args.spawn:
        parser.error("--turn goes with --spawn; use --relay-only with --url")

    audio = conversation(args.turns, args.answer_room)
    proc = None
    coturn = None
    url = args.url
    relay_only = args.relay_only or bool(args.turn)
    try:
        if args.spawn:
            server_args = [
                *("--jitter", args.jitter, "--responder", args.responder, "--eot", args.eot),
                *args.server_arg,
            ]
            env: dict[str, str] = {}
            if args.turn:
                coturn, env = start_coturn()
                url_index = {"udp": 0, "tcp": 1}[args.turn]
                server_args += ["--turn-url", coturn.config.urls("127.0.0.1")[url_index]]
            port = free_port()
            proc = spawn_agent(port, server_args, env)
            url = f"http://127.0.0.1:{port}"
        report, _ = asyncio.run(
            call_agent(url, audio, args.endpoint, args.jitter, relay_only=relay_only)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if coturn is not None:
            coturn.stop()

    turns = report.to_json()["turns"]
    summary = summarise(turns)
    print(f"{'figure':34} {'p50 ms':>8} {'p95 ms':>8} {'n':>4}")
    for name, row in summary.items():
        print(f"{name:34} {row['p50']:8.1f} {row['p95']:8.1f} {row['n']:4d}")
    print(
        f"answered {report.answered}/{len(turns)} turns; caller jitter buffer median "
        f"{report.client_jitter_buffer_ms} ms"
    )
    ahead = answers_ahead(report.events)
    print(
        f"answers started ahead: {ahead['used']} used, {ahead['discarded']} discarded "
        f"(the user went on), {ahead['stale']} stale"
    )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu {platform.platform()}",
        "jitter": args.jitter,
        "relay_only": relay_only,
        "ice_pair": report.ice_pair,
        "responder": args.responder if args.spawn else None,
        "eot": args.eot if args.spawn else None,
        "turns": len(turns),
        "answered": report.answered,
        "client_jitter_buffer_ms": report.client_jitter_buffer_ms,
        "answers_ahead": ahead,
        "summary": summary,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if report.answered else 1


if __name__ == "__main__":
    raise SystemExit(main())
