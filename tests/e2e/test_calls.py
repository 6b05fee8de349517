"""Real calls: a headless aiortc peer talks to a real agent over loopback WebRTC."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from agent.caller.caller import FileTrack, call, speech_segments
from agent.config import AgentConfig
from agent.wire import WIRE_RATE
from tests.conftest import start_agent
from tests.speech import conversation, envelope_similarity

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def greeting() -> np.ndarray:
    return conversation([0.5, "greeting", 2.5], WIRE_RATE)


@pytest.fixture(scope="module")
def weather() -> np.ndarray:
    return conversation([0.5, "weather", 2.5], WIRE_RATE)


def first_answer(heard: np.ndarray, seconds: float) -> np.ndarray:
    start = speech_segments(heard, gap_ms=300)[0][0]
    return heard[start : start + int(seconds * WIRE_RATE)]


def spoken(pcm: np.ndarray) -> np.ndarray:
    (start, end), *_ = speech_segments(pcm, gap_ms=700)
    return pcm[start:end]


async def wait_until(predicate, limit_s: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > limit_s:
            raise AssertionError(f"not within {limit_s} s")
        await asyncio.sleep(0.05)
    return loop.time() - start


def agent_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("listen-", "answer-"))]


async def test_parrot_answers_with_the_same_speech_and_reports_latency(agent, greeting, weather):
    report, heard = await call(agent.url, greeting, endpoint="offer")
    assert len(report.turns) == 1
    turn = report.turns[0]
    said = spoken(greeting)
    answer = first_answer(heard, len(said) / WIRE_RATE)
    # the same speech came back through two Opus encodes...
    assert envelope_similarity(said, answer, WIRE_RATE) > 0.8
    # ...and not merely some speech
    assert envelope_similarity(spoken(weather), answer, WIRE_RATE) < 0.6
    assert abs(turn.answer_duration_ms - 1000 * len(said) / WIRE_RATE) < 300
    # the latency report is there and plausible
    stages = turn.server
    assert set(stages) >= {
        "eot_wait",
        "respond",
        "playout_queue",
        "send",
        "speech_end_to_rtp",
        "jitter_buffer",
    }
    # stage durations are wall-clock figures: on a loaded machine the listening worker lags
    # and they stretch or shrink, so only their order is checked here (the silence rule
    # itself is checked in stream time by tests/unit/test_turns.py)
    assert all(0 <= ms < 30_000 for ms in stages.values())
    assert stages["eot_wait"] < stages["speech_end_to_rtp"]
    assert stages["respond"] < stages["speech_end_to_rtp"]
    kinds = [e["type"] for e in report.events]
    for kind in (
        "session",
        "speech_started",
        "speech_stopped",
        "response_started",
        "response_done",
        "latency",
    ):
        assert kind in kinds
    assert (
        kinds.index("speech_started")
        < kinds.index("speech_stopped")
        < kinds.index("response_started")
        < kinds.index("response_done")
    )
    await wait_until(lambda: not agent.sessions, 5)


async def test_whip_call_with_delete_hang_up(agent, greeting):
    report, heard = await call(
        agent.url, greeting, endpoint="whip", speaker="male_2", emotion="HAPPY"
    )
    assert report.answered == 1
    assert envelope_similarity(spoken(greeting), first_answer(heard, 2.0), WIRE_RATE) > 0.8

    # hang up by DELETE while the peer is still connected
    pc = RTCPeerConnection()
    pc.addTrack(FileTrack(greeting))
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{agent.url}/v1/calls?speaker=female_2",
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        ) as resp:
            assert resp.status == 201
            assert resp.headers["Content-Type"].startswith("application/sdp")
            location = resp.headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))
        await wait_until(lambda: pc.connectionState == "connected", 5)
        session = agent.sessions[location.split("/")[-2]]  # /v1/calls/{id}/{secret}
        assert session.options.speaker == "female_2"
        async with http.delete(f"{agent.url}{location}") as resp:
            assert resp.status == 200
        assert agent.sessions == {}
        assert session.pc.connectionState == "closed"
        async with http.delete(f"{agent.url}{location}") as resp:
            assert resp.status == 404
    await pc.close()
    await wait_until(lambda: not agent_threads(), 5)


async def test_two_concurrent_calls_do_not_mix_audio(agent, greeting, weather):
    (report_a, heard_a), (report_b, heard_b) = await asyncio.gather(
        call(agent.url, greeting), call(agent.url, weather)
    )
    assert report_a.answered == report_b.answered == 1
    said_a, said_b = spoken(greeting), spoken(weather)
    answer_a = first_answer(heard_a, len(said_a) / WIRE_RATE)
    answer_b = first_answer(heard_b, len(said_b) / WIRE_RATE)
    assert envelope_similarity(said_a, answer_a, WIRE_RATE) > 0.8
    assert envelope_similarity(said_b, answer_b, WIRE_RATE) > 0.8
    assert envelope_similarity(said_b, answer_a, WIRE_RATE) < 0.6
    assert envelope_similarity(said_a, answer_b, WIRE_RATE) < 0.6


@pytest.fixture(scope="module")
def interrupted() -> np.ndarray:
    """A long turn, then the user talks again 1 s into the agent's answer."""
    return conversation([0.5, "cricket", 1.6, "food", 3.0], WIRE_RATE)


