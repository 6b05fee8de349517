"""Predictive pre-generation: a call's answer started in a pause, before the end of turn.

Once the silence inside a turn reaches `AgentConfig.answer_ahead_ms`, the session starts the
answer to the turn as it stands (`AnswerAheadRun`): when the responder has heard the turn and
its look-ahead, the call's answering worker asks it for `respond_ahead` and reads the first
chunk; the responder keeps only its first chunks ready. At the end of turn the session takes
the run: if the turn ended where the run assumed and the responder commits it, its chunks
are the answer (`Prefixed`: the chunk read ahead, then the rest) and the first one is played
at once; otherwise, or when speech comes back first, the run is dropped and its answer closed,
leaving the responder as if it had never started it. A call has at most one run at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from agent.responders import AnswerAhead, ResponderSession, UserTurn

log = logging.getLogger(__name__)

Prepared = tuple[AnswerAhead, list[np.ndarray]]
"""An answer started ahead and the chunks already read from it."""


def prepare(session: ResponderSession, turn: UserTurn) -> Prepared | None:
    """Answering worker: the answer ahead to `turn` and its first chunk (None: the responder
    does not answer ahead)."""
    answer = session.respond_ahead(turn)
    if answer is None:
        return None
    try:
        first = next(answer.chunks, None)
    except BaseException:
        close_chunks(answer.chunks)
        raise
    return answer, [] if first is None else [first]


def close_chunks(chunks: Iterator[np.ndarray]) -> None:
    """Stop an answer's chunks (a generator's `close`; a plain iterator has nothing to stop)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def close_on(worker: ThreadPoolExecutor, chunks: Iterator[np.ndarray]) -> None:
    """Close `chunks` on the call's answering worker, after what it is doing with them (at
    once, here, if the worker has been shut down with the call)."""
    try:
        worker.submit(close_chunks, chunks)
    except RuntimeError:
        close_chunks(chunks)


class AnswerAheadRun:
    """One answer started ahead for `turn` (a task on the event loop, its compute on the
    call's answering worker)."""

    def __init__(
        self,
        turn: UserTurn,
        session: ResponderSession,
        worker: ThreadPoolExecutor,
        heard: Callable[[UserTurn], Awaitable[None]],
        name: str,
    ) -> None:
        """heard(turn) returns once the responder has heard the turn and its look-ahead."""
        self.turn = turn
        self._worker = worker
        self.task = asyncio.create_task(self._prepare(session, heard), name=name)

    async def _prepare(
        self, session: ResponderSession, heard: Callable[[UserTurn], Awaitable[None]]
    ) -> Prepared | None:
        await heard(self.turn)
        job = self._worker.submit(prepare, session, self.turn)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            job.add_done_callback(_close_prepared)  # a job already running still finishes
            raise

    def matches(self, turn: UserTurn) -> bool:
        """Whether the turn ended where this run assumed it would."""
        return self.turn == turn

    async def take(self) -> Prepared | None:
        """The prepared answer, now the caller's to commit or close (None: there is none)."""
        try:
            return await self.task
        except Exception:
            log.warning("an answer ahead failed; answering at the end of turn", exc_info=True)
            return None

    def drop(self) -> None:
        """Throw the answer away: closed now if prepared, else as soon as it is."""
        if not self.task.done():
            self.task.cancel()  # _prepare closes what its worker job prepares
            return
        if self.task.cancelled() or self.task.exception() is not None:
            return
        prepared = self.task.result()
        if prepared is not None:
            close_on(self._worker, prepared[0].chunks)


def _close_prepared(job: Future) -> None:
    if job.cancelled() or job.exception() is not None:
        return
    prepared = job.result()
    if prepared is not None:
        close_chunks(prepared[0].chunks)


class Prefixed(Iterator[np.ndarray]):
    """The chunks already read from an answer, then the rest of it; `close` stops it."""

    def __init__(self, ready: list[np.ndarray], rest: Iterator[np.ndarray]) -> None:
        self._ready = list(ready)
        self._rest = rest

    def __next__(self) -> np.ndarray:
        if self._ready:
            return self._ready.pop(0)
        return next(self._rest)

    def close(self) -> None:
        close_chunks(self._rest)
