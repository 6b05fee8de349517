"""Optional speed-ups for inference, each opt-in and tested for equivalence with a tolerance.

- `quantize_int8`: dynamic int8 quantization of Linear layers (CPU). Deprecated in torch in
  favour of torchao. `with_decoder_precision` applies it to a set of models' decoder
  (`serve --decoder-precision int8`): the answering step a fifth faster, the answers' quality
  unchanged, a server's CPU per call unchanged within its scatter (docs/benchmarks.md,
  "The decoder in int8"): an option, not the default.
- `compile_module`: `torch.compile`.
- `to_dtype`: bf16/fp16 weights for GPU inference.
Attention always runs through `scaled_dot_product_attention` (FlashAttention kernels on
Hopper GPUs; the flash-attn package when installed, see models.modules.attention), and the
decoder step can be captured as a CUDA graph (models.s2s.decoder).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # models.loading imports the recognizer and tokenizer: not at import time
    from models.loading import Models

TOLERANCE = {"int8": 5e-2, "compile": 1e-4, "bf16": 5e-2, "fp16": 1e-2}
"""Max abs difference from the float32 eager output that each option is tested against
(relative to outputs of unit scale)."""


def quantize_int8(module: nn.Module) -> nn.Module:
    """A copy of `module` with its Linear layers dynamically quantized to int8 (CPU only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


DECODER_PRECISIONS = ("int8", "float32")
"""What the decoder's Linear weights compute in when answering (`with_decoder_precision`)."""


def with_decoder_precision(models: Models, precision: str) -> Models:
    """The models with their decoder in `precision`: int8 (CPU only: dynamic quantization of
    its Linear layers, the encoder and codec untouched) or float32 (as loaded)."""
    if precision not in DECODER_PRECISIONS:
        raise ValueError(f"decoder precision is one of {', '.join(DECODER_PRECISIONS)}")
    if precision == "float32":
        return models
    if next(models.decoder.parameters()).device.type != "cpu":
        raise ValueError("an int8 decoder runs on the CPU only")
    return dataclasses.replace(models, decoder=quantize_int8(models.decoder))


def compile_module(module: nn.Module, mode: str | None = None) -> nn.Module:
    """`torch.compile(module)`; mode e.g. "reduce-overhead" on GPU (uses CUDA graphs)."""
    return torch.compile(module, mode=mode)


def to_dtype(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast weights for reduced-precision GPU inference (bf16 or fp16)."""
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"reduced precision means bfloat16 or float16, not {dtype}")
    return module.to(dtype)
