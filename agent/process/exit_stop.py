"""Model threads that must end before the interpreter does: a daemon thread still inside
torch when Python exits aborts the process ("terminate called without an active exception",
exit status 134). Each thread registers here and is stopped at exit."""

from __future__ import annotations

import atexit
import weakref
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


_LIVE: weakref.WeakSet = weakref.WeakSet()


def stop_at_exit(thread_owner: Stoppable) -> None:
    """Stop `thread_owner` when the interpreter exits, if it is still alive then."""
    _LIVE.add(thread_owner)


@atexit.register
def _stop_all() -> None:
    for owner in list(_LIVE):
        owner.stop()
