"""Recognizer checkpoints: `asr.safetensors` + config.json (models.checkpoints)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from models.asr.config import ASRConfig
from models.asr.model import Recognizer
from models.checkpoints import (
    CheckpointError,
    load_config_data,
    load_extra,
    load_state,
    save_checkpoint,
)

MODULE = "asr"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "asr"
"""The trained recognizer that ships with the code (`make asr-model`)."""


def save_recognizer(
    directory: str | Path,
    model: Recognizer,
    extra: dict[str, Any] | None = None,
    storage_dtype: torch.dtype | None = None,
) -> Path:
    """Write the recognizer and its config (with its alphabet) to `directory`."""
    return save_checkpoint(directory, {MODULE: model}, model.config, extra, storage_dtype)


def load_config_asr(directory: str | Path) -> ASRConfig:
    """The recognizer configuration a checkpoint was saved with."""
    try:
        return ASRConfig.from_dict(load_config_data(directory))
    except TypeError as error:
        raise CheckpointError(f"{directory} does not hold a recognizer: {error}") from error


def load_recognizer(directory: str | Path = SHIPPED) -> Recognizer:
    """The recognizer of a checkpoint, in float32 and eval mode."""
    model = Recognizer(load_config_asr(directory))
    load_state(directory, MODULE, model)
    return model.eval()


def is_recognizer(directory: str | Path) -> bool:
    """Whether a checkpoint directory holds a recognizer."""
    return (Path(directory) / f"{MODULE}.safetensors").is_file()


def export_recognizer(
    source: str | Path, target: str | Path, storage_dtype: torch.dtype | None
) -> Path:
    """Re-save a recognizer for shipping (e.g. float16 storage)."""
    extra = {**load_extra(source), "exported_from": Path(source).name}
    return save_recognizer(target, load_recognizer(source), extra, storage_dtype)


def recognizer_sha256(directory: str | Path = SHIPPED) -> str:
    """Fingerprint of a recognizer checkpoint's weights file (what an S2S checkpoint trained
    on its hearing records)."""
    return hashlib.sha256((Path(directory) / f"{MODULE}.safetensors").read_bytes()).hexdigest()
