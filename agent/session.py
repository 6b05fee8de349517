"""One call: a peer connection, the user's audio going in, the agent's answer coming out.

The code below reads in the order a frame travels:

  remote track (Opus decoded by aiortc, 48 kHz)
    -> _listen: resample to 16 kHz mono, cut 512-sample windows
    -> ListeningThread.submit (the process's listening thread): at once the Silero VAD
       probability, with the responder's latest end-of-turn probability (if it has a head)
       and, while the user speaks, the words heard so far -> _on_heard  -> user captions;
       every batch_ms the responder hears the deferred windows of all calls as one batch
       (its lag behind real time past AgentConfig.behind_ms      -> `behind` event)
    -> TurnDetector: speech started / end of turn        -> events, barge-in
       (in a pause inside the turn: the answer to the turn so far started ahead,
       agent/ahead.py; dropped if speech comes back)             -> `answer_ahead` events
    -> _answer (answering worker thread): the answer started ahead if the turn ended where it
       assumed, else responder.respond(turn): chunks, 16 kHz, and
       responder.said() after each                               -> agent captions
    -> AnswerTrack queue (16 kHz) -> recv() every 20 ms -> Opus RTP to the peer (the speech
       encoder takes 16 kHz as it is; aiortc's own resamples to 48 kHz)

A zero-shot voice given with the offer is in `CallOptions.voice` from the start (`voice_ready`
when the events channel opens); with `CallOptions.caller_voice` the call gathers the caller's
voiced windows (`CallerSpeech`), embeds them on the voice thread once there are enough, and
hands the embedding to the responder for the answers after (`voice_ready` or `voice_failed`).

Model compute runs only on the process's listening and answering threads (and, for a
responder that does not batch, in the call's answering worker); the event loop only moves
buffers. Every task, the answering thread and the peer connection end with
the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from agent.ahead import AnswerAheadRun, Prefixed, close_on
from agent.aiortc_fixes.icefix import install as install_ice_fix
from agent.aiortc_fixes.opus_send import offer_fec, opus_negotiated, use_speech_encoder
from agent.aiortc_fixes.peerclose import close_peer
from agent.aiortc_fixes.receive import concealment, install_receive_buffer
from agent.aiortc_fixes.rtp_probe import FirstPacketProbe
from agent.captions import Captions
from agent.config import AgentConfig
from agent.events import EventChannel, TurnLatency
from agent.listening import CallListener, Heard, ListeningThread
from agent.outbound import AnswerTrack
from agent.process.metrics import ANSWER_THREAD, AgentMetrics
from agent.responders import CallOptions, Responder, UserTurn
from agent.voice import CallerSpeech, TakenVoice, VoiceEncoder
from agent.wire import WIRE_RATE, StreamClock
from models.speech.audio import MODEL_RATE, Resampler, Windower
from models.speech.turns import TurnDetector, TurnEvent, TurnEventKind
from models.speech.vad import WINDOW, SileroVAD

install_ice_fix()

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCEL_WAIT_S = 2.0
"""How long close() waits for the call's cancelled tasks before going on without them."""
PC_CLOSE_TIMEOUT_S = 5.0
"""How long close() waits for aiortc to close the peer connection before freeing the rest."""


