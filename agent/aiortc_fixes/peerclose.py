"""Closing an aiortc peer connection so that nothing of it keeps running.

aiortc (1.16) connects in a task that `setRemoteDescription` starts: ICE, then the DTLS
handshake, then it starts the transceivers' senders and receivers. It does not look at the
connection's closed state between those awaits, and `close()` stops the senders and receivers
before the transports. When the handshake completes while `close()` is stopping the transports
(a call dropped just as it connects), the connect task starts a sender and a receiver after
`close()` stopped them, and their RTP/RTCP tasks loop forever. Found by the churn benchmark
(2 tasks left over about once in 300 calls). When ICE is closed under it instead, the task
fails and nobody retrieves its exception ("Task exception was never retrieved").

`close_peer` closes the connection, lets its connect task finish (retrieving its exception),
then stops the senders and receivers again (a no-op for those that never started).

Replaces (aiortc 1.16): `RTCPeerConnection.close()` where the agent and the caller end a call.
Delete when aiortc's connect task checks for a closed connection before starting the senders
and receivers (tests/unit/test_peerclose.py shows the race).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import RTCPeerConnection

CONNECT_WAIT_S = 2.0
"""How long close_peer waits for the connect task to notice the closed transports."""


def connect_tasks(pc: RTCPeerConnection) -> list[asyncio.Task]:
    """The pending tasks running `pc`'s connect coroutine."""
    found = []
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        name = getattr(coro, "__qualname__", "")
        if frame is not None and name.endswith(".__connect") and frame.f_locals.get("self") is pc:
            found.append(task)
    return found


async def close_peer(pc: RTCPeerConnection) -> None:
    """`pc.close()`, and nothing of the connection runs afterwards."""
    connecting = connect_tasks(pc)
    await pc.close()
    if connecting:
        _, pending = await asyncio.wait(connecting, timeout=CONNECT_WAIT_S)
        for task in pending:
            task.cancel()
        for task in connecting:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a connect that failed on the closed transports: expected
    for transceiver in pc.getTransceivers():
        await transceiver.sender.stop()
        await transceiver.receiver.stop()
