"""The userspace link impairment: seeded, bounded, self-cleaning, media only."""

from __future__ import annotations

import asyncio

import numpy as np

from agent.caller.continuity import answer_continuity
from agent.caller.impairment import PROFILES, Direction, LinkProfile

RTP = bytes([0x80, 111]) + bytes(10)
DTLS = bytes([23, 0xFE, 0xFD]) + bytes(10)


def drops(profile: LinkProfile, seed: int, n: int = 200) -> list[int]:
    direction = Direction(profile, seed=seed)
    delivered: list[int] = []
    for i in range(n):
        direction.push(RTP, lambda i=i: delivered.append(i))
    return [i for i in range(n) if i not in delivered]


def test_loss_is_random_but_seeded():
    lossy = LinkProfile("lossy", loss=0.1)
    first, again, other = drops(lossy, 7), drops(lossy, 7), drops(lossy, 8)
    assert first == again and first != other
    assert 8 <= len(first) <= 35


def test_only_media_is_impaired():
    direction = Direction(LinkProfile("all lost", loss=1.0), seed=0)
    delivered: list[bytes] = []
    for data in (RTP, DTLS, bytes([0, 1, 0, 0])):  # RTP, DTLS, STUN
        direction.push(data, lambda d=data: delivered.append(d))
    assert delivered == [DTLS, bytes([0, 1, 0, 0])]
    assert direction.stats.dropped == 1


def test_delays_are_uniform_around_the_one_way_delay():
    direction = Direction(PROFILES["rtt100-jitter30"], seed=3)
    delays = [direction.draw_delay_ms() for _ in range(2000)]
    assert 20.0 <= min(delays) < 22.0 and 78.0 < max(delays) <= 80.0
    assert abs(np.mean(delays) - 50.0) < 2.0


async def test_packets_are_held_back_and_reordered():
    direction = Direction(PROFILES["rtt100-jitter30"], seed=3)
    loop = asyncio.get_running_loop()
    arrived: list[tuple[int, float]] = []
    for i in range(40):
        pushed = loop.time()
        direction.push(RTP, lambda i=i, p=pushed: arrived.append((i, loop.time() - p)))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)  # the longest delay is 80 ms
    assert len(arrived) == 40 and direction.in_flight == 0
    assert min(delay for _, delay in arrived) >= 0.0195  # never early
    order = [i for i, _ in arrived]
    assert order != sorted(order)  # independent delays reorder packets, as netem does


async def test_bounded_and_cancelled_on_close():
    direction = Direction(LinkProfile("slow", delay_ms=200), seed=0, max_in_flight=10)
    delivered: list[int] = []
    for i in range(15):
        direction.push(RTP, lambda i=i: delivered.append(i))
    assert direction.in_flight == 10 and direction.stats.overflow == 5
    direction.close()
    await asyncio.sleep(0.25)
    assert delivered == [] and direction.in_flight == 0


def test_continuity_counts_stalls_gaps_and_rebuilt_frames():
    pcm = np.zeros(960, dtype=np.float32)
    times = [0.00, 0.02, 0.04, 0.15, 0.17]
    pts = [0, 960, 1920, 4800, 5760]  # two frames (2880, 3840) never came
    frames = [(t, pcm) for t in times]
    result = answer_continuity(frames, pts, 0.0, 0.17, rebuilt_pts={960})
    assert result.stall_ms == 110.0
    assert result.missing_ms == 40.0
    assert result.rebuilt_frames == 1
