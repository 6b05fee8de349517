"""The process's listening thread: the windows of every call, heard as batches.

A call's `Session._listen` hands each 16 kHz window here (`submit`) without waiting and gets
what was heard through a callback, in order. The thread works in two tempos:

- at once, for every window: the call's Silero VAD (cheap, and what ends a turn), answered
  with the responder's latest end-of-turn probability and, while the user speaks, the words
  heard so far;
- in batches, every `batch_ms`: the responder's own listening (`Responder.hear_batch`: the
  S2S responder runs the codec, encoder and memory projection of all calls as one batch) for
  all windows deferred since, each call's joined into one chunk (one model pass per call
  and batch, however many windows it holds). A call's answer starts once the responder
  has heard its turn (`CallListener.heard_until`, usually long before the silence that ends
  the turn is over); `flush` runs the deferred work at once when it has not.

So batches hold the calls of the whole server whatever their phase, the turn detector never
waits for them, and what waits (end-of-turn head, captions) is at most `batch_ms` older.

With a content end-of-turn head (`--eot content`, models.asr.endpoint) each call also has an
`Endpointer`: at the first window of a pause the deferred windows are heard at once, so the
head reads the recognizer's output through the end of the speech, and every window of the
pause gets the head's probability at once (one small MLP per window).

Each window's lag, from when it was due (its place in the call's stream, on the wall clock)
to the end of the batch that heard it, is how far listening is behind real time; it feeds
/metrics and, past the call's limit, its `behind` event.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from agent.process.exit_stop import stop_at_exit
from agent.process.metrics import AgentMetrics
from agent.responders import Responder, ResponderSession
from models.asr.endpoint import Endpointer, EndpointHead
from models.speech.vad import SileroVAD

log = logging.getLogger(__name__)
LISTEN_THREAD_NAME = "batched-listening"
BATCH_MS = 256.0
"""Default period of the batched listening work: eight 32 ms windows of every call in one
model pass (two calls: 0.060 of a core per call against 0.090 for four windows and 0.276
window by window, `python -m benchmarks.batching`). A turn's end waits for none of it (the
VAD hears each window at once, and an answer flushes what is left)."""


@dataclass(frozen=True)
class Heard:
    """What the listening thread made of one window, at once."""

    speech_prob: float
    eot_prob: float | None
    """The responder's latest end-of-turn probability (None without a head)."""
    words: str | None
    """The user's words of the turn so far (asked only while the user speaks)."""
    arrived: float
    """When the window's last frame came in (monotonic)."""
    pcm: np.ndarray
    """The window itself (16 kHz)."""


