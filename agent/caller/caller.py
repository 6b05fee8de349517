"""The headless caller: an aiortc peer that speaks a WAV file to the agent in real time,
records every sample it hears back, and reports each turn's voice-to-voice latency.

voice_to_voice_ms = (wall time the first sample of the answer was received)
                  - (wall time the last sample of the user's speech was sent),
an answer being audio that starts after at least ANSWER_QUIET_MS of quiet.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from agent.aiortc_fixes.icefix import install as install_ice_fix
from agent.aiortc_fixes.opus_send import opus_negotiated, use_speech_encoder
from agent.aiortc_fixes.peerclose import close_peer
from agent.aiortc_fixes.receive import concealment, install_receive_buffer
from agent.caller.captions import agent_turn, caption_texts
from agent.caller.continuity import Continuity, answer_continuity
from agent.caller.icepair import selected_pair
from agent.caller.impairment import ImpairedLink, LinkProfile
from agent.config import JitterMode
from agent.events import EVENTS_LABEL
from agent.wire import WIRE_FRAME, WIRE_RATE, frame_to_mono
from models.speech.audio import frame_from_pcm

install_ice_fix()

FRAME_S = WIRE_FRAME / WIRE_RATE
LOUD = 0.01
"""Amplitude (float, 1.0 = full scale) above which a sample counts as sound (-40 dBFS)."""
ANSWER_QUIET_MS = 200
"""Quiet needed before received sound counts as the start of a new answer."""
VOICE_EVENTS = ("voice_ready", "voice_failed")
CALLER_VOICE = "caller"
"""The offer's `voice` asking for answers in the caller's own voice."""


class CallRefused(RuntimeError):
    """The agent refused the call: its HTTP status and its JSON error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"call refused: {status} {body.get('error')}: {body.get('message')}")
        self.status = status
        self.body = body


@dataclass
class TurnReport:
    turn: int
    speech_end_s: float
    """Where the user's turn ends, in seconds into the input file."""
    voice_to_voice_ms: float | None
    answer_duration_ms: float | None
    server: dict[str, float] = field(default_factory=dict)
    path: dict[str, float] = field(default_factory=dict)
    """Only when caller and agent share a host (and so a monotonic clock):
    speech_end_to_vad_ms, from the last speech sample sent to the arrival of the agent's last
    speech window (Opus, network, the receive path and the VAD's tail after real speech ends);
    rtp_to_ear_ms, from the first answer packet sent to its first sample heard."""
    ahead: bool | None = None
    """Whether the agent had started this answer ahead, in the pause before the end of turn
    (its latency event says; None without one)."""
    continuity: Continuity | None = None
    """How whole the answer arrived: longest stall, audio missing, frames rebuilt."""
    user_text: str | None = None
    """The agent's captions of the turn: the user's words as it heard them, and its own
    answer's (each the final caption, else the last partial; None without captions)."""
    agent_text: str | None = None


@dataclass
class CallReport:
    session: str
    turns: list[TurnReport]
    events: list[dict[str, Any]]
    client_jitter_buffer_ms: float | None
    client_concealment: dict[str, float] = field(default_factory=dict)
    """Frames the caller's decoder rebuilt (plc, fec) and audio left missing (ms)."""
    link: dict[str, Any] = field(default_factory=dict)
    """The impairment applied, and what it did in each direction."""
    ice_pair: dict[str, Any] | None = None
    """The caller's selected candidate pair (types and addresses of both ends)."""

    @property
    def answered(self) -> int:
        return sum(t.voice_to_voice_ms is not None for t in self.turns)

    @property
    def voice(self) -> dict[str, Any] | None:
        """The agent's first voice event (`voice_ready` or `voice_failed`), if any."""
        return next((e for e in self.events if e.get("type") in VOICE_EVENTS), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "answered": self.answered,
            "turns": [asdict(t) for t in self.turns],
            "client_jitter_buffer_ms": self.client_jitter_buffer_ms,
            "client_concealment": self.client_concealment,
            "link": self.link,
            "ice_pair": self.ice_pair,
            "voice": self.voice,
        }


