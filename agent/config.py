"""Settings of one call's audio path, with the defaults `telugu-s2s serve --help` documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JitterMode = Literal["adaptive", "skip", "aiortc"]
EotMode = Literal["silence", "model"]


@dataclass(frozen=True)
class TurnConfig:
    """Voice activity and end-of-turn settings.

    min_silence_ms is chosen by measurement (benchmarks/turn_silence.py, docs/benchmarks.md):
    the shortest candidate that splits at most 5 % of synthesized Telugu turns at their
    internal pauses (150-600 ms). 480 ms split 28 %; 704 ms split none but answers 128 ms later.
    """

    threshold: float = 0.5
    """Silero speech probability at or above which a window counts as speech."""
    min_speech_ms: int = 96
    """Speech needed before a turn starts (3 VAD windows of 32 ms)."""
    min_silence_ms: int = 576
    """Silence after speech that ends the turn."""
    speech_pad_ms: int = 64
    """Audio kept before the first speech window, for the responder."""
    eot: EotMode = "silence"
    """'silence': the turn ends after min_silence_ms of silence. 'model': it also ends as soon
    as the responder's end-of-turn head is confident during a silence of at least
    model_min_silence_ms (the silence rule stays as the fallback)."""
    eot_threshold: float = 0.9
    """End-of-turn probability at or above which the head ends the turn ('model')."""
    model_min_silence_ms: int = 96
    """Silence the head needs under it before it may end a turn ('model'): a confident head
    never cuts into speech that Silero still hears."""

    @property
    def neg_threshold(self) -> float:
        """Probability below which a window counts as silence (hysteresis, as Silero does)."""
        return max(self.threshold - 0.15, 0.01)


@dataclass(frozen=True)
class AgentConfig:
    """Everything a Session needs to know besides its peer and responder."""

    turns: TurnConfig = TurnConfig()
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
    connect_timeout_s: float = 20.0
    """A call whose first audio has not arrived this long after the answer is over."""
    trim_memory: bool = True
    """Give the C heap's free pages back to the system after calls end (agent.process.memory)."""
    answer_buffer_s: float = 10.0
    """At most this much generated answer audio waits for the wire (bounded queue)."""
