"""Building the models of a preset, with trained weights from a checkpoint when given."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoints import load_config, load_extra, load_state, save_checkpoint
from models.codec import TeluCodec
from models.config import S2SConfig, preset
from models.s2s.decoder import StreamingDecoder
from models.s2s.encoder import StreamingEncoder

log = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "demo"
"""The shipped demo model (`make demo-model` makes it; see its MODEL_CARD.md)."""


@dataclass
class Models:
    """The three networks of one configuration, in eval mode."""

    config: S2SConfig
    codec: TeluCodec
    encoder: StreamingEncoder
    decoder: StreamingDecoder
    trained: bool


def build(config: S2SConfig, device: str | torch.device = "cpu", seed: int = 0) -> Models:
    """Randomly initialised models (deterministic for `seed`), for latency work and training."""
    torch.manual_seed(seed)
    return Models(
        config=config,
        codec=TeluCodec(config.codec).to(device).eval(),
        encoder=StreamingEncoder(config).to(device).eval(),
        decoder=StreamingDecoder(config).to(device).eval(),
        trained=False,
    )


def load(
    checkpoint: str | Path | None, preset_name: str = "demo", device: str | torch.device = "cpu"
) -> Models:
    """The models of a checkpoint directory, or of a preset with random weights when
    `checkpoint` is None (the answers are noise then: only the latency path is real)."""
    if checkpoint is None:
        log.warning("no checkpoint: %s preset with untrained weights", preset_name)
        return build(preset(preset_name), device)
    config = load_config(checkpoint)
    models = build(config, device)
    for name in ("codec", "encoder", "decoder"):
        load_state(checkpoint, name, getattr(models, name))
    models.trained = True
    return models


def export(
    source: str | Path,
    target: str | Path,
    storage_dtype: torch.dtype | None,
    codec: str | Path | None = None,
) -> Path:
    """Re-save a checkpoint for shipping (e.g. float16 storage: half the bytes); the result
    loads with `load` like the original.

    `codec`: take the codec from this checkpoint instead, one whose decoder alone was trained
    further (`train codec --decoder-only`): its encoder and quantizer must be the source's,
    so that it gives the codes the S2S model was trained on."""
    models = load(source)
    extra = {**load_extra(source), "exported_from": Path(source).name}
    if codec is not None:
        replacement = TeluCodec(load_config(codec).codec)
        load_state(codec, "codec", replacement)
        _check_same_codes(models.codec, replacement, codec)
        models.codec = replacement
        extra["codec_from"] = Path(codec).name
    return save_checkpoint(
        target,
        {"codec": models.codec, "encoder": models.encoder, "decoder": models.decoder},
        models.config,
        extra=extra,
        storage_dtype=storage_dtype,
    )


def _check_same_codes(codec: TeluCodec, other: TeluCodec, name: str | Path) -> None:
    """Raise unless `other` has `codec`'s encoder and quantizer weights, exactly."""
    theirs = other.state_dict()
    for key, value in codec.state_dict().items():
        if key.startswith(("encoder.", "quantizer.")) and not (
            key in theirs and torch.equal(value, theirs[key])
        ):
            raise ValueError(
                f"the codec of {name} encodes differently ({key} differs): only a codec whose "
                "decoder alone was trained further can replace the one the S2S model knows"
            )
