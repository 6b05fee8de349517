"""Model configurations as dataclasses, with named presets.

`seed` has the design document's sizes (a GPU model); `demo` is small enough that codec,
encoder and decoder stream faster than real time for one call on 2 CPU cores.

Time units: the codec makes one frame of `num_quantizers` codes every `hop` samples (5 ms at
16 kHz). The S2S transformer works on *steps* of `frames_per_step` codec frames: the encoder
sums the codebook embeddings of each frame and stacks the frames of a step; the decoder emits
the codes of all the frames of a step at once (parallel heads, codebook delay pattern).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from models.controls import EMOTIONS, SPEAKERS


@dataclass(frozen=True)
class CodecConfig:
    """TeluCodec: causal conv encoder, residual VQ, and a causal decoder: transposed convs
    ("conv") or a frame-rate ConvNeXt with an inverse-STFT head ("istft")."""

    sample_rate: int = 16_000
    channels: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    """Output channels of the encoder's six conv stages (the decoder mirrors them)."""
    strides: tuple[int, ...] = (1, 2, 2, 2, 5, 2)
    kernel_sizes: tuple[int, ...] = (7, 7, 7, 7, 7, 3)
    residual_units: int = 1
    """Residual units (dilated causal convs) after each downsampling stage."""
    latent_dim: int = 1024
    num_quantizers: int = 8
    codebook_size: int = 1024
    commitment_weight: float = 0.25
    orthogonal_reg_weight: float = 0.1
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    quantizer_dropout: float = 0.5
    """Share of training batches that use a random 1..num_quantizers levels (the others use
    all of them, so the finest levels train on more than 1/num_quantizers of the batches)."""
    decoder: str = "conv"
    """"conv" (mirror of the encoder) or "istft" (the istft_* sizes below)."""
    istft_dim: int = 256
    """Channels of the istft decoder's ConvNeXt blocks."""
    istft_blocks: int = 4
    istft_n_fft: int = 320
    """STFT frame of the istft decoder: a multiple of hop; adds n_fft - hop samples of delay."""

    @property
    def hop(self) -> int:
        """Samples per codec frame."""
        return math.prod(self.strides)

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop

    @property
    def bits_per_code(self) -> int:
        return math.ceil(math.log2(self.codebook_size))

    def bitrate_bps(self, levels: int | None = None) -> float:
        """Bits per second when decoding from the first `levels` quantizers (all by default)."""
        levels = self.num_quantizers if levels is None else levels
        return self.frame_rate_hz * levels * self.bits_per_code


@dataclass(frozen=True)
class EncoderConfig:
    """Streaming Conformer encoder over codec frames."""

    layers: int = 12
    dim: int = 768
    heads: int = 12
    conv_kernel: int = 31
    ff_mult: int = 4
    window_ms: int = 100
    """Left context of each attention query (sliding window)."""
    chunk_ms: int = 20
    """Steps are processed in chunks of this length; a query sees its whole chunk."""
    lookahead_ms: int = 20
    """Future input the encoder waits for before it processes a chunk."""
    dropout: float = 0.1


@dataclass(frozen=True)
class DecoderConfig:
    """GPT-style decoder with KV cache and cross-attention to the encoder output."""

    layers: int = 12
    dim: int = 768
    heads: int = 12
    mlp_ratio: int = 4
    max_steps: int = 2048
    """Longest answer, in decoder steps."""
    codebook_delays: tuple[int, ...] = (0, 1, 1, 1, 1, 1, 1, 1)
    """Decoder positions by which each codebook lags (models.s2s.delay): partial delay, so
    a step's audio exists two positions after it starts."""
    dropout: float = 0.1