class CallListener:
    """One call's way into the listening thread: its responder session, its VAD, and the
    callback that takes each window's `Heard` (on the call's event loop, in order)."""

    def __init__(
        self,
        session: ResponderSession,
        vad: SileroVAD,
        on_heard: Callable[[Heard], None],
        on_lag: Callable[[float], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.session = session
        self.vad = vad
        self.on_heard = on_heard
        self.on_lag = on_lag
        """Called with the largest lag (ms) of the call's windows in each batch."""
        self.loop = loop
        self.eot_prob: float | None = None
        self.endpointer: Endpointer | None = None
        """The call's pauses as the content end-of-turn head sees them (set by the listening
        thread that has a head)."""
        self.heard_until = 0
        """Stream sample up to which the responder has heard the call (its batched work)."""
        self.closed = False


@dataclass
class _Window:
    call: CallListener
    pcm: np.ndarray
    start: int
    in_speech: bool
    arrived: float
    due: float


@dataclass
class _Job:
    run: Callable[[], None]


class ListeningThread:
    """Hears the windows of all calls of one responder, on one thread."""

    def __init__(
        self,
        responder: Responder,
        metrics: AgentMetrics,
        batch_ms: float = BATCH_MS,
        endpoint: EndpointHead | None = None,
    ) -> None:
        """`endpoint`: the content end-of-turn head whose probability each window's `Heard`
        carries (instead of the responder's)."""
        if endpoint is not None and not responder.hears_words:
            raise ValueError(
                f"the content end-of-turn head needs a recognizer; {responder.name} has none"
            )
        self._responder = responder
        self._endpoint = endpoint
        self._metrics = metrics
        self._batch_s = batch_ms / 1000.0
        self._waiting: list[_Window | _Job] = []
        self._deferred: list[_Window] = []
        """Windows whose VAD is done and whose responder work waits for the next batch."""
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=LISTEN_THREAD_NAME, daemon=True)
        self._thread.start()
        stop_at_exit(self)

    def submit(
        self,
        call: CallListener,
        pcm: np.ndarray,
        start: int,
        in_speech: bool,
        arrived: float,
        due: float,
    ) -> None:
        """Hear one window of a call (`arrived`: when its last frame came in; `due`: when it
        was due on the stream's own clock; both monotonic)."""
        if self._endpoint is not None and call.endpointer is None:
            call.endpointer = Endpointer(self._endpoint.config)
        self._put(_Window(call, pcm, start, in_speech, arrived, due))

    async def flush(self) -> None:
        """Wait until every window submitted so far has been heard in full (batched work
        included)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def resolve() -> None:
            loop.call_soon_threadsafe(_set, done)

        self._put(_Job(resolve))
        await done

    def after(self, job: Callable[[], None]) -> None:
        """Run `job` on the listening thread once the windows already submitted are heard
        (a call's `close`: never while one of its windows is being heard); here and now once
        the thread has stopped."""
        with self._wake:
            if not self._stopped:
                self._waiting.append(_Job(job))
                self._wake.notify()
                return
        job()

    def _put(self, item: _Window | _Job) -> None:
        with self._wake:
            if self._stopped:
                raise RuntimeError("the listening thread has stopped")
            self._waiting.append(item)
            self._wake.notify()

    def stop(self) -> None:
        """Hear what is waiting, then end."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._stopped and not self._batch_due():
                    self._wake.wait(timeout=self._until_batch())
                items, self._waiting = self._waiting, []
                stopping = self._stopped and not items
            for item in items:
                if isinstance(item, _Window):
                    self._at_once(item)
                else:  # a job (flush, close) comes after every window before it, in full
                    self._batch()
                    self._run_job(item)
            if self._batch_due() or stopping:
                self._batch()
            if stopping:
                return

    def _batch_due(self) -> bool:
        return bool(self._deferred) and time.monotonic() - self._deferred[0].due >= self._batch_s

    def _until_batch(self) -> float | None:
        if not self._deferred:
            return None
        return max(0.0, self._deferred[0].due + self._batch_s - time.monotonic())

    def _at_once(self, window: _Window) -> None:
        """The window's VAD, answered with what the responder has heard so far."""
        call = window.call
        if call.closed:
            return
        try:
            prob = call.vad.prob(window.pcm)
            eot = (
                call.eot_prob if call.endpointer is None else self._content_eot(call, prob, window)
            )
            words = call.session.heard() if window.in_speech else None
        except Exception:
            log.exception("listening failed for a window")
            return
        self._metrics.vad_wait_ms.observe((time.monotonic() - window.arrived) * 1000.0)
        self._deferred.append(window)
        heard = Heard(prob, eot, words, window.arrived, window.pcm)
        call.loop.call_soon_threadsafe(_deliver, call, heard)

    def _content_eot(self, call: CallListener, prob: float, window: _Window) -> float | None:
        """The content head's probability after this window (None outside a pause); a pause's
        first window first has the call's deferred windows heard, so the head reads the
        recognizer's output through the end of the speech."""
        assert call.endpointer is not None and self._endpoint is not None

        def spoken() -> Tensor | None:
            if any(w.call is call for w in self._deferred):
                self._batch()
            return call.session.recognizer_output()

        inputs = call.endpointer.features(prob, window.pcm, spoken)
        return None if inputs is None else self._endpoint.probability(inputs)

    def _batch(self) -> None:
        """The responder's listening for every deferred window, as one batch: each call's
        deferred windows joined into one chunk (in order, contiguous), heard with the other
        calls' chunks in one `hear_batch`."""
        deferred, self._deferred = self._deferred, []
        chunks: dict[int, list[_Window]] = {}
        for window in deferred:
            if not window.call.closed:
                chunks.setdefault(id(window.call), []).append(window)
        if not chunks:
            return
        self._hear_round([_joined(windows) for windows in chunks.values()])
        done = time.monotonic()
        lags = []
        for windows in chunks.values():
            lag = (done - windows[0].due) * 1000.0
            lags += [(done - w.due) * 1000.0 for w in windows]
            call = windows[0].call
            call.loop.call_soon_threadsafe(call.on_lag, round(lag, 1))
        self._metrics.observe_listening(len(chunks), lags)

    def _hear_round(self, windows: list[_Window]) -> None:
        try:
            eots = self._responder.hear_batch(
                [w.call.session for w in windows],
                [w.pcm for w in windows],
                [w.start for w in windows],
            )
        except Exception:  # one call's failure must not take the others with it
            log.warning("batched listening failed; hearing the calls one by one", exc_info=True)
            eots = []
            for window in windows:
                try:
                    eots.append(window.call.session.hear(window.pcm, window.start))
                except Exception:
                    log.exception("listening failed for a call")
                    eots.append(window.call.eot_prob)
        for window, eot in zip(windows, eots, strict=True):
            window.call.eot_prob = eot
            window.call.heard_until = window.start + len(window.pcm)

    @staticmethod
    def _run_job(job: _Job) -> None:
        try:
            job.run()
        except Exception:
            log.exception("listening job failed")


def _joined(windows: list[_Window]) -> _Window:
    """One call's consecutive windows as one (the first one's start and times)."""
    if len(windows) == 1:
        return windows[0]
    first = windows[0]
    pcm = np.concatenate([w.pcm for w in windows])
    return _Window(first.call, pcm, first.start, first.in_speech, first.arrived, first.due)


def _deliver(call: CallListener, heard: Heard) -> None:
    if not call.closed:
        call.on_heard(heard)


def _set(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
