"""The shared training engine: one loop, every method (DESIGN.md §6)."""

from mixlab.engine.checkpoint import load_checkpoint, save_checkpoint
from mixlab.engine.device import AMP_CHOICES, Precision, device_description, resolve_device
from mixlab.engine.distributed import DistInfo
from mixlab.engine.method import Method, Phase, Runtime, StepOutput, TrainProgress, budget_steps
from mixlab.engine.optimization import Optimization, OptimizerSpec, make_optimizer, no_sync
from mixlab.engine.schedule import (
    check_epoch_window,
    cosine_horizon,
    cosine_horizon_factor,
    in_epoch_window,
    poly_factor,
    warmup_multistep,
    warmup_multistep_factor,
)
from mixlab.engine.trainer import RunOptions, Trainer, TrainingDiverged

__all__ = [
    "AMP_CHOICES",
    "DistInfo",
    "Method",
    "Optimization",
    "OptimizerSpec",
    "Phase",
    "Precision",
    "RunOptions",
    "Runtime",
    "StepOutput",
    "Trainer",
    "TrainProgress",
    "TrainingDiverged",
    "budget_steps",
    "check_epoch_window",
    "cosine_horizon",
    "cosine_horizon_factor",
    "in_epoch_window",
    "poly_factor",
    "no_sync",
    "device_description",
    "load_checkpoint",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "warmup_multistep",
    "warmup_multistep_factor",
]
