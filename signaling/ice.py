"""ICE servers handed to the page (`/ice-config`) and used by the agent's own peers.

STUN and TURN URLs come from configuration; time-limited TURN credentials plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer


@dataclass(frozen=True)
class IceConfig:
    """ICE servers without credentials (STUN, or TURN with static ones)."""

    urls: tuple[str, ...] = field(default_factory=tuple)

    def for_client(self) -> dict[str, Any]:
        """The `/ice-config` body: `{"iceServers": [...]}` in the browser's format."""
        return {"iceServers": [{"urls": list(self.urls)}] if self.urls else []}

    def for_agent(self) -> RTCConfiguration:
        """The agent's RTCPeerConnection configuration."""
        servers = [RTCIceServer(urls=list(self.urls))] if self.urls else []
        return RTCConfiguration(iceServers=servers)
