"""Building the models of a preset, with trained weights from a checkpoint when given."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.asr.checkpoint import load_recognizer, recognizer_sha256
from models.asr.model import Recognizer
from models.checkpoints import load_config, load_extra, load_state, save_checkpoint
from models.codec import TeluCodec
from models.config import S2SConfig, preset
from models.s2s.decoder import StreamingDecoder
from models.s2s.encoder import StreamingEncoder
from models.text.tokenizer import Tokenizer

TOKENIZER_DIR = "tokenizer"
"""A checkpoint's copy of the tokenizer its text streams were trained with."""

log = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "demo"
"""The shipped demo model (`make demo-model` makes it; see its MODEL_CARD.md)."""


@dataclass
class Models:
    """The three networks of one configuration, in eval mode, and what its text streams
    need: the tokenizer they were trained with and the recognizer that hears the user."""

    config: S2SConfig
    codec: TeluCodec
    encoder: StreamingEncoder
    decoder: StreamingDecoder
    trained: bool
    tokenizer: Tokenizer | None = None
    """The text streams' tokenizer (None for a codes-only model)."""
    recognizer: Recognizer | None = None
    """The streaming recognizer whose words feed the user text stream (None for a codes-only
    model)."""


def build(config: S2SConfig, device: str | torch.device = "cpu", seed: int = 0) -> Models:
    """Randomly initialised models (deterministic for `seed`), for latency work and training."""
    torch.manual_seed(seed)
    text = config.text.enabled
    return Models(
        config=config,
        codec=TeluCodec(config.codec).to(device).eval(),
        encoder=StreamingEncoder(config).to(device).eval(),
        decoder=StreamingDecoder(config).to(device).eval(),
        trained=False,
        tokenizer=Tokenizer.load() if text else None,
        recognizer=load_recognizer() if text else None,
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
    if config.text.enabled:
        models.tokenizer, models.recognizer = _text_parts(Path(checkpoint))
    return models


def _text_parts(checkpoint: Path) -> tuple[Tokenizer, Recognizer]:
    """The tokenizer a checkpoint's text streams were trained with (its own copy, checked
    against the sha256 it records) and the shipped recognizer (a warning when the checkpoint
    was trained on another one's hearing)."""
    extra = load_extra(checkpoint)
    recorded = extra.get("tokenizer", {}).get("sha256")
    tokenizer = Tokenizer.load(checkpoint / TOKENIZER_DIR, sha256=recorded)
    trained_with = extra.get("recognizer_sha256")
    if trained_with is not None and trained_with != recognizer_sha256():
        log.warning(
            "%s was trained on the hearing of another recognizer than the shipped one",
            checkpoint,
        )
    return tokenizer, load_recognizer()


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
    return save_models(target, models, extra, storage_dtype)


def save_models(
    directory: str | Path,
    models: Models,
    extra: dict[str, Any] | None = None,
    storage_dtype: torch.dtype | None = None,
) -> Path:
    """Write the three networks, their config and `extra` to a checkpoint directory, with a
    copy of the text streams' tokenizer (recorded in `extra`, so that `load` checks it)."""
    extra = dict(extra or {})
    if models.tokenizer is not None:
        models.tokenizer.save(Path(directory) / TOKENIZER_DIR)
        extra["tokenizer"] = models.tokenizer.record()
    return save_checkpoint(
        directory,
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
