"""`serve --workers 2` as users run it: calls spread over two worker processes behind one
address, a call past the capacity refused with 503 and Retry-After while the admitted calls
are still answered, hang-ups that reach the call's own worker, one /healthz and /metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from prometheus_client.parser import text_string_to_metric_families

from agent.caller.caller import FileTrack, call
from agent.wire import WIRE_RATE
from tests.e2e.test_calls import wait_until
from tests.speech import conversation

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def health(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(f"{url}/healthz") as resp:
        return await resp.json()


async def offer(
    http: aiohttp.ClientSession, url: str, **extra: str
) -> tuple[int, dict, dict, RTCPeerConnection]:
    """POST /offer of a fresh peer (with `extra` fields, such as a voice)."""
    pc = RTCPeerConnection()
    pc.addTrack(FileTrack(np.zeros(WIRE_RATE * 30, dtype=np.float32)))
    await pc.setLocalDescription(await pc.createOffer())
    body = {"sdp": pc.localDescription.sdp, "type": "offer", **extra}
    async with http.post(f"{url}/offer", json=body) as resp:
        return resp.status, await resp.json(), dict(resp.headers), pc


def samples(text: str, name: str) -> dict[str, float]:
    """A metric's value per `worker` label."""
    return {
        s.labels["worker"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def two_parrot_workers(port: int, *extra: str, output=asyncio.subprocess.DEVNULL):  # noqa: ANN001, ANN201
    """`serve --workers 2 --capacity 1 --responder parrot` on a loopback port."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "signaling.cli", "serve", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "2", "--capacity", "1", "--responder", "parrot", *extra),
        stdout=output,
        stderr=asyncio.subprocess.STDOUT if output is asyncio.subprocess.PIPE else output,
    )


async def test_two_workers_share_calls_and_refuse_past_capacity():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await two_parrot_workers(
        port,
        *("--max-calls-per-client", "0", "--max-pending-per-client", "0"),
        output=asyncio.subprocess.PIPE,
    )
    peers: list[RTCPeerConnection] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    if (await health(http, url)).get("capacity") == 2:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            assert await health(http, url) == {
                "status": "ok",
                "sessions": 0,
                "capacity": 2,
                "workers": 2,
            }
            speech = conversation([2.0, "greeting", 2.5], WIRE_RATE)
            first = asyncio.create_task(call(url, speech))
            for _ in range(100):  # the first call holds a worker
                if (await health(http, url))["sessions"] == 1:
                    break
                await asyncio.sleep(0.1)
            status, second, _, pc = await offer(http, url)
            peers.append(pc)
            assert status == 200
            await pc.setRemoteDescription(RTCSessionDescription(second["sdp"], "answer"))
            await wait_until(lambda: pc.connectionState == "connected", 10)
            status, refused, headers, pc = await offer(http, url)
            peers.append(pc)
            assert status == 503 and refused["error"] == "at_capacity"
            assert int(headers["Retry-After"]) > 0

            report, _ = await first  # admitted before the refusal: still answered
            assert report.answered == 1

            async with http.get(f"{url}/metrics") as resp:
                text = await resp.text()
            assert samples(text, "telugu_s2s_sessions_total") == {
                "0": 1.0,
                "1": 1.0,
                "router": 0.0,
            }  # one call in each worker
            assert samples(text, "telugu_s2s_rejected_requests_total").get("router", 0) >= 1

            async with http.delete(f"{url}{second['resource']}") as resp:
                assert resp.status == 200  # reached the worker that holds the call
            async with http.delete(f"{url}{second['resource']}") as resp:
                assert resp.status == 404
            for _ in range(50):
                if (await health(http, url))["sessions"] == 0:
                    break
                await asyncio.sleep(0.2)
            assert (await health(http, url))["sessions"] == 0
        proc.terminate()
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        assert proc.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pc in peers:
            await pc.close()


def child_pids(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_workers_do_not_outlive_a_killed_router():
    port = free_port()
    proc = await two_parrot_workers(port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    if (await health(http, url)).get("workers") == 2:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        children = child_pids(proc.pid)
        assert len(children) == 2
    finally:
        proc.kill()  # no chance to stop its workers
        await proc.wait()

    await wait_until(lambda: not any(alive(pid) for pid in children), 10)


async def test_a_worker_that_dies_is_started_again():
    port = free_port()
    proc = await two_parrot_workers(port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def workers() -> int:
                try:
                    return (await health(http, url)).get("workers", 0)
                except aiohttp.ClientError:
                    return 0

            for _ in range(300):
                if await workers() == 2:
                    break
                await asyncio.sleep(0.2)
            first, second = child_pids(proc.pid)
            os.kill(first, signal.SIGKILL)
            for _ in range(50):  # seen gone
                if await workers() == 1:
                    break
                await asyncio.sleep(0.1)
            for _ in range(300):  # started again, and answering
                if await workers() == 2:
                    break
                await asyncio.sleep(0.2)
            assert await health(http, url) == {
                "status": "ok",
                "sessions": 0,
                "capacity": 2,
                "workers": 2,
            }
            assert first not in child_pids(proc.pid) and second in child_pids(proc.pid)
    finally:
        proc.terminate()
        await proc.wait()
