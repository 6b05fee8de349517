"""Zero-shot speaker embedding: a 256-d d-vector from a few seconds of reference speech.

The network is the GE2E speaker encoder of Resemblyzer (3-layer LSTM over 40-channel power mel
frames, a linear layer, ReLU, L2 normalisation), re-implemented here with the same parameter
names so that Resemblyzer's pretrained weights load into it. An utterance is cut into 1.6 s
partials (1.3 per second); its embedding is the normalised mean of the partial embeddings.
The Resemblyzer package itself is never imported: only its weight file is read.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 16_000
N_FFT = 400
"""25 ms analysis window."""
HOP = 160
"""10 ms between mel frames."""
N_MELS = 40
EMBEDDING_DIM = 256
PARTIAL_FRAMES = 160
"""Mel frames in one partial utterance (1.6 s)."""
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75
"""The last partial is kept only if the audio covers at least this much of it."""
TARGET_DBFS = -30.0
"""Quieter clips are raised to this RMS level (the encoder was trained on such audio)."""


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def mel_filterbank(rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters on the Slaney mel scale with Slaney area
    normalisation, from 0 Hz to Nyquist (librosa.filters.mel's defaults)."""
    fft_hz = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


@functools.cache
def _analysis() -> tuple[Tensor, Tensor]:
    """The STFT window and the mel filterbank, built once."""
    return torch.hann_window(N_FFT), mel_filterbank()


def mel_spectrogram(wav: Tensor) -> Tensor:
    """(frames, N_MELS) power mel spectrogram of a 16 kHz waveform, frames centred on multiples
    of HOP with zero padding (librosa.feature.melspectrogram with n_fft=400, hop_length=160,
    n_mels=40)."""
    window, basis = _analysis()
    spec = torch.stft(
        wav, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return (basis @ spec.abs().square()).T


def partial_starts(n_samples: int) -> list[int]:
    """First mel frame of each partial utterance of a clip of `n_samples` (at least one)."""
    n_frames = math.ceil((n_samples + 1) / HOP)
    step = round(SAMPLE_RATE / PARTIALS_PER_SECOND / HOP)
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def default_weights() -> Path:
    """Resemblyzer's pretrained.pt, found without importing the package."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "speaker encoder weights not found: they ship with the PyPI package Resemblyzer "
            "(pip install Resemblyzer) as resemblyzer/pretrained.pt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"speaker encoder weights not found at {path}: reinstall the PyPI package "
            "Resemblyzer, which ships them as resemblyzer/pretrained.pt"
        )
    return path


class DVector(nn.Module):
    """GE2E encoder: mel frames -> L2-normalised embedding of their last LSTM state."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, num_layers=3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_DIM)

    def forward(self, mels: Tensor) -> Tensor:
        """mels: (batch, frames, N_MELS) -> (batch, EMBEDDING_DIM)."""
        _, (hidden, _) = self.lstm(mels)
        return F.normalize(F.relu(self.linear(hidden[-1])), dim=-1)


class SpeakerEncoder:
    """Embeds 16 kHz reference speech; the weights are loaded once, at construction."""

    def __init__(self, weights: str | Path | None = None) -> None:
        path = default_weights() if weights is None else Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"speaker encoder weights not found at {path}")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        self.net = DVector().eval()
        state = checkpoint["model_state"]
        self.net.load_state_dict({name: state[name] for name in self.net.state_dict()})

    @torch.inference_mode()
    def embed(self, wav: np.ndarray | Tensor) -> Tensor:
        """(EMBEDDING_DIM,) L2-normalised embedding of mono speech at 16 kHz (a few seconds of
        speech without long pauses works best)."""
        wav = torch.as_tensor(wav, dtype=torch.float32)
        if wav.ndim != 1 or wav.numel() == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {tuple(wav.shape)}")
        rms = wav.square().mean().sqrt()
        if rms == 0:
            raise ValueError("the reference audio is silent")
        gain = 10 ** (TARGET_DBFS / 20) / rms
        if gain > 1:
            wav = wav * gain
        starts = partial_starts(len(wav))
        wav = F.pad(wav, (0, max(0, (starts[-1] + PARTIAL_FRAMES) * HOP - len(wav))))
        mel = mel_spectrogram(wav)
        partials = torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        return F.normalize(self.net(partials).mean(0), dim=0)
