"""Giving the memory a finished call freed back to the system.

glibc's malloc keeps what the threads of a finished call freed in its arenas, so the resident
size of a long-running agent climbs to a high-water mark of all the calls it has had and
stays there. Churning a parrot agent (10 calls at a time, docs/benchmarks.md "Call churn"):
without trimming (`serve --no-memory-trim`) 588 MiB after 50 calls, 1046 after 350, then
1020 to 1081 up to 1,050 calls; with a `malloc_trim` a second after calls end, between 512
and 857 MiB over the same calls, with no trend. Where the C library has no `malloc_trim`
(musl, macOS) nothing happens.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_DELAY_S = 1.0
"""Calls ending within this time share one trim (and their worker threads have exited)."""


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the C library cannot."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class MemoryTrimmer:
    """Runs release_free_memory in a worker thread TRIM_DELAY_S after a call ends, once for
    all the calls that end meanwhile."""

    def __init__(self, delay_s: float = TRIM_DELAY_S) -> None:
        self.delay_s = delay_s
        self._pending: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[bool] | None = None

    def schedule(self) -> None:
        """Ask for a trim (on the event loop)."""
        if self._pending is None and _MALLOC_TRIM is not None:
            self._pending = asyncio.get_running_loop().call_later(self.delay_s, self._start)

    def _start(self) -> None:
        self._pending = None
        if self._running is not None and not self._running.done():
            self.schedule()  # one is running: trim again after it, for the calls since
            return
        self._running = asyncio.get_running_loop().run_in_executor(None, release_free_memory)

    async def close(self) -> None:
        """Cancel a pending trim and wait for one in progress."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._running is not None:
            await self._running
