"""Which candidate pair ICE chose on an aiortc peer connection (for reports and tests).

aiortc has no `getStats` entry for the selected pair, so this reads aioice's nominated pair."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection


def selected_pair(pc: RTCPeerConnection) -> dict[str, Any] | None:
    """`{"local": {type, protocol, address}, "remote": {...}}` of the RTP component's
    nominated pair, or None while there is none."""
    transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        connection = getattr(dtls.transport, "_connection", None)
        pair = getattr(connection, "_nominated", {}).get(1) if connection else None
        if pair is not None:
            return {
                "local": _describe(pair.local_candidate),
                "remote": _describe(pair.remote_candidate),
            }
    return None


def _describe(candidate: Any) -> dict[str, Any]:  # aioice.Candidate
    return {
        "type": candidate.type,
        "protocol": candidate.transport,
        "address": [candidate.host, candidate.port],
    }
