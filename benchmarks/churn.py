"""Call churn: many real aiortc calls opened and dropped against an agent in its own process,
then a look at what that process still holds (sessions, asyncio tasks, threads, file
descriptors, resident memory), read from its /metrics.

Each call speaks a short Telugu word, waits until the answer has started playing (so every
drop lands in the middle of an answer) and then goes away in one of five ways, in turn:

  hang_up     DELETE the call's resource URL, then the peer closes
  close_peer  the peer closes (DTLS close, RTCP BYE), no DELETE
  vanish      the peer's UDP sockets close under it: no BYE, no DTLS close, no more packets;
              the agent's peer timeout ends the call
  drop_early  DELETE right after the answer SDP, before ICE has even connected
  abandon     the offer is posted and the answer never applied; the establish timeout ends it

    python -m benchmarks.churn --warmup 100 --blocks 4 --calls 100   # spawns a parrot agent
    python -m benchmarks.churn --server-arg=--no-memory-trim         # without agent.process.memory
    python -m benchmarks.churn --url http://127.0.0.1:8080          # an agent already running

It prints the agent's resources after the warm-up and after each block, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TypeVar

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from prometheus_client.parser import text_string_to_metric_families

from agent.aiortc_fixes.peerclose import close_peer
from agent.caller.caller import FileTrack
from agent.events import EVENTS_LABEL
from agent.process.memory import TRIM_DELAY_S
from agent.wire import WIRE_RATE
from benchmarks.latency import free_port, spawn_agent

log = logging.getLogger(__name__)
T = TypeVar("T")
KINDS = ("hang_up", "close_peer", "vanish", "drop_early", "abandon")
WORD = "నమస్కారం"
CHURN_AGENT = (
    "--workers",
    "1",  # one process holds every call: its own /metrics are what leaks would show in
    "--capacity",
    "1000",  # slots by --max-sessions alone: churned calls linger by design (vanish, abandon)
    "--responder",
    "parrot",
    "--no-captions",  # the recognizer: a third of a parrot call's listening work
    "--min-silence-ms",
    "256",
    "--peer-timeout",
    "1",
    "--connect-timeout",
    "4",
    "--establish-timeout",
    "4",
    "--rate-limit",
    "off",
    "--max-pending-per-client",
    "0",
    "--max-calls-per-client",
    "0",
)
"""The agent under churn (`telugu-s2s serve` arguments): no model in the path (not even the
parrot's recognizer: with it, ten calls at once left a slow 2-core machine's listening seconds
behind and some answers started after ANSWER_WAIT_S), short turns and
timeouts, so that a block of 100 calls takes half a minute; all callers share one address,
so the per-client caps are off."""
ANSWER_WAIT_S = 15.0
CLOSE_WAIT_S = 5.0
"""How long a caller waits for its own peer connection to close (the agent is what is measured)."""
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)
CALL_LIMIT_S = 45.0
"""A caller still busy after this is given up on (its own peer stalled), so a run always ends."""


@dataclass(frozen=True)
class Resources:
    """What the agent's process holds at one moment, as its /metrics reports it."""

    tasks: int
    threads: int
    call_threads: int
    fds: int
    rss_mib: float

    @classmethod
    async def of(cls, http: aiohttp.ClientSession, url: str) -> Resources:
        async with http.get(f"{url}/metrics") as resp:
            text = await resp.text()
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        if 'worker="' in text:
            raise ValueError("churn reads one process's figures: run the agent with --workers 1")
        return cls(
            tasks=int(values["telugu_s2s_asyncio_tasks"]),
            threads=int(values["telugu_s2s_threads"]),
            call_threads=int(values["telugu_s2s_call_threads"]),
            fds=int(values["process_open_fds"]),
            rss_mib=round(values["process_resident_memory_bytes"] / 2**20, 1),
        )


@dataclass
class ChurnResult:
    calls: int
    seconds: float
    kinds: dict[str, int]
    answered: int
    """Calls that heard their answer start before they dropped (all but `abandon`, `drop_early`)."""
    refused: int
    stuck: int
    """Callers whose own aiortc peer had not finished within CALL_LIMIT_S (given up on)."""
    sessions_left: int
    """Calls the agent still held settle_s after the last caller was done."""


def speech(rate: int = WIRE_RATE) -> np.ndarray:
    """The word each caller says: 0.2 s of quiet, the word, then quiet (FileTrack adds it)."""
    from models.data.espeak import synthesize

    return np.concatenate([np.zeros(int(0.2 * rate), np.float32), synthesize(WORD, rate)])


