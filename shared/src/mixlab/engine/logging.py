"""metrics.jsonl (always) and TensorBoard scalars (when tensorboard is installed), written by rank 0 only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixlab.engine import rundir


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            flat.update({f"{name}/{i}": float(v) for i, v in enumerate(value)})
    return flat


class MetricLogger:
    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / rundir.METRICS
        self.enabled = enabled
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package
            except ImportError:
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rundir.append_jsonl(self.path, record)
        if self.writer is not None:
            step = int(record.get("step", 0))
            for name, value in _flatten(record).items():
                if name not in ("step",):
                    self.writer.add_scalar(name, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
