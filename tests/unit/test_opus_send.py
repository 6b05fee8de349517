"""The speech Opus encoder: 16 kHz in (or resampled to it), 48 kHz RTP timestamps, and speech
that decodes back as clear as it went in."""

from __future__ import annotations

import numpy as np
import pytest
from pesq import pesq

from agent.aiortc_fixes.opus_codec import OpusDecoder
from agent.aiortc_fixes.opus_send import SPEECH_RATE, SpeechOpusEncoder
from agent.wire import WIRE_FRAME, WIRE_RATE
from models.speech.audio import MODEL_RATE, frame_from_pcm, resample, to_float
from tests.clips import speech


@pytest.mark.parametrize("rate", [SPEECH_RATE, WIRE_RATE])
def test_timestamps_count_the_48k_clock_and_speech_comes_back_clear(rate: int) -> None:
    sent = speech(4.0)
    pcm = resample(sent, MODEL_RATE, rate)
    frame = rate // 50
    encoder, decoder = SpeechOpusEncoder(), OpusDecoder()
    stamps, decoded = [], []
    for i in range(len(pcm) // frame):
        chunk = pcm[i * frame : (i + 1) * frame]
        payloads, stamp = encoder.encode(frame_from_pcm(chunk, rate, pts=i * frame))
        for payload in payloads:
            stamps.append(stamp)
            decoded.append(to_float(decoder.decode(payload)))
    assert len(stamps) >= 190
    assert np.all(np.diff(stamps) == WIRE_FRAME)  # one 20 ms packet per frame, 48 kHz clock
    heard = resample(np.concatenate(decoded), WIRE_RATE, MODEL_RATE)
    # the encoder's look-ahead delays the audio: align at the best lag within 25 ms
    lag = max(
        range(400),
        key=lambda k: float(np.dot(sent[: len(heard) - 400], heard[k:][: len(heard) - 400])),
    )
    heard = heard[lag:]
    size = min(len(heard), len(sent))
    # 4.08 for this clip through aiortc's encoder at 48 kHz with the same settings
    assert pesq(MODEL_RATE, sent[:size], heard[:size], "wb") > 3.8