def _close_sockets(pc: RTCPeerConnection) -> None:
    """Vanish: close the peer's UDP sockets without telling anyone."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.sender.transport.transport._connection
        for protocol in connection._protocols:
            if protocol.transport is not None:
                protocol.transport.close()


async def one_call(http: aiohttp.ClientSession, url: str, kind: str, pcm48: np.ndarray) -> str:
    """Open one call and drop it the `kind` way; returns 'answered', 'dropped' or 'refused'."""
    pc = RTCPeerConnection()
    started = asyncio.Event()
    channel = pc.createDataChannel(EVENTS_LABEL)

    def on_message(message: str | bytes) -> None:
        if isinstance(message, str) and json.loads(message).get("type") == "response_started":
            started.set()

    channel.on("message", on_message)
    pc.addTrack(FileTrack(pcm48))
    outcome = "dropped"
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription
        async with http.post(f"{url}/offer", json={"sdp": offer.sdp, "type": "offer"}) as resp:
            if resp.status != 200:
                return "refused"
            body = await resp.json()
        hang_up = f"{url}{body['resource']}"
        if kind == "abandon":
            return outcome
        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        if kind == "drop_early":
            async with http.delete(hang_up):
                return outcome
        try:
            async with asyncio.timeout(ANSWER_WAIT_S):
                await started.wait()
            outcome = "answered"
        except TimeoutError:
            pass
        await asyncio.sleep(0.1)  # well inside the answer
        if kind == "hang_up":
            async with http.delete(hang_up):
                pass
        elif kind == "vanish":
            _close_sockets(pc)
        return outcome
    finally:
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await close_peer(pc)
        except Exception:  # aiortc's close can fail or stall on a half-built connection
            log.warning("a churn caller's peer connection did not close cleanly", exc_info=True)


async def _poll(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], limit_s: float) -> T:
    """read() every 0.1 s until done(value) or limit_s have passed; the last value."""
    deadline = time.monotonic() + limit_s
    value = await read()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = await read()
    return value


async def sessions(http: aiohttp.ClientSession, url: str) -> int:
    """Calls the agent holds, from its /healthz."""
    async with http.get(f"{url}/healthz") as resp:
        return int((await resp.json())["sessions"])


async def churn(
    url: str, calls: int, concurrency: int, pcm48: np.ndarray, settle_s: float = 20.0
) -> ChurnResult:
    """`calls` calls, `concurrency` at a time, the kinds in turn; returns once the agent
    reports no sessions (or after settle_s more seconds)."""
    start = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    kinds = [KINDS[i % len(KINDS)] for i in range(calls)]

    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:

        async def limited(kind: str) -> str:
            async with gate:
                try:
                    async with asyncio.timeout(CALL_LIMIT_S):
                        return await one_call(http, url, kind, pcm48)
                except TimeoutError:
                    return "stuck"

        outcomes = await asyncio.gather(*(limited(k) for k in kinds))
        left = await _poll(lambda: sessions(http, url), lambda n: n == 0, settle_s)
    return ChurnResult(
        calls=calls,
        seconds=round(time.monotonic() - start, 1),
        kinds=dict(Counter(kinds)),
        answered=outcomes.count("answered"),
        refused=outcomes.count("refused"),
        stuck=outcomes.count("stuck"),
        sessions_left=left,
    )


async def settled(url: str, limit_s: float = 5.0) -> Resources:
    """The agent's resources once its calls' worker threads have exited (or after limit_s)
    and the memory trim that follows the last call (agent.process.memory) has run."""
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        await _poll(lambda: Resources.of(http, url), lambda r: r.call_threads == 0, limit_s)
        await asyncio.sleep(TRIM_DELAY_S + 1.0)
        return await Resources.of(http, url)


async def measure(url: str, warmup: int, blocks: int, calls: int, concurrency: int) -> dict:
    """`warmup` calls, then `blocks` blocks of `calls` calls; the agent's resources after the
    warm-up and after each block."""
    pcm48 = speech()
    await churn(url, warmup, concurrency, pcm48)
    report: dict = {"before": asdict(await settled(url)), "blocks": []}
    for _ in range(blocks):
        result = await churn(url, calls, concurrency, pcm48)
        report["blocks"].append({"result": asdict(result), "after": asdict(await settled(url))})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running agent (default: spawn one, as CHURN_AGENT)")
    parser.add_argument("--calls", type=int, default=100, help="calls per block")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the spawned agent (repeatable): --server-arg=--no-memory-trim",
    )
    args = parser.parse_args()
    proc = None
    if args.url is None:
        port = free_port()
        server_args = [*CHURN_AGENT, "--max-sessions", str(args.concurrency * 6), *args.server_arg]
        proc = spawn_agent(port, server_args)
    url = args.url or f"http://127.0.0.1:{port}"
    try:
        report = asyncio.run(measure(url, args.warmup, args.blocks, args.calls, args.concurrency))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    done, before = args.warmup, report["before"]
    print(f"after {done:5} warm-up calls: {before}")
    for block in report["blocks"]:
        result = block["result"]
        done += result["calls"]
        print(
            f"after {done:5} calls: {block['after']}  ({result['seconds']} s, "
            f"{result['answered']} answered before the drop, {result['refused']} refused, "
            f"{result['stuck']} stuck, {result['sessions_left']} sessions left)"
        )
    machine = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    report |= {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
