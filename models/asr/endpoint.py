"""The content end-of-turn head ("endpointing"): in a pause, is the user's turn over?

The silence rule has to wait out the longest pause people make inside a turn (576 ms). What was
said before a pause tells more: a pause after a filler ("అంటే...") or a clause that goes on is
not an end; one after a finished request is. The head judges each window of a pause from

- the recognizer's GRU output at the end of the speech before the pause (what was said),
- the log-mel of the last `tail_frames` of that speech, pooled (how the voice fell),
- the silence so far,

with one small MLP. `Endpointer` runs it on a stream, window by window, exactly as training
saw it (models/train/endpoint.py streams the corpus through the same class), so what the agent
computes in a call is what the head was fitted and measured on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.asr.checkpoint import SHIPPED as SHIPPED_RECOGNIZER
from models.asr.checkpoint import recognizer_sha256
from models.asr.features import LogMel
from models.checkpoints import CheckpointError, load_config_data, load_state, save_checkpoint
from models.speech.audio import MODEL_RATE
from models.speech.turns import TurnConfig, TurnDetector

MODULE = "endpoint"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "endpoint"
"""The trained head that ships with the code (`make endpoint-model`), for the shipped
recognizer."""
PAUSES = TurnConfig(min_silence_ms=1 << 30)
"""The detector that counts a pause: the agent's hysteresis, where only speech ends it."""


@dataclass(frozen=True)
class EndpointConfig:
    """Sizes of the head and the operating point chosen for it (docs/benchmarks.md)."""

    hidden: int
    """The recognizer's GRU width."""
    mels: int
    """The recognizer's log-mel bands."""
    window: int
    """The recognizer's STFT window (samples)."""
    hop: int
    """The recognizer's feature hop (samples)."""
    recognizer_sha256: str
    """Of the recognizer whose outputs the head was fitted on (it refuses another)."""
    tail_frames: int = 50
    """Log-mel frames (10 ms) of the speech before a pause that the head sees."""
    pool: int = 5
    """Frames averaged into one."""
    units: int = 64
    """Hidden units of the MLP."""
    threshold: float = 0.98
    """Probability at or above which the agent ends the turn (the operating point chosen
    from `train endpoint`'s curve, docs/benchmarks.md)."""
    min_silence_ms: int = 96
    """Silence before the head may end a turn."""
    max_silence_ms: int = 1200
    """The silence rule beside the head: a turn ends after this much silence anyway."""

    @property
    def inputs(self) -> int:
        return self.hidden + self.tail_frames // self.pool * self.mels + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointConfig:
        return cls(**data)

    def turns(self, base: TurnConfig) -> TurnConfig:
        """`base` with the head's operating point (what `--eot content` runs)."""
        return replace(
            base,
            min_silence_ms=self.max_silence_ms,
            eot="content",
            eot_threshold=self.threshold,
            model_min_silence_ms=self.min_silence_ms,
        )


class EndpointHead(nn.Module):
    """Standardised inputs -> Linear -> ReLU -> Linear -> the logit of "the turn is over"."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.inputs))
        self.register_buffer("std", torch.ones(config.inputs))
        self.net = nn.Sequential(
            nn.Linear(config.inputs, config.units), nn.ReLU(), nn.Linear(config.units, 1)
        )

    def forward(self, inputs: Tensor) -> Tensor:
        """(n, inputs) raw features -> (n,) logits."""
        return self.net((inputs - self.mean) / self.std)[:, 0]

    @torch.inference_mode()
    def probability(self, inputs: np.ndarray) -> float:
        return float(torch.sigmoid(self(torch.from_numpy(inputs)[None]))[0])


class Endpointer:
    """One stream's pauses, as the head sees them: `features` gives the head's inputs per
    window (None outside a pause)."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._features = LogMel(config.window, config.hop, config.mels, MODEL_RATE)
        self._detector = TurnDetector(PAUSES)
        self._tail = np.zeros(
            config.tail_frames * config.hop + config.window - config.hop, np.float32
        )
        """The audio before the current window (the speech before a pause once it begins)."""
        self._context: np.ndarray | None = None
        """What was said and how, at the start of the pause in progress."""

    def features(
        self, prob: float, pcm: np.ndarray, spoken: Callable[[], Tensor | None]
    ) -> np.ndarray | None:
        """The head's inputs after the window `pcm` whose speech probability is `prob`, or
        None outside a pause. `spoken` is asked once per pause, at its first window: the
        recognizer's latest output having heard the stream up to this window (None: nothing
        heard yet)."""
        self._detector.update(prob, 0.0)
        pause = self._detector.pause()
        if pause is None:
            self._context = None
        elif self._context is None:  # the pause's first window
            self._context = self._describe(spoken())
        self._push(pcm)
        if self._context is None:
            return None
        silence = np.array([pause.silence_ms / 1000.0], np.float32)
        return np.concatenate([self._context, silence])

    def _describe(self, output: Tensor | None) -> np.ndarray:
        said = np.zeros(self.config.hidden, np.float32) if output is None else output.numpy()
        with torch.inference_mode():
            mel = self._features.frames(torch.from_numpy(self._tail)[None])[0]
        c = self.config
        pooled = mel[-c.tail_frames :].reshape(c.tail_frames // c.pool, c.pool, -1).mean(1)
        return np.concatenate([said.astype(np.float32), pooled.flatten().numpy()])

    def _push(self, pcm: np.ndarray) -> None:
        n = len(pcm)
        if n >= len(self._tail):
            self._tail[:] = pcm[-len(self._tail) :]
        else:
            self._tail[:-n] = self._tail[n:]
            self._tail[-n:] = pcm


def save_endpoint(directory: str | Path, head: EndpointHead, extra: dict[str, Any]) -> Path:
    return save_checkpoint(directory, {MODULE: head}, head.config, extra)


def load_endpoint(
    directory: str | Path = SHIPPED, recognizer: str | Path | None = SHIPPED_RECOGNIZER
) -> EndpointHead:
    """The head of a checkpoint, in eval mode; CheckpointError when it was fitted on another
    recognizer than `recognizer` (None: not checked)."""
    try:
        config = EndpointConfig.from_dict(load_config_data(directory))
    except TypeError as error:
        raise CheckpointError(f"{directory} does not hold an end-of-turn head: {error}") from error
    if recognizer is not None and config.recognizer_sha256 != recognizer_sha256(recognizer):
        raise CheckpointError(
            f"{directory} was fitted on another recognizer's outputs than {recognizer}'s "
            "(`telugu-s2s train endpoint` fits it again)"
        )
    head = EndpointHead(config)
    load_state(directory, MODULE, head)
    return head.eval()
