"""`telugu-s2s models info`: sizes and rates of each preset, without allocating weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.codec import TeluCodec
from models.config import PRESETS, S2SConfig
from models.s2s.decoder import StreamingDecoder
from models.s2s.encoder import StreamingEncoder


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(config: S2SConfig) -> dict[str, Any]:
    """Codec, encoder and decoder figures of one configuration."""
    with torch.device("meta"):
        codec, encoder, decoder = (
            TeluCodec(config.codec),
            StreamingEncoder(config),
            StreamingDecoder(config),
        )
    c, e, d = config.codec, config.encoder, config.decoder
    return {
        "codec": {
            "sample_rate": c.sample_rate,
            "frame_rate_hz": c.frame_rate_hz,
            "frame_ms": 1000.0 / c.frame_rate_hz,
            "num_quantizers": c.num_quantizers,
            "codebook_size": c.codebook_size,
            "bitrate_bps": c.bitrate_bps(),
            "params": _params(codec),
        },
        "encoder": {
            "layers": e.layers,
            "dim": e.dim,
            "heads": e.heads,
            "conv_kernel": e.conv_kernel,
            "window_ms": e.window_ms,
            "chunk_ms": e.chunk_ms,
            "lookahead_ms": e.lookahead_ms,
            "params": _params(encoder),
        },
        "decoder": {
            "layers": d.layers,
            "dim": d.dim,
            "heads": d.heads,
            "mlp_ratio": d.mlp_ratio,
            "frames_per_step": config.frames_per_step,
            "step_ms": config.step_ms,
            "params": _params(decoder),
        },
    }


def describe_presets() -> dict[str, Any]:
    """The `models info --json` document."""
    return {"presets": {name: describe(config) for name, config in PRESETS.items()}}
