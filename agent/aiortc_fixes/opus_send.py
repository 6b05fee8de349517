"""Opus for speech over lossy links, on what a peer connection sends.

aiortc's OpusEncoder sends stereo at 96 kbps with no forward error correction. For speech on
a phone-like link, mono at 32 kbps with libopus in-band FEC (each packet carries a low-rate
copy of the frame before it, so a single lost packet is rebuilt from the next one) is the
better trade. `use_speech_encoder` gives one sender such an encoder (no global patch), and
`offer_fec` adds `useinbandfec=1` to the Opus parameters this side puts in its SDP, which asks
the remote sender (a browser) for FEC too.

Replaces (aiortc 1.16): the `OpusEncoder` (stereo, 96 kbps, no FEC) that `RTCRtpSender`
builds, and the Opus parameters aiortc puts in its SDP (no `useinbandfec`). Delete when aiortc
lets a sender choose Opus's channels, bitrate and FEC.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.codecs.opus import SAMPLE_RATE, SAMPLES_PER_FRAME, OpusEncoder
from av import AudioResampler

SPEECH_BITRATE = 32_000
EXPECTED_LOSS_PERCENT = 10
"""Tells libopus how much redundancy to spend: FEC is only sent above a loss estimate."""


class SpeechOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder, mono, for speech: VoIP mode, bitrate cap, in-band FEC."""

    def __init__(
        self, bitrate: int = SPEECH_BITRATE, loss_percent: int = EXPECTED_LOSS_PERCENT
    ) -> None:
        super().__init__()
        self.codec.bit_rate = bitrate
        self.codec.layout = "mono"
        self.codec.options = {
            "application": "voip",
            "fec": "1",
            "packet_loss": str(loss_percent),
        }
        self.resampler = AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=SAMPLES_PER_FRAME
        )


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
