"""Settings of one call's audio path, with the defaults `telugu-s2s serve --help` documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.speech.turns import TurnConfig

JitterMode = Literal["adaptive", "skip", "aiortc"]


@dataclass(frozen=True)
class AgentConfig:
    """Everything a Session needs to know besides its peer and responder."""

    turns: TurnConfig = TurnConfig()
    endpoint: str | None = None
    """Checkpoint of the content end-of-turn head with `turns.eot == "content"` (None: the
    shipped one); its operating point replaces the turn settings' silence and threshold."""
    barge_in: bool = True
    """Stop the answer when the user starts speaking over it."""
    jitter: JitterMode = "adaptive"
    """Receive path: 'adaptive' releases each in-order packet at once and conceals lost
    frames (PLC, in-band FEC); 'skip' is the same buffer without concealment and 'aiortc'
    aiortc's own (4 packets of prefetch), both kept for comparison."""
    opus_fec: bool = True
    """Send speech-tuned Opus (32 kbps, in-band FEC) and ask the peer for FEC in the answer."""
    peer_timeout_s: float = 3.0
    """A call whose peer sends no audio for this long is over (the peer vanished)."""
    establish_timeout_s: float = 8.0
    """A call whose ICE and DTLS are not done this long after the answer is over: an offer
    that never connects gives its slot back (real peers connect in well under a second on
    a direct path, one to three seconds through TURN)."""
    connect_timeout_s: float = 20.0
    """A call whose first audio has not arrived this long after the answer is over."""
    trim_memory: bool = True
    """Give the C heap's free pages back to the system after calls end (agent.process.memory)."""
    listen_batch_ms: float = 256.0
    """Period of the batched listening work (agent/listening.py): the VAD hears each window
    at once, the responder hears every call's windows together this often."""
    behind_ms: float = 500.0
    """A call whose audio waits longer than this to be heard by the model (from when it was
    due; the batching alone accounts for up to listen_batch_ms) is told (`behind` event) and
    counted in /metrics: the server is past its capacity."""
    answer_ahead_ms: int | None = 96
    """After this much silence inside a turn the answer to the turn as it stands is started
    ahead (predictive pre-generation, agent/ahead.py): at most one per call, its first chunks
    kept ready and released the moment the end of turn is decided, thrown away if the user
    goes on. None: answers start at the end of turn."""
    answer_buffer_s: float = 10.0
    """At most this much generated answer audio waits for the wire (bounded queue)."""
