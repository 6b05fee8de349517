"""Training utilities shared by the trainers: device and AMP choice, seeding, AdamW parameter
groups, the learning-rate schedule, resumable train state, the CSV log and the progress bar.

A trainer's output directory holds the model checkpoint (models.checkpoints) and
`train_state.pt`: the step, every module's and optimizer's and scheduler's state, the RNG
states and trainer extras, written atomically, so a run resumes exactly where it was saved.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

if TYPE_CHECKING:
    from tqdm import tqdm

TRAIN_STATE = "train_state.pt"
LOG_FILE = "log.csv"


def select_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when available, else CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but torch sees no CUDA device")
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix kernels (oneDNN on AVX512-BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(device: torch.device, cpu_bf16: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no grad scaler needed); on CPU only with `cpu_bf16` and a CPU
    with native bf16 kernels (emulated bf16 would be slower than fp32), else fp32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16 and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parameter_groups(
    module: nn.Module, weight_decay: float, exclude: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices and kernels; none on biases, gains and on the
    parameters whose name contains one of `exclude` (e.g. VQ codebooks)."""
    exclude = tuple(exclude)
    decay, no_decay = [], []
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        skip = parameter.ndim < 2 or any(part in name for part in exclude)
        (no_decay if skip else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, final_fraction: float = 0.1
) -> LambdaLR:
    """Linear warm-up to the optimizer's lr over `warmup_steps`, then cosine decay to
    `final_fraction` of it at `total_steps` (and constant after)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(
    directory: str | Path,
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, LRScheduler] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write everything a resumed run needs to `directory`/train_state.pt, atomically.
    `extra` may hold tensors, numbers, strings and containers of them."""
    state = {
        "step": step,
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: sched.state_dict() for name, sched in (schedulers or {}).items()},
        "rng": _rng_state(),
        "extra": dict(extra or {}),
    }
    path = Path(directory) / TRAIN_STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


@dataclass
class ResumedState:
    """What restore_train_state restored."""

    step: int
    extra: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    """Names asked for that the saved state lacks (left as they were)."""


def read_train_state(directory: str | Path) -> dict[str, Any]:
    """The raw contents of `directory`/train_state.pt (tensors on the CPU)."""
    return torch.load(Path(directory) / TRAIN_STATE, map_location="cpu", weights_only=True)


def restore_train_state(
    state: Mapping[str, Any],
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, LRScheduler] | None = None,
) -> ResumedState:
    """Load modules, optimizers, schedulers and the global RNG from a read_train_state."""
    missing = []
    for kind, targets in (
        ("modules", modules),
        ("optimizers", optimizers),
        ("schedulers", schedulers or {}),
    ):
        for name, target in targets.items():
            if name in state[kind]:
                target.load_state_dict(state[kind][name])
            else:
                missing.append(f"{kind}.{name}")
    _set_rng_state(state["rng"])
    return ResumedState(step=int(state["step"]), extra=dict(state["extra"]), missing=missing)


def load_train_state(
    directory: str | Path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, LRScheduler] | None = None,
) -> ResumedState:
    """read_train_state, then restore_train_state."""
    return restore_train_state(read_train_state(directory), modules, optimizers, schedulers)


class CsvLog:
    """Rows of training metrics appended to a CSV file with a fixed header.

    A fresh log (`resume_step` None) starts with the header. A resumed one keeps the rows up to
    `resume_step` and drops the later ones, which the resumed run logs again.
    """

    def __init__(self, path: str | Path, fields: Iterable[str], resume_step: int | None) -> None:
        self.path = Path(path)
        self.fields = list(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= resume_step]
        temporary = self.path.with_name(f".{self.path.name}.partial")
        with open(temporary, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.fields, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        os.replace(temporary, self.path)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row; floats with 6 significant digits, missing fields empty."""
        values = {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields, restval="", extrasaction="ignore").writerow(values)


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The rows of a CSV log as floats (empty cells left out)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


class Averages:
    """Running means of named values between two log points."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
            self._counts[name] = self._counts.get(name, 0) + 1

    def pop(self) -> dict[str, float]:
        """The means since the last pop, then start over."""
        means = {name: total / self._counts[name] for name, total in self._sums.items()}
        self._sums.clear()
        self._counts.clear()
        return means


def progress_bar(total: int, initial: int, enabled: bool = True) -> tqdm:
    """A tqdm bar over training steps (on stderr)."""
    from tqdm import tqdm  # a training extra: building the CLI must not need it

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def describe(values: Mapping[str, float]) -> str:
    """Compact "name=value" text for a progress bar."""
    return " ".join(f"{name}={value:.3g}" for name, value in values.items())


def set_threads(threads: int) -> None:
    """Use `threads` torch CPU threads (0: leave torch's choice). One thread trains faster
    than two beside another busy process on a 2-core machine (OpenMP workers spin)."""
    if threads:
        torch.set_num_threads(threads)


def run_result(
    last: Mapping[str, float], start: int, steps: int, elapsed_s: float, **extra: Any
) -> dict[str, Any]:
    """What a `train` recipe returns: the last logged means, `extra` (validation metrics,
    example counts), the step reached and the steps per second of this call."""
    ran = max(0, steps - start)
    return {
        **last,
        **extra,
        "step": max(start, steps),
        "steps_per_second": ran / elapsed_s if ran else 0.0,
    }


def add_run_options(p: argparse.ArgumentParser, log_every: int, save_every: int) -> None:
    """The options every `telugu-s2s train` recipe shares: device, resume, logging, seed."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--log-every", type=int, default=log_every, help="steps per log.csv row")
    p.add_argument("--save-every", type=int, default=save_every, help="steps between checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--log-level", default="warning")
