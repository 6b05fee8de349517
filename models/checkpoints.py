"""Model checkpoints: one safetensors file per module plus config.json.

A checkpoint directory holds `<name>.safetensors` for each saved module and `config.json` with
the format version, the model configuration (S2SConfig.to_dict() or ASRConfig.to_dict()), the
module names and any extra metadata (training step, metrics, ...). Files are written to a
temporary name and renamed, config.json last, so an interrupted save never leaves a
half-written file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.config import S2SConfig

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
SUFFIX = ".safetensors"
SHOWN = 5
"""Problems of each kind listed in an error message."""


class SavedConfig(Protocol):
    """A model configuration that a checkpoint can hold (S2SConfig, ASRConfig)."""

    def to_dict(self) -> dict[str, Any]: ...


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the module loaded into."""


def _write(path: Path, write: Callable[[Path], object]) -> None:
    """Call write(temporary path), then move the result to `path`."""
    temporary = path.with_name(f".{path.name}.partial")
    write(temporary)
    os.replace(temporary, path)


def _tensors(module: nn.Module, storage_dtype: torch.dtype | None) -> dict[str, Tensor]:
    """The module's state as contiguous CPU tensors that share no memory (tied weights are
    stored once per name), floating-point ones cast to `storage_dtype` when given."""
    tensors: dict[str, Tensor] = {}
    storages: set[int] = set()
    for key, value in module.state_dict().items():
        tensor = value.detach().cpu()
        if storage_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(storage_dtype)
        tensor = tensor.contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return tensors


def save_checkpoint(
    directory: str | Path,
    modules: dict[str, nn.Module],
    config: SavedConfig,
    extra: dict[str, Any] | None = None,
    storage_dtype: torch.dtype | None = None,
) -> Path:
    """Write each module to `<name>.safetensors` and the config to config.json in `directory`
    (created if needed); returns the directory. `extra` must be JSON-serialisable.
    `storage_dtype` (e.g. torch.float16) halves a shipped checkpoint; loading casts back to
    the module's own dtype."""
    for name in modules:
        if not name or name.startswith(".") or Path(name).name != name:
            raise ValueError(f"module name {name!r} is not a plain file name")
    manifest = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "modules": list(modules),
            "extra": extra or {},
        },
        indent=2,
        ensure_ascii=False,
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        tensors = _tensors(module, storage_dtype)
        _write(directory / f"{name}{SUFFIX}", lambda path, t=tensors: save_file(t, path))
    _write(directory / CONFIG_FILE, lambda path: path.write_text(manifest, encoding="utf-8"))
    return directory


def _manifest(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG_FILE} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this code reads {FORMAT_VERSION}"
        )
    return manifest


def load_config_data(directory: str | Path) -> dict[str, Any]:
    """The model configuration a checkpoint was saved with, as its to_dict() wrote it."""
    config = _manifest(directory).get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{directory}: {CONFIG_FILE} holds no model config")
    return config


def load_config(directory: str | Path) -> S2SConfig:
    """The S2S model configuration a checkpoint was saved with."""
    manifest = _manifest(directory)
    try:
        return S2SConfig.from_dict(manifest["config"])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{directory}: invalid model config: {error!r}") from error


def load_extra(directory: str | Path) -> dict[str, Any]:
    """The extra metadata a checkpoint was saved with ({} if none)."""
    return _manifest(directory).get("extra", {})


def _listing(kind: str, items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {kind}: {shown}{more}"


def load_state(
    directory: str | Path, name: str, module: nn.Module, added: tuple[str, ...] = ()
) -> None:
    """Load `<name>.safetensors` from a checkpoint into `module`. Names and shapes are checked
    first: every missing key, unexpected key and shape mismatch is reported in one
    CheckpointError, and the module is left untouched. `added`: keys that the module may hold
    beside the checkpoint's (parts a new run adds; they keep their initial values)."""
    manifest = _manifest(directory)
    path = Path(directory) / f"{name}{SUFFIX}"
    names = manifest.get("modules", [])
    if name not in names:
        raise CheckpointError(
            f"checkpoint {directory} has no module {name!r} (it has: {', '.join(names) or 'none'})"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} lists module {name!r} but {path} is missing")
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error
    expected = module.state_dict()
    missing = [key for key in expected if key not in state and key not in added]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} (checkpoint {tuple(state[key].shape)}, module {tuple(expected[key].shape)})"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = [
        _listing(kind, items)
        for kind, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            f"{path} does not fit {type(module).__name__}: " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=not added)