class FileTrack(MediaStreamTrack):
    """Plays a 48 kHz mono signal as paced 20 ms frames, then silence; remembers when each
    frame left (the moment its last sample exists, as with a microphone)."""

    kind = "audio"

    def __init__(self, pcm48: np.ndarray) -> None:
        super().__init__()
        frames = -(-len(pcm48) // WIRE_FRAME)
        self._pcm = np.zeros(frames * WIRE_FRAME, dtype=np.float32)
        self._pcm[: len(pcm48)] = pcm48
        self._index = 0
        self._start: float | None = None
        self.sent_at: list[float] = []
        self.done = asyncio.Event()

    async def recv(self):  # noqa: ANN201 - av.AudioFrame
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._index * FRAME_S
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
        offset = self._index * WIRE_FRAME
        chunk = self._pcm[offset : offset + WIRE_FRAME]
        if len(chunk) < WIRE_FRAME:
            chunk = np.zeros(WIRE_FRAME, dtype=np.float32)
            self.done.set()
        frame = frame_from_pcm(chunk, WIRE_RATE, pts=offset)
        self._index += 1
        self.sent_at.append(time.monotonic())
        return frame

    def sample_time(self, sample: int) -> float:
        """Wall time at which input sample `sample` was sent."""
        frame, within = divmod(sample, WIRE_FRAME)
        return self.sent_at[frame] - (WIRE_FRAME - 1 - within) / WIRE_RATE


class Recorder:
    """Keeps every frame of the agent's track with the time it was received."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []
        self.pts: list[int | None] = []
        self.last_loud = 0.0
        self._task: asyncio.Task | None = None

    def start(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.create_task(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                pcm = frame_to_mono(frame)
                self.frames.append((now, pcm))
                self.pts.append(frame.pts)
                if np.abs(pcm).max(initial=0) > LOUD:
                    self.last_loud = now
        except MediaStreamError:
            pass

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def audio(self) -> np.ndarray:
        return np.concatenate([p for _, p in self.frames]) if self.frames else np.zeros(0)


def speech_segments(pcm: np.ndarray, gap_ms: float, rate: int = WIRE_RATE) -> list[tuple[int, int]]:
    """(first, last) loud sample of each stretch of sound, merging stretches closer than gap_ms."""
    loud = np.flatnonzero(np.abs(pcm) > LOUD)
    if len(loud) == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > gap_ms * rate / 1000)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def answer_onsets(frames: list[tuple[float, np.ndarray]]) -> list[tuple[float, float]]:
    """(start time, end time) of each answer heard: sound after ANSWER_QUIET_MS of quiet."""
    answers: list[tuple[float, float]] = []
    quiet_s = ANSWER_QUIET_MS / 1000
    last_loud = -1e9
    for received, pcm in frames:
        loud = np.flatnonzero(np.abs(pcm) > LOUD)
        if len(loud) == 0:
            continue
        first = received + loud[0] / WIRE_RATE
        last = received + loud[-1] / WIRE_RATE
        if first - last_loud >= quiet_s:
            answers.append((first, last))
        else:
            answers[-1] = (answers[-1][0], last)
        last_loud = last
    return answers


def match_turns(
    track: FileTrack,
    segments: list[tuple[int, int]],
    answers: list[tuple[float, float]],
    events: list[tuple[float, dict[str, Any]]],
    same_host: bool = False,
    recorder: Recorder | None = None,
    rebuilt_pts: set[int] | None = None,
) -> list[TurnReport]:
    """Pair each user turn with the first answer that starts after it ends (and before the
    next turn ends), with the server latency event that arrived closest to that answer, and
    with the captions of the first turn the agent ended in that span; with the `recorder`,
    also measure how whole each answer arrived. `events`: (arrival time, event)."""
    latency_events = [(t, e) for t, e in events if e.get("type") == "latency"]
    users = caption_texts((e for _, e in events), "user")
    agents = caption_texts((e for _, e in events), "agent")
    reports = []
    ends = [track.sample_time(end) for _, end in segments if end < len(track.sent_at) * WIRE_FRAME]
    for i, speech_end in enumerate(ends):
        next_end = ends[i + 1] if i + 1 < len(ends) else float("inf")
        heard = [a for a in answers if speech_end < a[0] < next_end]
        report = TurnReport(
            turn=i + 1,
            speech_end_s=round(segments[i][1] / WIRE_RATE, 3),
            voice_to_voice_ms=None,
            answer_duration_ms=None,
        )
        agents_turn = agent_turn(events, speech_end, next_end)
        if agents_turn is not None:
            report.user_text = users.get(agents_turn)
            report.agent_text = agents.get(agents_turn)
        if heard:
            start = heard[0][0]
            report.voice_to_voice_ms = round((start - speech_end) * 1000, 1)
            report.answer_duration_ms = round((heard[-1][1] - start) * 1000, 1)
            if recorder is not None:
                report.continuity = answer_continuity(
                    recorder.frames, recorder.pts, start, heard[-1][1], rebuilt_pts or set()
                )
            near = [e for t, e in latency_events if abs(t - start) < 0.5]
            if near:
                report.server = near[0].get("stages", {})
                report.ahead = near[0].get("ahead")
                if same_host and "clock" in near[0]:
                    clock = near[0]["clock"]
                    report.path = {
                        "speech_end_to_vad_ms": round((clock["speech_end"] - speech_end) * 1000, 1),
                        "rtp_to_ear_ms": round((start - clock["first_rtp"]) * 1000, 1),
                    }
        reports.append(report)
    return reports


async def call(
    url: str,
    pcm48: np.ndarray,
    speaker: str | None = None,
    emotion: str | None = None,
    endpoint: str = "offer",
    jitter: JitterMode = "adaptive",
    turn_gap_ms: float = 700,
    settle_s: float = 1.5,
    max_wait_s: float = 30.0,
    ice_servers: list[RTCIceServer] | None = None,
    relay_only: bool = False,
    token: str | None = None,
    link: LinkProfile | None = None,
    opus_fec: bool = True,
    voice: bytes | str | None = None,
) -> tuple[CallReport, np.ndarray]:
    """Call the agent at `url` with the given audio; return the report and all audio heard.

    `ice_servers` None keeps aiortc's default; `relay_only` gathers relay candidates only
    (needs a TURN server in `ice_servers`); `token`: the server's API token, sent as
    `Authorization: Bearer`. `link` impairs the path both ways (agent/caller/impairment.py);
    `opus_fec` makes the caller send speech-tuned Opus with in-band FEC, as a browser does
    when the answer asks for it. `voice`: an audio clip (its file's bytes) whose voice the
    answers take, or CALLER_VOICE for the caller's own (JSON offers only). CallRefused when
    the agent refuses the call."""
    if relay_only and ice_servers is None:
        raise ValueError("relay_only needs ice_servers with a TURN server")
    if voice is not None and endpoint != "offer":
        raise ValueError("a voice is sent with a JSON offer, not over WHIP")
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers, iceTransportPolicy=policy))
    track = FileTrack(pcm48)
    recorder = Recorder()
    events: list[tuple[float, dict[str, Any]]] = []
    channel = pc.createDataChannel(EVENTS_LABEL)
    channel.on("message", lambda m: events.append((time.monotonic(), json.loads(m))))
    pc.addTrack(track)
    receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "audio")
    jitter_buffer = install_receive_buffer(receiver, jitter)
    pc.on("track", lambda t: recorder.start(t) if t.kind == "audio" else None)
    await pc.setLocalDescription(await pc.createOffer())
    impaired = None
    if link is not None and not link.clean:
        impaired = ImpairedLink(link)
        impaired.attach(pc)
    ice_pair = None
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with aiohttp.ClientSession(headers=headers) as http:
        session_id, hang_up_url = "", None
        try:
            session_id, hang_up_url = await _signal(
                http, url, pc, endpoint, speaker, emotion, voice
            )
            sender = next(s for s in pc.getSenders() if s.track is track)
            if opus_fec and opus_negotiated(pc, sender):
                use_speech_encoder(sender)
            await _converse(track, recorder, events, settle_s, max_wait_s)
            ice_pair = selected_pair(pc)
        finally:
            await recorder.stop()
            await close_peer(pc)
            if impaired is not None:
                impaired.close()
            if hang_up_url is not None:
                async with http.delete(hang_up_url):
                    pass
    rebuilt = concealment(receiver)
    report = CallReport(
        session=session_id,
        turns=match_turns(
            track,
            speech_segments(pcm48, turn_gap_ms),
            answer_onsets(recorder.frames),
            events,
            same_host=_is_loopback(url),
            recorder=recorder,
            rebuilt_pts=set(rebuilt.rebuilt_pts) if rebuilt is not None else None,
        ),
        events=[e for _, e in events],
        client_jitter_buffer_ms=jitter_buffer.stats.median_ms(last=10_000),
        ice_pair=ice_pair,
    )
    if rebuilt is not None:
        report.client_concealment = {
            "plc": rebuilt.concealed,
            "fec": rebuilt.recovered,
            "unconcealed_ms": round(rebuilt.unconcealed_ms, 1),
        }
    if impaired is not None:
        report.link = {
            **asdict(link),
            "uplink": asdict(impaired.uplink.stats),
            "downlink": asdict(impaired.downlink.stats),
        }
    return report, recorder.audio()


async def fetch_ice_servers(url: str, token: str | None = None) -> list[RTCIceServer]:
    """The agent's `/ice-config` (STUN, and TURN with fresh credentials) as aiortc servers;
    `token`: the server's API token, when it has one."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{url.rstrip('/')}/ice-config") as resp,
    ):
        resp.raise_for_status()
        body = await resp.json()
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in body.get("iceServers", [])
    ]


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


