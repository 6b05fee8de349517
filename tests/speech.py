"""Telugu speech for tests, synthesized at test time with espeak-ng's Telugu voice."""

from __future__ import annotations

import numpy as np

from models.data.espeak import synthesize

SENTENCES = {
    "greeting": "నమస్కారం, మీరు ఎలా ఉన్నారు?",
    "weather": "ఈ రోజు వాతావరణం చాలా బాగుంది.",
    "cricket": "నిన్న క్రికెట్ మ్యాచ్ చూశారా? భారత్ గెలిచింది.",
    "food": "నాకు పులిహోర అంటే చాలా ఇష్టం.",
}


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def conversation(parts: list[str | float], rate: int) -> np.ndarray:
    """Concatenate sentences (by key of SENTENCES or literal text) and pauses (seconds)."""
    pieces = []
    for part in parts:
        if isinstance(part, float | int):
            pieces.append(silence(float(part), rate))
        else:
            pieces.append(synthesize(SENTENCES.get(part, part), rate))
    return np.concatenate(pieces)


def envelope(pcm: np.ndarray, rate: int, hop_ms: float = 10.0) -> np.ndarray:
    """RMS envelope in hops of hop_ms."""
    hop = int(rate * hop_ms / 1000)
    frames = len(pcm) // hop
    return np.sqrt((pcm[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1))


def envelope_similarity(a: np.ndarray, b: np.ndarray, rate: int, max_lag_s: float = 0.5) -> float:
    """Peak normalised cross-correlation of two signals' log envelopes over +-max_lag_s."""
    ea = np.log(envelope(a, rate) + 1e-4)
    eb = np.log(envelope(b, rate) + 1e-4)
    n = min(len(ea), len(eb))
    max_lag = int(max_lag_s * 100)
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x = ea[max(0, lag) : n + min(0, lag)]
        y = eb[max(0, -lag) : n + min(0, -lag)]
        m = min(len(x), len(y))
        if m < 20:
            continue
        x, y = x[:m] - x[:m].mean(), y[:m] - y[:m].mean()
        denom = np.sqrt((x * x).sum() * (y * y).sum())
        if denom > 0:
            best = max(best, float((x * y).sum() / denom))
    return best
