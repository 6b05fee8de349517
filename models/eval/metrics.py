"""Speech quality metrics of a decoded signal against its reference (mono float32, same rate).

PESQ-WB (ITU-T P.862.2, via the pesq package: 16 kHz only, MOS-LQO about 1.0 to 4.64), STOI
(pystoi, 0 to 1), SI-SDR (dB) and the multi-scale log-mel distance of the codec's training loss
(0 for identical signals). Every function takes (reference, estimate) and compares their
common length. pesq and pystoi (training extras) are imported when first used.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from models.train.losses import MultiScaleMelLoss

PESQ_RATE = 16_000


def _aligned(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(reference), len(estimate))
    if n == 0:
        raise ValueError("empty signal")
    return (
        np.asarray(reference[:n], dtype=np.float64),
        np.asarray(estimate[:n], dtype=np.float64),
    )


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-10) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (zero-mean signals)."""
    reference, estimate = _aligned(reference, estimate)
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    scale = (estimate @ reference) / (reference @ reference + eps)
    target = scale * reference
    noise = estimate - target
    return float(10 * np.log10((target @ target + eps) / (noise @ noise + eps)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, rate: int = PESQ_RATE) -> float:
    """Wide-band PESQ MOS-LQO; NaN when PESQ finds no speech in the reference."""
    if rate != PESQ_RATE:
        raise ValueError(f"PESQ-WB needs {PESQ_RATE} Hz audio, got {rate}")
    from pesq import NoUtterancesError, pesq

    reference, estimate = _aligned(reference, estimate)
    try:
        return float(pesq(rate, reference, estimate, "wb"))
    except NoUtterancesError:
        return math.nan


def stoi(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
    """Short-time objective intelligibility (0 to 1)."""
    from pystoi import stoi as pystoi_stoi

    reference, estimate = _aligned(reference, estimate)
    return float(pystoi_stoi(reference, estimate, rate, extended=False))


class MelDistance:
    """Multi-scale log10-mel L1 distance (the codec's mel loss) at one sample rate."""

    def __init__(self, rate: int) -> None:
        self.loss = MultiScaleMelLoss(rate)

    def __call__(self, reference: np.ndarray, estimate: np.ndarray) -> float:
        reference, estimate = _aligned(reference, estimate)
        with torch.no_grad():
            return float(
                self.loss(torch.from_numpy(estimate)[None], torch.from_numpy(reference)[None])
            )