@pytest.mark.parametrize("barge_in", [True, False])
async def test_barge_in_stops_the_answer(interrupted, barge_in):
    agent, runner = await start_agent(AgentConfig(barge_in=barge_in))
    try:
        report, _ = await call(agent.url, interrupted)
    finally:
        await runner.cleanup()
    first, second = report.turns
    cricket_ms = 1000 * len(spoken(interrupted)) / WIRE_RATE
    kinds = [e["type"] for e in report.events]
    if barge_in:
        barge_in_event = next(e for e in report.events if e["type"] == "barge_in")
        assert barge_in_event["turn"] == 1  # the answer that was cut, not the new turn
        done = [e for e in report.events if e["type"] == "response_done"]
        assert [(e["turn"], e["interrupted"]) for e in done] == [(1, True), (2, False)]
        assert first.answer_duration_ms < cricket_ms - 800
    else:
        assert "barge_in" not in kinds
        assert first.answer_duration_ms > cricket_ms - 300
    assert second.voice_to_voice_ms is not None


async def test_vanished_peer_is_cleaned_up_by_the_peer_timeout(agent, greeting, tmp_path):
    """A caller process killed mid-call (no BYE, no DTLS close): the agent notices that no
    audio arrives (peer_timeout_s, 3 s) and frees the session, its threads and its peer
    connection."""
    import signal
    import sys

    from models.speech.audio import write_audio

    clip = tmp_path / "long.wav"
    write_audio(clip, np.tile(greeting, 4), WIRE_RATE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling.cli",
        "call",
        agent.url,
        "--audio",
        str(clip),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await wait_until(lambda: bool(agent.sessions), 20)
    session = next(iter(agent.sessions.values()))
    await wait_until(lambda: session.pc.connectionState == "connected", 10)
    await asyncio.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await wait_until(lambda: not agent.sessions, 15.0)
    assert session.closed.is_set() and session.pc.connectionState == "closed"
    assert "no audio" in session.close_reason, session.close_reason
    await wait_until(lambda: not agent_threads(), 5.0)


async def test_a_call_whose_listening_falls_behind_is_told_once(greeting):
    """With a limit below what batching alone costs, the call's listening is behind from its
    first batch: one `behind` event with the lag, counted in /metrics, and the call goes on."""
    agent, runner = await start_agent(AgentConfig(behind_ms=1.0))
    try:
        report, _ = await call(agent.url, greeting)
        behind = [e for e in report.events if e.get("type") == "behind"]
        assert len(behind) == 1 and behind[0]["lag_ms"] > 1.0
        assert report.answered == 1
        async with aiohttp.ClientSession() as http, http.get(f"{agent.url}/metrics") as resp:
            assert "telugu_s2s_calls_behind_total 1.0" in await resp.text()
    finally:
        await runner.cleanup()
