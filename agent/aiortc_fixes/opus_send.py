"""Opus for speech over lossy links, on what a peer connection sends.

aiortc's OpusEncoder sends stereo at 96 kbps with no forward error correction. For speech on
a phone-like link, mono at 32 kbps with libopus in-band FEC (each packet carries a low-rate
copy of the frame before it, so a single lost packet is rebuilt from the next one) is the
better trade. The agent's answers are 16 kHz audio, so the encoder takes 16 kHz input as it
is (libopus codes it as wideband, all the band there is): no resampling to 48 kHz and back,
and a cheaper encode (0.43 against 0.51 ms of CPU per 20 ms frame, the same PESQ-WB:
`python -m benchmarks.opus_encode`); the RTP timestamps still count the 48 kHz Opus clock.
`use_speech_encoder` gives one sender such an encoder (no global patch), and `offer_fec` adds
`useinbandfec=1` to the Opus parameters this side puts in its SDP, which asks the remote
sender (a browser) for FEC too.

Replaces (aiortc 1.16): the `OpusEncoder` (stereo, 96 kbps, no FEC) that `RTCRtpSender`
builds, and the Opus parameters aiortc puts in its SDP (no `useinbandfec`). Delete when aiortc
lets a sender choose Opus's channels, bitrate and FEC.
"""

from __future__ import annotations

import fractions

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.codecs.opus import SAMPLE_RATE, OpusEncoder
from av import AudioResampler
from av.frame import Frame

SPEECH_RATE = 16_000
"""Sample rate the speech encoder codes (input at other rates is resampled to it)."""
SPEECH_BITRATE = 32_000
EXPECTED_LOSS_PERCENT = 10
"""Tells libopus how much redundancy to spend: FEC is only sent above a loss estimate."""


class SpeechOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder, mono, for speech: 16 kHz input (by default), VoIP mode, bitrate
    cap, in-band FEC."""

    def __init__(
        self,
        bitrate: int = SPEECH_BITRATE,
        loss_percent: int = EXPECTED_LOSS_PERCENT,
        rate: int = SPEECH_RATE,
    ) -> None:
        """rate: what libopus is given (input at other rates is resampled to it)."""
        super().__init__()
        self.codec.bit_rate = bitrate
        self.codec.layout = "mono"
        self.codec.sample_rate = rate
        self.codec.time_base = fractions.Fraction(1, rate)
        self.codec.options = {
            "application": "voip",
            "fec": "1",
            "packet_loss": str(loss_percent),
        }
        self.resampler = AudioResampler(
            format="s16", layout="mono", rate=rate, frame_size=rate // 50
        )

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """aiortc's encode, its timestamp (counted at the encoder's rate) put on the 48 kHz
        RTP clock."""
        payloads, timestamp = super().encode(frame, force_keyframe)
        if timestamp is None:
            return payloads, timestamp
        return payloads, timestamp * SAMPLE_RATE // self.codec.sample_rate


def use_speech_encoder(sender: RTCRtpSender, encoder: OpusEncoder | None = None) -> None:
    """Make `sender` encode with a SpeechOpusEncoder; call before its first frame is sent,
    and only when Opus was negotiated for it."""
    if not hasattr(sender, "_RTCRtpSender__encoder"):
        raise RuntimeError("this aiortc version has no RTCRtpSender.__encoder; cannot tune it")
    sender._RTCRtpSender__encoder = encoder or SpeechOpusEncoder()


def opus_negotiated(pc: RTCPeerConnection, sender: RTCRtpSender) -> bool:
    """Whether the first (sending) codec of `sender`'s transceiver is Opus."""
    for transceiver in pc.getTransceivers():
        if transceiver.sender is sender and transceiver._codecs:
            return transceiver._codecs[0].mimeType.lower() == "audio/opus"
    return False


def offer_fec(pc: RTCPeerConnection) -> None:
    """Ask the remote sender for in-band FEC: set useinbandfec=1 on every negotiated (after
    setRemoteDescription) or preferred Opus codec, before createAnswer / createOffer."""
    for transceiver in pc.getTransceivers():
        for codec in transceiver._codecs:
            if codec.mimeType.lower() == "audio/opus":
                codec.parameters["useinbandfec"] = 1
