"""Zero-shot voices in real calls: `telugu-s2s serve` as users run it (the demo model, its own
process) called by the headless caller with a voice clip in the offer, with "answer in my
voice", and with an unusable clip; a caller's voice that cannot be taken; and the router of
`serve --workers 2` passing a clip-sized offer to its workers.

The demo model's zero-shot projection is untrained: these calls check that the voice is taken
and the call answered, not that the answer sounds like the clip."""

from __future__ import annotations

import asyncio
import base64
import sys

import aiohttp
import numpy as np
import pytest

from agent.caller.caller import CALLER_VOICE, CallRefused, call
from agent.responders.s2s import S2SResponder
from agent.wire import WIRE_RATE
from models.loading import DEMO_CHECKPOINT, load
from models.speech.audio import MODEL_RATE
from signaling.calls import CALLS
from tests.clips import encode, speech
from tests.conftest import start_agent
from tests.e2e.test_workers import free_port, health, offer, two_parrot_workers
from tests.speech import conversation

pytestmark = pytest.mark.slow


async def wait_for_capacity(url: str, capacity: int, limit_s: float = 120.0) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(limit_s / 0.2)):
            try:
                if (await health(http, url)).get("capacity") == capacity:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the server did not start within {limit_s:g} s")


async def stop(proc: asyncio.subprocess.Process) -> str:
    """Terminate the server; its output, after checking that it stopped cleanly."""
    proc.terminate()
    output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    return output


async def test_calls_with_a_voice_clip_my_voice_and_a_bad_clip():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "signaling.cli", "serve", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "1", "--capacity", "2", "--log-level", "info"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_for_capacity(url, 2)
        greeting = conversation([0.5, "greeting", 2.5], WIRE_RATE)
        # "answer in my voice": three sentences, over 3 s of voiced speech before the last
        talk = conversation([0.5, "weather", 1.2, "cricket", 1.2, "food", 2.5], WIRE_RATE)
        (report, _), (mine, _) = await asyncio.gather(  # the two calls the capacity allows
            call(url, greeting, voice=encode(speech(3.0), "webm")),
            call(url, talk, voice=CALLER_VOICE),
        )
        assert report.voice is not None and report.voice["type"] == "voice_ready", report.events
        assert report.voice["source"] == "clip" and report.voice["ms"] > 0
        assert report.answered == 1, report.to_json()

        report = mine
        voice = report.voice
        assert voice is not None and voice["type"] == "voice_ready", report.events
        assert voice["source"] == "caller" and voice["ms"] > 0
        assert report.answered >= 1, report.to_json()

        with pytest.raises(CallRefused) as refused:
            await call(url, greeting, voice=encode(np.zeros(3 * MODEL_RATE, np.float32), "ogg"))
        assert refused.value.status == 422 and refused.value.body["error"] == "voice_silent"
        with pytest.raises(CallRefused) as refused:
            await call(url, greeting, voice=b"certainly not audio")
        assert refused.value.status == 422
        assert refused.value.body["error"] == "voice_undecodable"
        output = await stop(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "voice clip of" in output  # the clip's time to an embedding is logged


async def test_the_router_passes_a_clip_sized_offer_to_its_workers():
    """A 300 KiB clip is over every body limit but the JSON offer's: the router forwards it
    and the (parrot) worker answers that it does not clone voices."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await two_parrot_workers(port, output=asyncio.subprocess.PIPE)
    pcs = []
    try:
        await wait_for_capacity(url, 2)
        clip = encode(speech(9.5), "wav")
        assert len(clip) > 256 * 1024
        async with aiohttp.ClientSession() as http:
            status, body, _, pc = await offer(http, url, voice=base64.b64encode(clip).decode())
            pcs.append(pc)
            assert (status, body["error"]) == (422, "voice_not_supported"), body
            headers = {"Content-Type": "application/sdp"}
            async with http.post(f"{url}/v1/calls", data=b"v" * 70_000, headers=headers) as r:
                assert (r.status, (await r.json())["error"]) == (413, "body_too_large")
    finally:
        for pc in pcs:
            await pc.close()
        if proc.returncode is None:
            await stop(proc)  # a clean stop is part of the test


async def test_a_caller_voice_that_cannot_be_taken_is_reported_and_the_call_goes_on():
    """The process's voice thread is gone (as when the server is stopping): "answer in my
    voice" gets `voice_failed`, and the answers stay in the named voice."""
    agent, runner = await start_agent(responder=S2SResponder(load(DEMO_CHECKPOINT), seed=0))
    try:
        agent.app[CALLS].voices.close()
        talk = conversation([0.5, "weather", 1.2, "cricket", 1.2, "food", 2.5], WIRE_RATE)
        report, _ = await call(agent.url, talk, voice=CALLER_VOICE)
    finally:
        await runner.cleanup()
    assert report.voice is not None and report.voice["type"] == "voice_failed", report.events
    assert report.voice["source"] == "caller" and report.voice["reason"] == "embedding_failed"
    assert not [e for e in report.events if e["type"] == "voice_ready"]
    assert report.answered >= 1, report.to_json()
