"""The process's listening thread: the windows of every call, heard as batches.

A call's `Session._listen` hands each 16 kHz window here and awaits what it heard (VAD
probability, the responder's end-of-turn probability, the words so far). One thread takes
every window waiting at that moment, from all calls, and runs them together: each call's
Silero VAD, then `Responder.hear_batch` (the S2S responder runs the codec, the encoder and
the memory projection of all those calls as one batch), then each call's captions. While a
batch runs, the next calls' windows gather, so batches grow with load and a lone call waits
for nobody. A call has at most one window here at a time (it awaits each), so the queue is
bounded by the number of calls.

Each window's lag, from its arrival to the end of its batch, is how far listening is behind
real time; it feeds /metrics and, past `behind_ms`, the call's `behind` event.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.process.metrics import AgentMetrics
from agent.responders import Responder, ResponderSession
from models.speech.vad import SileroVAD

log = logging.getLogger(__name__)
LISTEN_THREAD_NAME = "batched-listening"


@dataclass(frozen=True)
class Heard:
    """What the listening thread made of one window."""

    speech_prob: float
    eot_prob: float | None
    """The responder's end-of-turn probability (None without a head)."""
    words: str | None
    """The user's words of the turn so far (asked only while the user speaks)."""
    lag_ms: float
    """From the window's arrival to the end of the batch that heard it."""


@dataclass
class _Window:
    session: ResponderSession
    vad: SileroVAD
    pcm: np.ndarray
    start: int
    in_speech: bool
    arrived: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


class ListeningThread:
    """Hears the windows of all calls of one responder in batches, on one thread."""

    def __init__(self, responder: Responder, metrics: AgentMetrics) -> None:
        self._responder = responder
        self._metrics = metrics
        self._waiting: list[_Window | Callable[[], None]] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=LISTEN_THREAD_NAME, daemon=True)
        self._thread.start()

    async def hear(
        self,
        session: ResponderSession,
        vad: SileroVAD,
        pcm: np.ndarray,
        start: int,
        in_speech: bool,
        arrived: float,
    ) -> Heard:
        """Hear one window of a call (`arrived`: when its last sample came in, monotonic)."""
        loop = asyncio.get_running_loop()
        window = _Window(session, vad, pcm, start, in_speech, arrived, loop, loop.create_future())
        self._put(window)
        return await window.future

    def after(self, job: Callable[[], None]) -> None:
        """Run `job` on the listening thread after the windows already waiting (a call's
        `close`: never while one of its windows is being heard); here and now once the
        thread has stopped."""
        with self._wake:
            if not self._stopped:
                self._waiting.append(job)
                self._wake.notify()
                return
        job()

    def _put(self, item: _Window | Callable[[], None]) -> None:
        with self._wake:
            if self._stopped:
                raise RuntimeError("the listening thread has stopped")
            self._waiting.append(item)
            self._wake.notify()

    def stop(self) -> None:
        """Let the thread finish what is waiting, then end."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._stopped:
                    self._wake.wait()
                if not self._waiting:
                    return
                items, self._waiting = self._waiting, []
            windows: list[_Window] = []
            for item in items:
                if isinstance(item, _Window):
                    windows.append(item)
                    continue
                self._hear(windows)  # what was queued before the job first
                windows = []
                try:
                    item()
                except Exception:
                    log.exception("listening job failed")
            self._hear(windows)

    def _hear(self, windows: list[_Window]) -> None:
        if not windows:
            return
        try:
            heard = self._batch(windows)
        except Exception:  # one call's failure must not take the others with it
            log.warning("batched listening failed; hearing the calls one by one", exc_info=True)
            for window in windows:
                try:
                    self._deliver(window, self._batch([window])[0])
                except Exception as err:
                    window.loop.call_soon_threadsafe(_fail, window.future, err)
            return
        for window, result in zip(windows, heard, strict=True):
            self._deliver(window, result)

    def _batch(self, windows: list[_Window]) -> list[Heard]:
        probs = [w.vad.prob(w.pcm) for w in windows]
        eots = self._responder.hear_batch(
            [w.session for w in windows], [w.pcm for w in windows], [w.start for w in windows]
        )
        words = [w.session.heard() if w.in_speech else None for w in windows]
        done = time.monotonic()
        lags = [(done - w.arrived) * 1000.0 for w in windows]
        self._metrics.observe_listening(len(windows), lags)
        return [
            Heard(p, e, t, round(lag, 1))
            for p, e, t, lag in zip(probs, eots, words, lags, strict=True)
        ]

    @staticmethod
    def _deliver(window: _Window, heard: Heard) -> None:
        window.loop.call_soon_threadsafe(_resolve, window.future, heard)


def _resolve(future: asyncio.Future, heard: Heard) -> None:
    if not future.done():  # the call may have been cancelled meanwhile
        future.set_result(heard)


def _fail(future: asyncio.Future, err: BaseException) -> None:
    if not future.done():
        future.set_exception(err)
