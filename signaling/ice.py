"""ICE servers handed to the page (`/ice-config`) and used by the agent's own peers.

STUN (and static TURN) URLs come from configuration; with `TurnSettings` each `/ice-config`
answer and each agent peer gets its own time-limited TURN credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer

from turn.credentials import TurnSettings


@dataclass(frozen=True)
class IceConfig:
    """ICE servers: `urls` without credentials, plus TURN with minted credentials."""

    urls: tuple[str, ...] = field(default_factory=tuple)
    turn: TurnSettings | None = None
    agent_turn: bool = False
    """Give the agent's own peer connection the TURN server too (an agent behind NAT)."""

    def for_client(self, session_id: str | None = None) -> dict[str, Any]:
        """The `/ice-config` body: `{"iceServers": [...]}` in the browser's format."""
        servers: list[dict[str, Any]] = [{"urls": list(self.urls)}] if self.urls else []
        if self.turn is not None:
            servers.append(self.turn.ice_server(session_id))
        return {"iceServers": servers}

    def for_agent(self, session_id: str | None = None) -> RTCConfiguration:
        """The agent's RTCPeerConnection configuration.

        aiortc uses one TURN server and cannot check a TURN/TLS certificate against a private
        CA, so the agent gets the `turn:` URLs only."""
        servers = [RTCIceServer(urls=list(self.urls))] if self.urls else []
        if self.turn is not None and self.agent_turn:
            entry = self.turn.ice_server(session_id)
            plain = [u for u in entry["urls"] if u.startswith("turn:")]
            if plain:
                servers.append(
                    RTCIceServer(
                        urls=plain, username=entry["username"], credential=entry["credential"]
                    )
                )
        return RTCConfiguration(iceServers=servers)