@dataclass(frozen=True)
class TextConfig:
    """The text streams inside the transformer (Moshi's inner monologue, and the user's words).

    The user's words, as the streaming recognizer hears them and the tokenizer cuts them, join
    the decoder's memory beside the encoder's acoustic steps; the decoder emits one text token
    per step (a piece of the answer, or PAD) in parallel with the step's coarse codes, and reads
    it back at the next step. `vocab_size` 0 is the codes-only model of the design document."""

    vocab_size: int = 0
    """Tokenizer pieces (models.text); 0 = no text streams."""
    lead_steps: int = 2
    """In training, a word's first piece sits this many steps before its audio starts, so the
    audio of a step is predicted from text already emitted."""
    max_user_tokens: int = 96
    """Longest user turn, in pieces (older pieces are dropped)."""
    text_weight: float = 1.0
    """Weight of the text stream's cross-entropy beside the codes' mean cross-entropy."""
    copy_pieces: bool = False
    """A copy path for saying the user's words back (`models.s2s.piece_signatures`): each
    user piece's memory entry carries a fixed random signature of the piece, and the text
    output also scores every piece by that signature."""
    follow_pieces: bool = False
    """With `copy_pieces`: each memory entry also carries the signature of the user's piece
    before it (turned by a fixed rotation), and the text stream reads back the signature of
    the piece it just said, so that the decoder finds the user's next piece by the one it
    just said (an induction head made easy; `models.s2s.piece_signatures`)."""

    def __post_init__(self) -> None:
        if self.follow_pieces and not self.copy_pieces:
            raise ValueError("follow_pieces needs copy_pieces")

    @property
    def enabled(self) -> bool:
        return self.vocab_size > 0


@dataclass(frozen=True)
class S2SConfig:
    """The whole model: codec, encoder, decoder, and how they meet."""

    name: str
    codec: CodecConfig = field(default_factory=CodecConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    frames_per_step: int = 2
    """Codec frames per transformer step (2 = 10 ms steps at the seed's 200 Hz codec)."""
    speakers: tuple[str, ...] = tuple(SPEAKERS)
    emotions: tuple[str, ...] = EMOTIONS
    speaker_embedding_dim: int = 256
    """Size of the zero-shot speaker embedding mapped into the speaker space."""
    text: TextConfig = field(default_factory=TextConfig)

    @property
    def step_ms(self) -> float:
        return 1000.0 * self.frames_per_step / self.codec.frame_rate_hz

    def steps(self, ms: float) -> int:
        """A duration in whole transformer steps (at least 1 for a positive duration)."""
        return max(1, round(ms / self.step_ms)) if ms > 0 else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> S2SConfig:
        """Inverse of to_dict (lists back to tuples)."""

        def tuples(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        return cls(
            name=data["name"],
            codec=CodecConfig(**tuples(data["codec"])),
            encoder=EncoderConfig(**tuples(data["encoder"])),
            decoder=DecoderConfig(**tuples(data["decoder"])),
            frames_per_step=data["frames_per_step"],
            speakers=tuple(data["speakers"]),
            emotions=tuple(data["emotions"]),
            speaker_embedding_dim=data["speaker_embedding_dim"],
            text=TextConfig(**data.get("text", {})),
        )


SEED = S2SConfig(name="seed", text=TextConfig(vocab_size=512))

DEMO = S2SConfig(
    name="demo",
    codec=CodecConfig(
        channels=(16, 32, 48, 64, 96, 128),
        latent_dim=128,
        num_quantizers=8,
        codebook_size=256,  # 12.8 kbps; keeps the shipped checkpoint under 25 MiB
    ),
    encoder=EncoderConfig(layers=4, dim=192, heads=4, conv_kernel=15, ff_mult=2),
    decoder=DecoderConfig(layers=4, dim=256, heads=4, mlp_ratio=3, max_steps=1024),
    frames_per_step=4,
    text=TextConfig(vocab_size=512),
)

PRESETS: dict[str, S2SConfig] = {"seed": SEED, "demo": DEMO}


def preset(name: str) -> S2SConfig:
    """The preset called `name`; ValueError lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def with_copy_pieces(config: S2SConfig, copy: bool = True, follow: bool = False) -> S2SConfig:
    """`config` with the copy path (`TextConfig.copy_pieces`) turned on when `copy` or
    `follow`, and `TextConfig.follow_pieces` when `follow`."""
    if not (copy or follow):
        return config
    text = replace(config.text, copy_pieces=True, follow_pieces=config.text.follow_pieces or follow)
    return replace(config, text=text)
