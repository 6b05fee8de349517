"""The answer track: what the agent says, as 20 ms frames paced by the wall clock.

The track runs at one sample rate (the session's: the models' 16 kHz, which the speech Opus
encoder takes as it is, aiortc_fixes/opus_send.py; 48 kHz by default). Answers arrive as
mono float chunks at that rate between `AnswerStart` and `AnswerEnd` markers in a
bounded queue. `recv()` never waits for them: when nothing is queued it sends silence, so the
stream stays continuous. The first frame of an answer does not wait for the next 20 ms tick:
while the track is idle, the wait for a silent frame's slot ends as soon as an answer's first
frame is queued, that frame leaves at once with the next timestamp, and the slots after it
are counted from it (the timestamps stay contiguous; the receiver sees one frame up to 20 ms
early, which its jitter buffer absorbs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from agent.wire import WIRE_RATE
from models.speech.audio import frame_from_pcm

FRAME_S = 0.02
MAX_LATE_S = 0.06
"""A frame asked for later than this behind its slot means the loop stalled: resynchronise."""


@dataclass(frozen=True)
class AnswerStart:
    turn: int


@dataclass(frozen=True)
class AnswerEnd:
    turn: int


QueueItem = AnswerStart | AnswerEnd | np.ndarray


class AnswerTrack(MediaStreamTrack):
    """A MediaStreamTrack (kind audio) playing queued answers, silence in between.

    on_started(turn, pts, t) fires when the first audio frame of an answer leaves recv() (pts
    in samples at the track's rate); on_done(turn) when its last frame has. `underruns`
    counts silent frames sent inside an answer because generation fell behind.
    """

    kind = "audio"

    def __init__(
        self,
        capacity_s: float,
        on_started: Callable[[int, int, float], None] | None = None,
        on_done: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rate: int = WIRE_RATE,
    ) -> None:
        super().__init__()
        self.rate = rate
        self._frame = round(rate * FRAME_S)
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue(
            maxsize=max(4, int(capacity_s / FRAME_S))
        )
        self._on_started = on_started
        self._on_done = on_done
        self._pending = np.zeros(0, dtype=np.float32)
        self._start: float | None = None
        self._pts = 0
        self._turn: int | None = None
        self._turn_started = False
        self._clock = clock
        self._first_queued = False
        """An answer's first frame is queued and has not left yet."""
        self._waiter: asyncio.Future[None] | None = None
        """A silent frame's wait for its slot, ended early when an answer's first frame is
        queued."""
        self.underruns = 0
        self.resyncs = 0
        self.early_starts = 0
        """Answers whose first frame left before the slot it would have waited for."""

    # producer side ----------------------------------------------------------------------

    async def begin(self, turn: int) -> None:
        """Mark the start of an answer."""
        await self._queue.put(AnswerStart(turn))
        self._first_queued = False

    async def play(self, pcm: np.ndarray) -> None:
        """Queue answer audio (mono float at the track's rate); waits while the queue is full."""
        self._pending = np.concatenate([self._pending, pcm.astype(np.float32)])
        while len(self._pending) >= self._frame:
            await self._queue.put(self._pending[: self._frame])
            self._pending = self._pending[self._frame :]
            if not self._turn_started:
                self._first_queued = True
                _wake(self._waiter)

    async def end(self, turn: int) -> None:
        """Mark the end of an answer; its last partial frame is padded with silence."""
        if len(self._pending):
            tail = np.zeros(self._frame, dtype=np.float32)
            tail[: len(self._pending)] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            await self._queue.put(tail)
        await self._queue.put(AnswerEnd(turn))

    def clear(self) -> None:
        """Drop everything queued (barge-in): the next frame is silence."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._pending = np.zeros(0, dtype=np.float32)
        self._turn = None
        self._first_queued = False

    @property
    def playing_turn(self) -> int | None:
        """The turn whose answer is on the wire now, if any."""
        return self._turn

    @property
    def speaking(self) -> bool:
        """True while an answer is queued or playing."""
        return self._turn is not None or not self._queue.empty()

    # consumer side (aiortc's RTCRtpSender) ----------------------------------------------

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_for_slot()
        pcm = self._next_pcm()
        return frame_from_pcm(pcm, self.rate, pts=self._pts)

    async def _wait_for_slot(self) -> None:
        """Sleep until this frame's slot on the wall clock; after a stall, skip the slots that
        passed (the timestamps jump, the receiver conceals) instead of bursting to catch up.
        While idle, an answer's first frame ends the wait: it takes this slot now, and the
        clock restarts from it."""
        now = self._clock()
        if self._start is None:
            self._start = now
            self._pts = 0
            return
        self._pts += self._frame
        due = self._start + self._pts / self.rate
        if now - due > MAX_LATE_S:
            self.resyncs += 1
            self._pts = int((now - self._start) / FRAME_S) * self._frame
            return
        while due > now:
            if self._turn is None and self._first_queued:
                self._start = now - self._pts / self.rate
                self.early_starts += 1
                return
            await self._sleep_until_woken(due - now)
            now = self._clock()

    async def _sleep_until_woken(self, seconds: float) -> None:
        """Sleep `seconds`, or less if `play` queues an answer's first frame meanwhile (a
        future and a timer, as asyncio.sleep: no task per frame)."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _wake, self._waiter)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _next_pcm(self) -> np.ndarray:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, AnswerStart):
                self._turn, self._turn_started = item.turn, False
            elif isinstance(item, AnswerEnd):
                self._turn = None
                if self._on_done:
                    self._on_done(item.turn)
            else:
                if self._turn is not None and not self._turn_started:
                    self._turn_started = True
                    self._first_queued = False
                    if self._on_started:
                        self._on_started(self._turn, self._pts, time.monotonic())
                return item
        if self._turn is not None and self._turn_started:
            self.underruns += 1
        return np.zeros(self._frame, dtype=np.float32)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
