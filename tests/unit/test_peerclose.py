"""A closed peer connection leaves no task running, whenever during connecting it is closed."""

import asyncio

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from agent.aiortc_fixes.peerclose import close_peer, connect_tasks


def tasks_of(pc: RTCPeerConnection) -> list[asyncio.Task]:
    """Pending tasks whose coroutine belongs to pc, its senders or its receivers."""
    owners = {id(pc)}
    for transceiver in pc.getTransceivers():
        owners |= {id(transceiver.sender), id(transceiver.receiver)}
    found = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if frame is not None and id(frame.f_locals.get("self")) in owners:
            found.append(task)
    return found


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """Two local peers with audio both ways, the offer/answer exchanged (connecting starts)."""
    caller, agent = RTCPeerConnection(), RTCPeerConnection()
    caller.addTrack(AudioStreamTrack())
    agent.addTrack(AudioStreamTrack())
    await caller.setLocalDescription(await caller.createOffer())
    await agent.setRemoteDescription(caller.localDescription)
    await agent.setLocalDescription(await agent.createAnswer())
    await caller.setRemoteDescription(agent.localDescription)
    return caller, agent


async def test_a_connected_peer_closes_to_nothing():
    caller, agent = await connected_pair()
    connected = asyncio.Event()

    @agent.on("connectionstatechange")
    def on_state() -> None:
        if agent.connectionState == "connected":
            connected.set()

    async with asyncio.timeout(10):
        await connected.wait()
    assert tasks_of(agent)
    await close_peer(agent)
    assert tasks_of(agent) == []
    await close_peer(caller)
    assert tasks_of(caller) == []


@pytest.mark.parametrize("delay_ms", range(0, 400, 20))
async def test_a_peer_closed_while_connecting_leaves_no_task(delay_ms):
    """Closed at 20 ms steps through ICE and the DTLS handshake on loopback: aiortc's own
    close() leaves the sender's and receiver's tasks running when the handshake completes
    during it (agent.aiortc_fixes.peerclose)."""
    caller, agent = await connected_pair()
    assert connect_tasks(agent)
    await asyncio.sleep(delay_ms / 1000)
    await close_peer(agent)
    await close_peer(caller)
    assert tasks_of(agent) == []
    assert tasks_of(caller) == []