class Session:
    """One WebRTC call between a peer and a responder."""

    def __init__(
        self,
        session_id: str,
        options: CallOptions,
        responder: Responder,
        config: AgentConfig,
        metrics: AgentMetrics,
        listening: ListeningThread,
        rtc_config: RTCConfiguration | None = None,
        on_closed: Callable[[Session], None] | None = None,
        voices: VoiceEncoder | None = None,
        clip_voice: TakenVoice | None = None,
    ) -> None:
        """`voices` embeds the caller's speech (needed with `options.caller_voice`);
        `clip_voice` is the voice of the offer's clip (its embedding is `options.voice`)."""
        if options.caller_voice and voices is None:
            raise ValueError("answering in the caller's voice needs a speaker encoder")
        self.id = session_id
        self.options = options
        self.config = config
        self.metrics = metrics
        self.pc = RTCPeerConnection(rtc_config)
        self.events = EventChannel()
        self.answer_track = AnswerTrack(
            config.answer_buffer_s,
            on_started=self._answer_started,
            on_done=self._answer_done,
            rate=MODEL_RATE,  # the answers' own rate: no resampling on the way out
        )
        self._responder = responder.open(options)
        self._responder_lookahead = responder.lookahead_samples
        self._on_closed = on_closed
        self._listening = listening
        self._listener: CallListener | None = None
        self._behind = False
        """Whether the call's listening is behind real time (reported once per episode)."""
        self._answerer = ThreadPoolExecutor(
            1, thread_name_prefix=f"{ANSWER_THREAD}{session_id[:8]}"
        )
        self._vad: SileroVAD | None = None
        self._turns = TurnDetector(config.turns)
        self._probe = FirstPacketProbe()
        self._jitter: Any = None
        self._receiver: RTCRtpReceiver | None = None
        self._latency: dict[int, TurnLatency] = {}
        self._ahead: AnswerAheadRun | None = None
        """The answer started ahead in the pause in progress, if any."""
        self._ahead_tried: tuple[int, int] | None = None
        """(turn, end sample) of the last pause an answer was started ahead for."""
        self._user_captions = Captions("user")
        self._agent_captions = Captions("agent")
        self._voices = voices
        self._clip_voice = clip_voice
        self._caller_speech = CallerSpeech() if options.caller_voice else None
        """Gathers the caller's voiced windows until their voice can be taken."""
        self._voice_task: asyncio.Task | None = None
        self._listen_task: asyncio.Task | None = None
        self._answer_task: asyncio.Task | None = None
        self._answer_tasks: set[asyncio.Task] = set()
        """Every answer task not yet done: with barge-in off, answers wait for the ones
        before them, and the call's end must stop them all."""
        self._establish_task: asyncio.Task | None = None
        self.connected = asyncio.Event()
        """Set once ICE and DTLS are done (connectionState 'connected')."""
        self._answering_turn = 0
        """The turn whose answer is being generated (or was last)."""
        self._closing = False
        self._closer: asyncio.Task | None = None
        """The close() task started by the call itself (kept: the loop holds tasks weakly)."""
        self._counted = False
        self.closed = asyncio.Event()
        self.close_reason = ""

    # setup ------------------------------------------------------------------------------

    async def accept(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer the peer's offer; the call runs from here until close()."""
        self._vad = await asyncio.get_running_loop().run_in_executor(None, SileroVAD)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("track", self._on_track)
        await self.pc.setRemoteDescription(offer)
        if self._listen_task is None:
            raise ValueError("the offer has no audio the agent can receive")
        self.pc.addTrack(self.answer_track)
        if self.config.opus_fec:
            offer_fec(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sender = next(s for s in self.pc.getSenders() if s.track is self.answer_track)
        if self.config.opus_fec and opus_negotiated(self.pc, sender):
            use_speech_encoder(sender)
        self._probe.attach(sender.transport)
        self._establish_task = asyncio.create_task(
            self._await_connection(), name=f"establish-{self.id}"
        )
        self.metrics.sessions.inc()
        self.metrics.active_sessions.inc()
        self._counted = True
        return self.pc.localDescription

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if not self.events.attach(channel):
            log.info("session %s: closing unexpected data channel %r", self.id, channel.label)
            channel.close()  # the agent speaks on one `events` channel and listens on none
            return
        channel.on("open", self._say_hello)
        if channel.readyState == "open":
            self._say_hello()

    def _say_hello(self) -> None:
        voice = "clip" if self._clip_voice else "caller" if self.options.caller_voice else None
        self.events.send(
            "session",
            session_id=self.id,
            speaker=self.options.speaker,
            emotion=self.options.emotion,
            voice=voice,
        )
        if self._clip_voice is not None:
            self._voice_ready(self._clip_voice)

    def _voice_ready(self, voice: TakenVoice) -> None:
        self.events.send("voice_ready", source=voice.source, ms=voice.ms)

    def _on_connection_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()
        if self.pc.connectionState in ("failed", "closed"):
            self._close_soon(f"connection {self.pc.connectionState}")

    async def _await_connection(self) -> None:
        """End a call whose peer does not complete ICE and DTLS in time: its slot goes back."""
        timeout = self.config.establish_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
        except TimeoutError:
            self.metrics.rejected.labels(reason="not_connected").inc()
            self._close_soon(f"not connected within {timeout:g} s")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._listen_task is not None:
            return
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._jitter = install_receive_buffer(receiver, self.config.jitter)
        self._receiver = receiver
        self._listen_task = asyncio.create_task(self._listen(track), name=f"listen-{self.id}")

    # inbound: frames -> windows -> VAD -> turns -------------------------------------------

    async def _listen(self, track: MediaStreamTrack) -> None:
        to_model_rate = Resampler(MODEL_RATE)
        windows = Windower(WINDOW)
        clock = StreamClock()
        assert self._vad is not None
        listener = CallListener(
            self._responder,
            self._vad,
            self._on_heard,
            self._check_lag,
            asyncio.get_running_loop(),
        )
        self._listener = listener
        timeout = self.config.connect_timeout_s
        reason = "peer stopped sending"
        try:
            while True:
                async with asyncio.timeout(timeout):
                    frame = await track.recv()
                timeout = self.config.peer_timeout_s
                arrived = time.monotonic()
                due = clock.due(frame, arrived)
                for window in windows.push(to_model_rate.frame(frame)):
                    start = windows.samples_out - WINDOW
                    self._listening.submit(
                        listener, window, start, self._turns.in_speech, arrived, due
                    )
        except MediaStreamError:
            reason = "remote track ended"
        except TimeoutError:
            reason = f"no audio for {timeout:g} s"
        finally:
            self._close_soon(reason)

    def _on_heard(self, heard: Heard) -> None:
        """A window heard (VAD at once; the responder's figures as of its latest batch), in
        the order the windows came."""
        event = self._turns.update(heard.speech_prob, heard.arrived, heard.eot_prob)
        if event is not None:
            self._on_turn_event(event)
        self._answer_ahead()
        if self._caller_speech is not None:
            self._gather_voice(heard)
        if heard.words is not None:
            self._caption_user(heard.words, event)

    def _gather_voice(self, heard: Heard) -> None:
        """Keep the caller's voiced window; with enough of them, take their voice."""
        assert self._caller_speech is not None
        voiced = heard.speech_prob >= self.config.turns.threshold
        speech = self._caller_speech.add(heard.pcm, voiced)
        if speech is not None:
            self._caller_speech = None
            self._voice_task = asyncio.create_task(
                self._take_caller_voice(speech), name=f"voice-{self.id}"
            )

    async def _take_caller_voice(self, speech: np.ndarray) -> None:
        """Embed the caller's speech on the voice thread; the answers after use it."""
        voices = self._voices
        assert voices is not None
        loop = asyncio.get_running_loop()
        try:
            voice = await loop.run_in_executor(voices.executor, voices.from_speech, speech)
            self._responder.use_voice(voice.embedding)
        except Exception:
            log.warning("session %s: caller's voice not taken", self.id, exc_info=True)
            self.events.send("voice_failed", source="caller", reason="embedding_failed")
            return
        log.info("session %s: caller's voice taken in %.1f ms", self.id, voice.ms)
        self.metrics.voice_ms.labels(source=voice.source).observe(voice.ms)
        self._voice_ready(voice)

    def _check_lag(self, lag_ms: float) -> None:
        """Tell the caller once when listening falls behind real time (and again only after
        it has caught up to half that lag)."""
        limit = self.config.behind_ms
        if lag_ms > limit and not self._behind:
            self._behind = True
            self.metrics.calls_behind.inc()
            self.events.send("behind", lag_ms=lag_ms)
        elif lag_ms < limit / 2:
            self._behind = False

    def _caption_user(self, text: str, event: TurnEvent | None) -> None:
        """The user's words heard with the latest window: final at the end of the turn."""
        if event is not None and event.kind is TurnEventKind.END_OF_TURN:
            self._caption(self._user_captions.final(event.turn, text))
        else:
            self._caption(self._user_captions.partial(self._turns.turn, text, time.monotonic()))

    def _caption(self, fields: dict[str, Any] | None) -> None:
        if fields is not None:
            self.events.send("caption", **fields)

    def _on_turn_event(self, event: TurnEvent) -> None:
        if event.kind is TurnEventKind.SPEECH_STARTED:
            if self.config.barge_in and self._agent_busy():
                self._barge_in()
            self.events.send("speech_started", turn=event.turn)
            return
        assert event.end_sample is not None and event.speech_end_time is not None
        self.events.send("speech_stopped", turn=event.turn)
        latency = TurnLatency(
            turn=event.turn,
            speech_end=event.speech_end_time,
            eot=time.monotonic(),
            jitter_buffer_ms=self._jitter.stats.median_ms() if self._jitter else None,
        )
        self._latency[event.turn] = latency
        turn = UserTurn(event.turn, event.start_sample, event.end_sample)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead.matches(turn):
            self._drop_ahead(ahead, "discarded")
            ahead = None
        self._answer_task = asyncio.create_task(
            self._answer(turn, latency, self._answer_task, ahead),
            name=f"answer-{self.id}-{turn.turn}",
        )
        self._answer_tasks.add(self._answer_task)
        self._answer_task.add_done_callback(self._answer_tasks.discard)

    def _answer_ahead(self) -> None:
        """After each window: in a long enough pause inside a turn, start the answer to the
        turn so far (once per pause, while the agent is quiet); speech coming back drops it."""
        pause = self._turns.pause()
        ahead = self._ahead
        if ahead is not None and (pause is None or pause.end_sample != ahead.turn.end_sample):
            self._ahead = None
            self._drop_ahead(ahead, "discarded")
        limit = self.config.answer_ahead_ms
        if pause is None or limit is None or pause.silence_ms < limit or self._ahead is not None:
            return
        if self._ahead_tried == (pause.turn, pause.end_sample) or self._agent_busy():
            return
        self._ahead_tried = (pause.turn, pause.end_sample)
        turn = UserTurn(pause.turn, pause.start_sample, pause.end_sample)
        self._ahead = AnswerAheadRun(
            turn,
            self._responder,
            self._answerer,
            self._turn_heard,
            name=f"ahead-{self.id}-{turn.turn}",
        )

    def _drop_ahead(self, ahead: AnswerAheadRun, outcome: str | None) -> None:
        """Throw an answer started ahead away (outcome None: the call is ending)."""
        ahead.drop()
        if outcome is not None:
            self._count_ahead(outcome, ahead.turn.turn)

    def _count_ahead(self, outcome: str, turn: int) -> None:
        self.metrics.answers_ahead.labels(outcome=outcome).inc()
        self.events.send("answer_ahead", turn=turn, outcome=outcome)

    def _agent_busy(self) -> bool:
        generating = self._answer_task is not None and not self._answer_task.done()
        return generating or self.answer_track.speaking

    def _barge_in(self) -> None:
        """The user speaks over the answer: stop generating, drop what is queued."""
        if self._answer_task is not None:
            self._answer_task.cancel()
        interrupted = self.answer_track.playing_turn or self._answering_turn
        self.answer_track.clear()
        self._latency.pop(interrupted, None)  # an answer never heard has no latency
        self.metrics.barge_ins.inc()
        self.events.send("barge_in", turn=interrupted)
        self.events.send("response_done", turn=interrupted, interrupted=True)

    # outbound: responder chunks -> 48 kHz -> answer track -------------------------------

    async def _answer(
        self,
        turn: UserTurn,
        latency: TurnLatency,
        previous: asyncio.Task | None,
        ahead: AnswerAheadRun | None = None,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # barge-in off: answers play one after another
        self._answering_turn = turn.turn
        chunks = await self._answer_chunks(turn, latency, ahead)
        captions = self._agent_captions
        try:
            await self.answer_track.begin(turn.turn)
            while True:
                chunk, said = await self._in(self._answerer, self._next_chunk, chunks)
                if chunk is None:
                    break
                if latency.first_pcm is None:
                    latency.first_pcm = time.monotonic()
                await self.answer_track.play(chunk)
                if said is not None:  # after the audio: a caption never delays it
                    self._caption(captions.partial(turn.turn, said, time.monotonic()))
            self._caption(captions.final(turn.turn, said, interrupted=False))
            await self.answer_track.end(turn.turn)
        finally:
            # stopped before the responder finished (barge-in, hang-up): the words so far
            self._caption(captions.final(turn.turn, interrupted=True))
            self._answerer.submit(chunks.close)

    async def _answer_chunks(
        self, turn: UserTurn, latency: TurnLatency, ahead: AnswerAheadRun | None
    ) -> Iterator[np.ndarray]:
        """The answer started ahead for this turn if the responder commits it, else a new one
        (once the responder has heard the whole turn)."""
        prepared = None if ahead is None else await ahead.take()
        if prepared is not None:
            answer, ready = prepared
            try:
                used = await self._in(self._answerer, answer.commit)
            except BaseException:
                close_on(self._answerer, answer.chunks)
                raise
            self._count_ahead("used" if used else "stale", turn.turn)
            if used:
                latency.ahead = True
                return Prefixed(ready, answer.chunks)
            close_on(self._answerer, answer.chunks)
        await self._turn_heard(turn)
        return await self._in(self._answerer, self._responder.respond, turn)

    async def _turn_heard(self, turn: UserTurn) -> None:
        """Return once the responder has heard the whole turn (and its look-ahead past it)."""
        needed = turn.end_sample + self._responder_lookahead
        if self._listener is None or self._listener.heard_until < needed:
            await self._listening.flush()

    def _next_chunk(self, chunks: Iterator[np.ndarray]) -> tuple[np.ndarray | None, str | None]:
        """Answering worker: the answer's next chunk (None once it is over) and the words the
        responder has said so far (None without text)."""
        return next(chunks, None), self._responder.said()

    def _answer_started(self, turn: int, pts: int, at: float) -> None:
        latency = self._latency.get(turn)
        if latency is None:
            return
        latency.first_frame = at
        self.events.send("response_started", turn=turn)
        rtp_pts = pts * WIRE_RATE // self.answer_track.rate  # Opus RTP runs at 48 kHz
        self._probe.when_sent(rtp_pts, lambda sent: self._first_packet_sent(latency, sent))

    def _first_packet_sent(self, latency: TurnLatency, at: float) -> None:
        latency.first_rtp = at
        stages = latency.stages_ms()
        self.metrics.observe_turn(stages)
        self.events.send(
            "latency",
            turn=latency.turn,
            stages=stages,
            ahead=latency.ahead,
            clock={"speech_end": latency.speech_end, "first_rtp": latency.first_rtp},
        )
        self._latency.pop(latency.turn, None)

    def _answer_done(self, turn: int) -> None:
        self.events.send("response_done", turn=turn, interrupted=False)
        self.metrics.answer_underruns.inc(self.answer_track.underruns)
        self.answer_track.underruns = 0

    # teardown ---------------------------------------------------------------------------

    def _close_soon(self, reason: str) -> None:
        if not self._closing and self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(
                self.close(reason), name=f"close-{self.id}"
            )

    async def close(self, reason: str = "hang-up") -> None:
        """End the call and free everything it holds; safe to call more than once."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        self.close_reason = reason
        log.info("session %s closing: %s", self.id, reason)
        ahead = () if self._ahead is None else (self._ahead.task,)
        if self._ahead is not None:
            self._drop_ahead(self._ahead, None)
            self._ahead = None
        current = asyncio.current_task()
        own = (
            self._listen_task,
            self._establish_task,
            self._voice_task,
            *self._answer_tasks,
            *ahead,
        )
        tasks = [t for t in own if t and t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
            for task in stuck:
                log.warning("session %s: task %s did not stop", self.id, task.get_name())
        self.answer_track.stop()
        try:
            async with asyncio.timeout(PC_CLOSE_TIMEOUT_S):
                await close_peer(self.pc)
        except Exception:  # aiortc can fail or stall closing a half-negotiated connection
            log.warning("session %s: peer connection did not close cleanly", self.id, exc_info=True)
        finally:
            self._release()

    def _release(self) -> None:
        """Free what the call holds besides its peer connection; the call is then over."""
        try:
            self._count_concealment()
        except Exception:  # metrics must never keep a call from ending
            log.warning("session %s: concealment figures unavailable", self.id, exc_info=True)
        self._answerer.shutdown(wait=False, cancel_futures=True)
        if self._listener is not None:
            self._listener.closed = True
        self._listening.after(self._responder.close)
        if self._counted:
            self.metrics.active_sessions.dec()
        if self._on_closed is not None:
            self._on_closed(self)
        self.closed.set()

    def _count_concealment(self) -> None:
        stats = concealment(self._receiver) if self._receiver is not None else None
        if stats is not None:
            self.metrics.concealed_frames.labels(how="plc").inc(stats.concealed)
            self.metrics.concealed_frames.labels(how="fec").inc(stats.recovered)

    @staticmethod
    async def _in(worker: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(worker, fn, *args)
