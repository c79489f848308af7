"""The shared training engine: one loop, every method (DESIGN.md §6)."""

from mixlab.engine.checkpoint import load_checkpoint, save_checkpoint
from mixlab.engine.device import AMP_CHOICES, Precision, device_description, resolve_device
from mixlab.engine.distributed import DistInfo
from mixlab.engine.method import Method, Runtime, StepOutput, TrainProgress
from mixlab.engine.schedule import warmup_multistep, warmup_multistep_factor
from mixlab.engine.trainer import RunOptions, Trainer, TrainingDiverged

__all__ = [
    "AMP_CHOICES",
    "DistInfo",
    "Method",
    "Precision",
    "RunOptions",
    "Runtime",
    "StepOutput",
    "Trainer",
    "TrainProgress",
    "TrainingDiverged",
    "device_description",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "warmup_multistep",
    "warmup_multistep_factor",
]
