"""Device choice, mixed precision and memory format: the runtime knobs every method shares."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mixlab.errors import ConfigError

AMP_CHOICES = ("off", "bf16", "fp16")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' picks CUDA (this process's local GPU under torchrun), then MPS, then CPU."""
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps was asked for but MPS is not available on this machine")
    return device


def configure_backends(device: torch.device) -> None:
    """Backend switches for speed on ``device``: cuDNN autotuning on CUDA (the convolution shapes of a training run
    are fixed, so the first steps' search pays off), unless deterministic algorithms were asked for."""
    if device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True


@dataclass(frozen=True)
class Precision:
    """Autocast settings: bf16 needs no loss scaling, fp16 gets a GradScaler."""

    mode: str
    device: torch.device

    def __post_init__(self) -> None:
        if self.mode not in AMP_CHOICES:
            raise ConfigError(f"--amp must be one of {', '.join(AMP_CHOICES)}, not {self.mode!r}")

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.mode == "fp16")


def device_description(device: torch.device) -> str:
    """Human-readable hardware name, recorded in summary.json next to every result."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import os
    import platform

    return (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    )
