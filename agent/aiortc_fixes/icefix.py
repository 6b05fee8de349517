"""A fix for a task leak in aioice (0.13), applied to every peer connection of the process.

`Connection.connect()` starts the consent-freshness task (RFC 7675) once the check list has
completed. When `close()` runs between the check list completing and `connect()` resuming
(a call hung up while ICE is finishing), the task starts after `close()` and is never
cancelled: it loops every 5 s over the closed connection's (empty) nominated pairs forever,
keeping the connection alive. Found by the churn test (tests/e2e/test_churn.py). The fix:
a consent task of a closing connection ends at once.

Replaces (aioice 0.13): `Connection.query_consent`, wrapped. Delete when aioice does not start
consent checks on a closing connection (run tests/e2e/test_churn.py without the patch).
"""

from __future__ import annotations

from aioice.ice import Connection

_PATCHED = "_telugu_s2s_closed_consent_fix"


def install() -> None:
    """Wrap `Connection.query_consent` once; harmless to call again."""
    if getattr(Connection.query_consent, _PATCHED, False):
        return
    original = Connection.query_consent

    async def query_consent(self: Connection) -> None:
        if getattr(self, "_closing", False):
            return  # started after close(): nothing to check, nobody to cancel it
        await original(self)

    setattr(query_consent, _PATCHED, True)
    Connection.query_consent = query_consent  # type: ignore[method-assign]
