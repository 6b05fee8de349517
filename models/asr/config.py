"""The recognizer's sizes as a dataclass, with named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ASRConfig:
    """Log-mel features -> causal conv front end -> unidirectional GRU stack -> CTC head."""

    name: str
    sample_rate: int = 16_000
    hop: int = 160
    """Samples per feature frame (10 ms)."""
    window: int = 400
    """Samples per STFT window (25 ms)."""
    mels: int = 80
    channels: int = 192
    """Output channels of each causal conv of the front end."""
    kernel_size: int = 3
    strides: tuple[int, ...] = (2, 2)
    """Stride of each front-end conv: their product is the subsampling (4 = 40 ms frames)."""
    hidden: int = 288
    layers: int = 3
    dropout: float = 0.1
    letters: tuple[str, ...] = ()
    """The CTC labels 1.. (0 is the blank, len(letters) + 1 is `<unk>`): the normalised
    characters of the training transcripts, set by the trainer."""

    @property
    def subsampling(self) -> int:
        result = 1
        for stride in self.strides:
            result *= stride
        return result

    @property
    def frame_s(self) -> float:
        """Seconds per output frame."""
        return self.hop * self.subsampling / self.sample_rate

    @property
    def vocab_size(self) -> int:
        """Blank, letters, `<unk>`."""
        return len(self.letters) + 2

    def with_letters(self, letters: tuple[str, ...]) -> ASRConfig:
        return replace(self, letters=tuple(letters))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ASRConfig:
        """Inverse of to_dict (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


DEMO = ASRConfig(name="demo")
TINY = ASRConfig(name="tiny", channels=32, hidden=48, layers=1, mels=40)
"""For tests: trains in seconds."""

PRESETS: dict[str, ASRConfig] = {"demo": DEMO, "tiny": TINY}


def asr_preset(name: str) -> ASRConfig:
    """The preset called `name`; ValueError lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown ASR preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
