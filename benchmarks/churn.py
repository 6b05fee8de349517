"""Call churn: many real aiortc calls opened and dropped against an agent in this process,
then a look at what is left (sessions, asyncio tasks, threads, file descriptors, RSS).

Each call speaks a short Telugu word, waits until the answer has started playing (so every
drop lands in the middle of an answer) and then goes away in one of five ways, in turn:

  hang_up     DELETE /v1/calls/{id}, then the peer closes
  close_peer  the peer closes (DTLS close, RTCP BYE), no DELETE
  vanish      the peer's UDP sockets close under it: no BYE, no DTLS close, no more packets;
              the agent's peer timeout ends the call
  drop_early  DELETE right after the answer SDP, before ICE has even connected
  abandon     the offer is posted and the answer never applied; the connect timeout ends it

    python -m benchmarks.churn --calls 200 --concurrency 10     # prints figures, one JSON line
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

from agent.audio import WIRE_RATE
from agent.caller import FileTrack
from agent.config import AgentConfig, TurnConfig
from agent.events import EVENTS_LABEL

log = logging.getLogger(__name__)
KINDS = ("hang_up", "close_peer", "vanish", "drop_early", "abandon")
WORD = "నమస్కారం"
CHURN_CONFIG = AgentConfig(
    turns=TurnConfig(min_silence_ms=256),
    peer_timeout_s=1.0,
    connect_timeout_s=2.0,
)
"""Short turns and timeouts, so that a churn run takes a minute, not ten."""
ANSWER_WAIT_S = 10.0
CLOSE_WAIT_S = 5.0
"""How long a caller waits for its own peer connection to close (the agent is what is measured)."""
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)
CALL_LIMIT_S = 45.0
"""A caller still busy after this is given up on (its own peer stalled), so a run always ends."""


@dataclass(frozen=True)
class Resources:
    """What this process holds at one moment."""

    tasks: int
    threads: int
    call_threads: int
    fds: int
    rss_mib: float

    @classmethod
    def now(cls) -> Resources:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * page
        names = [t.name for t in threading.enumerate()]
        return cls(
            tasks=len(asyncio.all_tasks()),
            threads=len(names),
            call_threads=sum(n.startswith(("listen-", "answer-")) for n in names),
            fds=len(os.listdir("/proc/self/fd")),
            rss_mib=round(rss / 2**20, 1),
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


async def _until(predicate: Callable[[], bool], limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


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
        hang_up = f"{url}/v1/calls/{body['session_id']}"
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
                await pc.close()
        except Exception:  # aiortc's close can fail or stall on a half-built connection
            log.warning("a churn caller's peer connection did not close cleanly", exc_info=True)


async def churn(
    url: str,
    calls: int,
    concurrency: int,
    pcm48: np.ndarray,
    sessions_left: Callable[[], int],
    settle_s: float = 20.0,
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
    await _until(lambda: sessions_left() == 0, settle_s)
    return ChurnResult(
        calls=calls,
        seconds=round(time.monotonic() - start, 1),
        kinds=dict(Counter(kinds)),
        answered=outcomes.count("answered"),
        refused=outcomes.count("refused"),
        stuck=outcomes.count("stuck"),
    )


async def settled(check: Callable[[], Awaitable[None]] | None = None) -> Resources:
    """Resources once stray threads have exited and garbage is collected."""
    await _until(lambda: Resources.now().call_threads == 0, 5.0)
    if check is not None:
        await check()
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0.2)
    return Resources.now()


async def _main(args: argparse.Namespace) -> dict:
    from aiohttp import web

    from agent.responders import make_responder
    from signaling.app import create_app
    from signaling.calls import CALLS

    app = create_app(make_responder("parrot"), CHURN_CONFIG, max_sessions=args.concurrency * 6)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    pcm48 = speech()

    def left() -> int:
        return len(app[CALLS].sessions)

    try:
        await churn(url, args.warmup, args.concurrency, pcm48, left)
        before = await settled()
        result = await churn(url, args.calls, args.concurrency, pcm48, left)
        after = await settled()
    finally:
        await runner.cleanup()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "result": asdict(result),
        "sessions_left": left(),
        "before": asdict(before),
        "after": asdict(after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    report = asyncio.run(_main(parser.parse_args()))
    result, before, after = report["result"], report["before"], report["after"]
    print(
        f"{result['calls']} calls in {result['seconds']} s, {result['answered']} answered "
        f"before the drop, {result['refused']} refused, {result['stuck']} callers stuck, "
        f"{report['sessions_left']} sessions left"
    )
    for key in before:
        print(f"  {key:12} before {before[key]:>8}  after {after[key]:>8}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
