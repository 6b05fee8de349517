"""Silero VAD (the model shipped inside the `silero-vad` package), one streaming state per call."""

from __future__ import annotations

import numpy as np
import torch

WINDOW = 512
"""Samples per VAD window at 16 kHz (32 ms), the size Silero's streaming model expects."""
WINDOW_MS = 32


def _load_silero() -> torch.nn.Module:
    """Silero's TorchScript model. Its package sets torch's intra-op threads to 1 when it is
    imported, which would make every later model computation of the process (training,
    evaluation) use one core: the thread count is put back."""
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad

        return load_silero_vad(onnx=False)
    finally:
        torch.set_num_threads(threads)


class SileroVAD:
    """Speech probability of consecutive 512-sample windows of one 16 kHz stream.

    Each instance owns its model copy, so its recurrent state belongs to one call only.
    Not thread-safe: a session calls it from its single listening worker.
    """

    def __init__(self) -> None:
        self._model = _load_silero()

    def prob(self, window: np.ndarray) -> float:
        """Speech probability of the next window (exactly WINDOW float32 samples)."""
        if window.shape != (WINDOW,):
            raise ValueError(f"VAD window must be {WINDOW} samples, got {window.shape}")
        with torch.inference_mode():
            return float(self._model(torch.from_numpy(window), 16_000))

    def reset(self) -> None:
        """Forget the stream so far."""
        self._model.reset_states()
