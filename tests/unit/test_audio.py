import numpy as np

from agent.wire import WIRE_RATE, frame_to_mono
from models.speech.audio import MODEL_RATE, Resampler, Windower, frame_from_pcm, resample


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()])


def test_streaming_resample_48k_frames_to_16k_keeps_length_and_pitch():
    signal = tone(440.0, 1.0, WIRE_RATE)
    resampler = Resampler(MODEL_RATE)
    chunks = [
        resampler.frame(frame_from_pcm(signal[i : i + 960], WIRE_RATE, pts=i))
        for i in range(0, len(signal), 960)
    ]
    out = np.concatenate([*chunks, resampler.flush()])
    assert abs(len(out) - MODEL_RATE) <= 16
    assert abs(dominant_frequency(out[1000:], MODEL_RATE) - 440.0) < 2.0
    assert 0.45 < np.abs(out[1000:]).max() < 0.55


def test_stereo_frames_are_mixed_to_mono():
    left = tone(300.0, 0.02, WIRE_RATE)
    packed = np.stack([left, left], axis=1).reshape(1, -1)
    import av

    frame = av.AudioFrame.from_ndarray(
        (packed * 32767).astype(np.int16), format="s16", layout="stereo"
    )
    frame.sample_rate = WIRE_RATE
    mono = frame_to_mono(frame)
    assert mono.shape == (960,)
    np.testing.assert_allclose(mono, left, atol=1e-3)


def test_whole_signal_resample_round_trip():
    signal = tone(1000.0, 0.5, MODEL_RATE)
    up = resample(signal, MODEL_RATE, WIRE_RATE)
    back = resample(up, WIRE_RATE, MODEL_RATE)
    assert abs(len(back) - len(signal)) <= 16
    n = min(len(back), len(signal))
    # the round trip delays by a few samples: compare envelopes of the steady part
    assert abs(np.abs(back[200:n]).max() - 0.5) < 0.02


def test_windower_cuts_exact_windows_and_counts_samples():
    w = Windower(512)
    got = []
    for size in (100, 700, 300, 500):
        got += list(w.push(np.arange(size, dtype=np.float32)))
    assert [len(x) for x in got] == [512, 512, 512]
    assert w.samples_out == 1536
    np.testing.assert_array_equal(got[0][:100], np.arange(100))
    np.testing.assert_array_equal(got[0][100:], np.arange(412))
