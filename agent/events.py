"""What the page hears about a call: JSON events on the `events` data channel, and the
per-turn latency record that feeds them, /metrics and the client's report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel

log = logging.getLogger(__name__)

EVENTS_LABEL = "events"

STAGES = (
    "eot_wait",
    "respond",
    "playout_queue",
    "send",
    "speech_end_to_rtp",
)
"""Stage names of the latency event, each in ms:
eot_wait: last speech window arrived -> end-of-turn decided (the silence the detector needs);
respond: end of turn -> first answer PCM ready;
playout_queue: first PCM ready -> its first 20 ms frame returned by the answer track;
send: that frame returned -> its RTP packet sent (Opus encode, SRTP);
speech_end_to_rtp: the server's whole share, from the last speech window to the first packet.
"""


@dataclass
class TurnLatency:
    """Monotonic timestamps (seconds) of one turn's way through the agent."""

    turn: int
    speech_end: float
    eot: float
    first_pcm: float | None = None
    first_frame: float | None = None
    first_rtp: float | None = None
    jitter_buffer_ms: float | None = None
    ahead: bool = False
    """Whether the answer was started ahead, in the pause before the end of turn."""

    def stages_ms(self) -> dict[str, float]:
        """Each stage's duration in ms (only those whose ends are known)."""
        marks = {
            "eot_wait": (self.speech_end, self.eot),
            "respond": (self.eot, self.first_pcm),
            "playout_queue": (self.first_pcm, self.first_frame),
            "send": (self.first_frame, self.first_rtp),
            "speech_end_to_rtp": (self.speech_end, self.first_rtp),
        }
        stages = {
            name: round((end - start) * 1000.0, 2)
            for name, (start, end) in marks.items()
            if end is not None
        }
        if self.jitter_buffer_ms is not None:
            stages["jitter_buffer"] = round(self.jitter_buffer_ms, 2)
        return stages


class EventChannel:
    """Sends JSON events on the peer's `events` data channel, once the peer has opened it.
    Events before that, or on a call without one (a WHIP client), are dropped.

    The channel is one-way: the agent reads nothing from it, so whatever a client sends on
    it (junk, binary, huge messages) is dropped unread. Only the first channel labelled
    `events` is used."""

    def __init__(self) -> None:
        self._channel: RTCDataChannel | None = None

    def attach(self, channel: RTCDataChannel) -> bool:
        """Take `channel` as the events channel; False (and nothing taken) if it is not one
        or the call already has one."""
        if channel.label != EVENTS_LABEL or self._channel is not None:
            return False
        self._channel = channel
        return True

    def send(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, **fields}
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(json.dumps(event))
            except Exception as exc:  # a closing SCTP association must not end the call
                log.debug("event %s not sent: %s", kind, exc)