async def _signal(
    http: aiohttp.ClientSession,
    url: str,
    pc: RTCPeerConnection,
    endpoint: str,
    speaker: str | None,
    emotion: str | None,
    voice: bytes | str | None = None,
) -> tuple[str, str]:
    """Send the offer, apply the answer; return the session id and the hang-up URL."""
    base = url.rstrip("/")
    choices = {k: v for k, v in (("speaker", speaker), ("emotion", emotion)) if v}
    if voice is not None:
        choices["voice"] = voice if isinstance(voice, str) else base64.b64encode(voice).decode()
    offer = pc.localDescription
    if endpoint == "whip":
        async with http.post(
            f"{base}/v1/calls",
            data=offer.sdp,
            params=choices,
            headers={"Content-Type": "application/sdp"},
        ) as resp:
            if resp.status != 201:
                raise CallRefused(resp.status, await _error_body(resp))
            answer = RTCSessionDescription(sdp=await resp.text(), type="answer")
            location = resp.headers["Location"]
        session_id = location.rstrip("/").split("/")[-2]  # .../calls/{id}/{secret}
        hang_up = f"{base}{location}" if location.startswith("/") else location
    else:
        async with http.post(
            f"{base}/offer", json={"sdp": offer.sdp, "type": offer.type, **choices}
        ) as resp:
            if resp.status != 200:
                raise CallRefused(resp.status, await _error_body(resp))
            body = await resp.json()
        answer = RTCSessionDescription(sdp=body["sdp"], type=body["type"])
        session_id = body["session_id"]
        hang_up = f"{base}{body['resource']}"
    await pc.setRemoteDescription(answer)
    return session_id, hang_up


async def _error_body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """A refusal's JSON body (the agent's are JSON; anything else becomes its text)."""
    text = await resp.text()
    try:
        body = json.loads(text)
    except ValueError:
        return {"error": "not_json", "message": text[:200]}
    return body if isinstance(body, dict) else {"error": "not_json", "message": text[:200]}


async def _converse(
    track: FileTrack,
    recorder: Recorder,
    events: list[tuple[float, dict[str, Any]]],
    settle_s: float,
    max_wait_s: float,
) -> None:
    """Wait until the file has been sent and the agent has finished answering every turn it
    heard (a slow agent's answer may start long after the file ended: up to max_wait_s)."""
    await track.done.wait()
    ended = time.monotonic()
    while time.monotonic() < ended + max_wait_s:
        await asyncio.sleep(0.1)
        kinds = [e.get("type") for _, e in events]
        answering = kinds.count("speech_started") > kinds.count("response_done")
        quiet_s = time.monotonic() - max(recorder.last_loud, ended)
        if not answering and quiet_s >= settle_s:
            return
