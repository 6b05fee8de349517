from aiortc.rtp import RtpPacket

from agent.aiortc_fixes.jitter import AudioJitterBuffer, DecoderFeed, MeasuredAiortcBuffer


def packet(seq: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=(seq * 960) % 2**32)
    p._data = bytes([seq % 256])
    return p


def test_in_order_packets_are_released_immediately():
    buffer = AudioJitterBuffer()
    for seq in range(65530, 65530 + 20):  # across the sequence number wrap
        _, frame = buffer.add(packet(seq))
        assert frame is not None and frame.data == bytes([seq % 256])
    assert buffer.stats.median_ms() < 1.0


def test_aiortc_buffer_holds_four_packets_for_comparison():
    buffer = MeasuredAiortcBuffer()
    released = [buffer.add(packet(seq))[1] for seq in range(10)]
    assert released[:4] == [None] * 4 and all(released[4:])


def test_reordered_packet_is_waited_for_within_the_window():
    buffer = AudioJitterBuffer()
    assert buffer.add(packet(0))[1].data == b"\x00"
    assert buffer.add(packet(2))[1] is None  # 1 is missing: hold 2
    _, frame = buffer.add(packet(1))  # 1 arrives late but in time
    assert frame.data == b"\x01"
    assert [f.data for f in buffer.take_extra()] == [b"\x02"]
    assert buffer.skipped_packets == 0


def test_lost_packet_is_skipped_and_the_buffer_catches_up_at_once():
    buffer = AudioJitterBuffer()
    buffer.add(packet(0))
    assert buffer.add(packet(2))[1] is None
    _, frame = buffer.add(packet(3))  # window 1 exceeded: give up on 1
    assert frame.data == b"\x02"
    assert [f.data for f in buffer.take_extra()] == [b"\x03"]
    assert buffer.skipped_packets == 1
    assert buffer.add(packet(4))[1].data == b"\x04"  # not behind afterwards


def test_late_packets_widen_the_window_and_calm_narrows_it():
    buffer = AudioJitterBuffer(calm_packets=10)
    buffer.add(packet(0))
    buffer.add(packet(2))
    buffer.add(packet(3))  # 1 skipped
    assert buffer.add(packet(1))[1] is None  # too late: dropped
    assert buffer.window == 2 and buffer.late_packets == 1
    for seq in range(4, 15):
        buffer.add(packet(seq))
    assert buffer.window == 1


def test_decoder_feed_passes_on_frames_released_together():
    buffer = AudioJitterBuffer()
    feed = DecoderFeed(buffer)
    buffer.add(packet(0))
    buffer.add(packet(2))
    _, frame = buffer.add(packet(3))
    frame_ts = frame.timestamp
    frame.timestamp = 5000  # the receiver maps timestamps before queueing
    feed.put(("opus", frame))
    items = [feed.get_nowait() for _ in range(2)]
    assert [f.data for _, f in items] == [b"\x02", b"\x03"]
    assert items[1][1].timestamp == 5000 + (3 * 960 - frame_ts)
    assert feed.empty()


def test_window_is_a_playout_delay_that_grows_under_jitter_and_decays_on_a_clean_path():
    buffer = AudioJitterBuffer(max_window=3, calm_packets=20)
    seq = 0
    for _ in range(4):  # jittery path: a packet overtaken by more than the window, each time
        overtaking = buffer.window + 1
        buffer.add(packet(seq))
        for later in range(seq + 2, seq + 2 + overtaking):
            buffer.add(packet(later))
        buffer.add(packet(seq + 1))  # later than the window allowed
        seq += 2 + overtaking
    assert buffer.window == 3  # grew, capped at max_window
    held = []
    for _ in range(60):  # clean path
        _, frame = buffer.add(packet(seq))
        held.append(frame is not None)
        seq += 1
    assert all(held)  # in-order packets are never held, whatever the window
    assert buffer.window == 1  # and the window decays back


def test_a_loss_does_not_leave_the_buffer_behind():
    buffer = AudioJitterBuffer()
    for seq in range(10):
        buffer.add(packet(seq))
    buffer.add(packet(11))  # 10 lost
    buffer.add(packet(12))
    buffer.take_extra()
    for seq in range(13, 30):
        _, frame = buffer.add(packet(seq))
        assert frame is not None and frame.data == bytes([seq])
    assert buffer.skipped_packets == 1
