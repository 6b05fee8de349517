import asyncio
import time

import numpy as np
import pytest

from agent.outbound import AnswerTrack
from agent.wire import WIRE_FRAME, WIRE_RATE
from models.speech.audio import to_float


async def take(track: AnswerTrack, n: int):
    frames, times = [], []
    for _ in range(n):
        frames.append(await track.recv())
        times.append(time.monotonic())
    return frames, times


async def test_frames_are_20ms_48k_with_continuous_pts_and_wall_clock_pacing():
    track = AnswerTrack(capacity_s=2.0)
    frames, times = await take(track, 51)
    assert all(f.sample_rate == WIRE_RATE and f.samples == WIRE_FRAME for f in frames)
    assert [f.pts for f in frames] == [i * WIRE_FRAME for i in range(51)]
    assert all(f.time_base == frames[0].time_base for f in frames)
    elapsed = times[-1] - times[0]
    assert 0.97 <= elapsed <= 1.15  # 50 slots of 20 ms
    gaps = np.diff(times)
    assert gaps.min() > 0.010  # never two frames in a burst


async def test_a_16k_track_plays_16k_frames_whole():
    track = AnswerTrack(capacity_s=2.0, rate=16_000)
    await track.begin(1)
    await track.play(np.full(320 * 2 + 10, 0.25, dtype=np.float32))
    await track.end(1)
    frames, _ = await take(track, 4)
    assert all(f.sample_rate == 16_000 and f.samples == 320 for f in frames)
    assert [f.pts for f in frames] == [0, 320, 640, 960]
    pcm = [to_float(f.to_ndarray().reshape(-1)) for f in frames]
    assert [round(float(p.mean()), 3) for p in pcm[:2]] == [0.25, 0.25]
    assert np.count_nonzero(pcm[2]) == 10 and not pcm[3].any()


async def test_no_burst_after_a_stall_the_clock_resynchronises():
    track = AnswerTrack(capacity_s=2.0)
    await take(track, 5)
    time.sleep(0.3)  # noqa: ASYNC251 - the event loop stalls for 300 ms on purpose
    frames, times = await take(track, 11)
    # the first frame after the stall leaves at once, the rest are paced again, no catch-up
    assert np.diff(times).min() > 0.010
    assert 0.19 <= times[-1] - times[0] <= 0.26
    # timestamps jump over the lost slots instead of running behind the wall clock
    assert frames[0].pts - 4 * WIRE_FRAME >= 14 * WIRE_FRAME
    assert track.resyncs == 1


async def test_answer_plays_whole_with_callbacks_then_silence():
    started, done = [], []
    track = AnswerTrack(
        2.0, on_started=lambda t, pts, at: started.append((t, pts)), on_done=done.append
    )
    await take(track, 2)
    answer = np.full(WIRE_FRAME * 3 + 100, 0.25, dtype=np.float32)
    await track.begin(7)
    await track.play(answer)
    await track.end(7)
    assert track.speaking
    frames, _ = await take(track, 6)
    pcm = [to_float(f.to_ndarray().reshape(-1)) for f in frames]
    assert [round(float(p.mean()), 3) for p in pcm[:3]] == [0.25] * 3  # no gap inside
    assert np.count_nonzero(pcm[3]) == 100  # the last partial frame, padded
    assert not pcm[4].any() and not pcm[5].any()
    assert started == [(7, 2 * WIRE_FRAME)] and done == [7]
    assert not track.speaking and track.underruns == 0


async def test_clear_silences_the_next_frame_and_producer_waits_when_full():
    track = AnswerTrack(capacity_s=0.1)  # 5 frames
    await track.begin(1)
    producer = asyncio.create_task(track.play(np.full(WIRE_FRAME * 20, 0.5, np.float32)))
    await asyncio.sleep(0.05)
    assert not producer.done()  # bounded: waits for the wire
    producer.cancel()
    track.clear()
    frame = await track.recv()
    assert not frame.to_ndarray().any()
    assert not track.speaking


async def test_stopped_track_ends_the_stream():
    from aiortc.mediastreams import MediaStreamError

    track = AnswerTrack(1.0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_an_answers_first_frame_leaves_without_waiting_for_its_slot():
    """With the wall clock standing still no slot ever comes due: silence waits, an answer's
    first frame leaves as soon as it is queued, and the frames after it wait for their slots
    again, counted from it."""
    track = AnswerTrack(2.0, clock=lambda: 100.0)
    await track.recv()  # the first frame anchors the clock
    waiting = asyncio.create_task(track.recv())
    await asyncio.sleep(0.06)
    assert not waiting.done()
    await track.begin(3)
    await track.play(np.full(WIRE_FRAME * 2, 0.25, dtype=np.float32))
    frame = await asyncio.wait_for(waiting, 1.0)
    assert frame.pts == WIRE_FRAME
    assert round(float(to_float(frame.to_ndarray().reshape(-1)).mean()), 3) == 0.25
    assert track.early_starts == 1
    following = asyncio.create_task(track.recv())
    await asyncio.sleep(0.06)
    assert not following.done()  # the answer's second frame keeps its 20 ms slot
    following.cancel()
