"""`telugu-s2s serve` as users run it: a separate process that stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from agent.caller.caller import FileTrack
from agent.wire import WIRE_RATE
from tests.e2e.test_calls import wait_until

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_the_server_and_hangs_up_its_calls(signum):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "info",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    pc = RTCPeerConnection()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            pc.addTrack(FileTrack(np.zeros(WIRE_RATE * 30, dtype=np.float32)))
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
            async with http.post(f"{url}/offer", json=offer) as resp:
                assert resp.status == 200
                answer = await resp.json()
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await wait_until(lambda: pc.connectionState == "connected", 10)
            async with http.get(f"{url}/healthz") as resp:
                assert (await resp.json())["sessions"] == 1
        output_task = asyncio.create_task(proc.stdout.read())
        proc.send_signal(signum)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            raise AssertionError((await output_task).decode()[-5000:]) from None
        output = await output_task
        assert proc.returncode == 0, output.decode()
        assert b"Traceback" not in output, output.decode()
        assert b"server stopping" in output  # the call was hung up, not abandoned
    finally:
        if proc.returncode is None:
            proc.kill()
        await pc.close()
