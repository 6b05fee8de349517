"""libopus itself, through ctypes: decoding with packet loss concealment and in-band FEC.

aiortc decodes Opus through PyAV/FFmpeg, whose libopus wrapper can neither conceal a missing
packet (an empty packet means end of stream there) nor decode the forward error correction
(LBRR) that the next packet carries. The libopus that PyAV's wheel ships can do both, so the
agent calls it directly: `conceal(n)` is libopus PLC, `recover(packet, n)` decodes the copy of
the previous frame carried inside `packet`.

Replaces (PyAV 18 / FFmpeg): FFmpeg's libopus decoder wrapper, for conceal.py. Delete when
aiortc's decoder conceals and recovers lost frames itself (conceal.py goes then too).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from functools import cache

import av
import numpy as np

RATE = 48_000
MAX_FRAME = RATE * 120 // 1000
"""The longest Opus packet (120 ms), in samples."""


class OpusUnavailable(RuntimeError):
    """No libopus could be loaded."""


@cache
def libopus() -> ctypes.CDLL:
    """The libopus bundled with PyAV's wheel, or the system's."""
    bundled = glob.glob(os.path.join(os.path.dirname(av.__file__), "..", "av.libs", "libopus*"))
    candidates = [*bundled, ctypes.util.find_library("opus")]
    for path in filter(None, candidates):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [
            ctypes.c_int32,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
        return lib
    raise OpusUnavailable("libopus not found (neither in PyAV's wheel nor on the system)")


def packet_samples(packet: bytes) -> int:
    """Samples per channel at 48 kHz that `packet` decodes to (0 if it is malformed)."""
    return max(0, libopus().opus_packet_get_nb_samples(packet, len(packet), RATE))


def has_fec(packet: bytes) -> bool:
    """Whether `packet` carries an in-band FEC copy (LBRR) of the frame before it."""
    return bool(packet) and libopus().opus_packet_has_lbrr(packet, len(packet)) > 0


class OpusDecoder:
    """A mono 48 kHz libopus decoder: decode, conceal (PLC) and recover (FEC) to int16 PCM."""

    def __init__(self) -> None:
        self._lib = libopus()
        error = ctypes.c_int()
        self._state = self._lib.opus_decoder_create(RATE, 1, ctypes.byref(error))
        if error.value != 0 or not self._state:
            raise OpusUnavailable(f"opus_decoder_create failed ({error.value})")
        self._pcm = (ctypes.c_int16 * MAX_FRAME)()

    def decode(self, packet: bytes) -> np.ndarray:
        """PCM of one packet (empty when the packet does not decode)."""
        return self._run(packet, MAX_FRAME, fec=False)

    def conceal(self, samples: int) -> np.ndarray:
        """`samples` of packet loss concealment (a multiple of 2.5 ms, at most 120 ms)."""
        return self._run(None, samples, fec=False)

    def recover(self, packet: bytes, samples: int) -> np.ndarray:
        """The frame before `packet`, from the FEC data inside it (PLC if it has none)."""
        return self._run(packet, samples, fec=True)

    def _run(self, packet: bytes | None, samples: int, fec: bool) -> np.ndarray:
        size = len(packet) if packet else 0
        got = self._lib.opus_decode(self._state, packet, size, self._pcm, samples, int(fec))
        if got <= 0:
            return np.zeros(0, dtype=np.int16)
        return np.ctypeslib.as_array(self._pcm)[:got].copy()

    def close(self) -> None:
        """Free the libopus state (also done when the decoder is garbage collected)."""
        if self._state:
            self._lib.opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
