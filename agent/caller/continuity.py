"""How whole an answer arrived: the longest stall, the audio missing, the frames rebuilt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.wire import WIRE_FRAME, WIRE_RATE


@dataclass(frozen=True)
class Continuity:
    stall_ms: float
    """Longest wait between two decoded frames while the answer played (20 ms when whole)."""
    missing_ms: float
    """Answer audio absent from the decoded stream (timestamp gaps neither received nor
    concealed): what a listener hears as a dropout or a jump."""
    rebuilt_frames: int
    """Frames of the answer made up by PLC or rebuilt from FEC."""


def answer_continuity(
    frames: list[tuple[float, np.ndarray]],
    pts: list[int | None],
    start: float,
    end: float,
    rebuilt_pts: set[int],
) -> Continuity:
    """Continuity of the decoded frames (arrival time, mono PCM; their pts) that carry the
    answer heard from wall time `start` to `end`."""
    first_possible = start - WIRE_FRAME / WIRE_RATE
    inside = [i for i, (t, _) in enumerate(frames) if first_possible <= t <= end]
    stall = 0.0
    missing = 0
    for prev, cur in zip(inside, inside[1:], strict=False):
        stall = max(stall, frames[cur][0] - frames[prev][0])
        if pts[prev] is not None and pts[cur] is not None:
            expected = pts[prev] + len(frames[prev][1])
            missing += max(0, pts[cur] - expected)
    rebuilt = sum(1 for i in inside if pts[i] in rebuilt_pts)
    return Continuity(
        stall_ms=round(stall * 1000, 1),
        missing_ms=round(missing * 1000 / WIRE_RATE, 1),
        rebuilt_frames=rebuilt,
    )
