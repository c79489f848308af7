"""A rich progress bar with throughput (images/s), loss and ETA; silent on ranks other than 0."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def format_metrics(metrics: dict[str, Any], keys: tuple[str, ...] = ("top1", "nll", "ece")) -> str:
    parts = []
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)


class TrainingProgressBar:
    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.name, self.epochs = "train", 1
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[ips]} img/s"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=total, completed=initial, ips="-", loss="-")

    def __enter__(self) -> TrainingProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def describe(self, name: str, epochs: int) -> None:
        """The phase this bar follows (its name leads every progress line) and its number of epochs."""
        self.name, self.epochs = name, epochs
        self.progress.update(self.task, description=name)

    def advance(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def update(self, step: int, images_per_s: float, loss: float, epoch: int) -> None:
        self.progress.update(
            self.task,
            completed=step,
            description=f"{self.name} epoch {epoch}/{self.epochs}",
            ips=f"{images_per_s:,.0f}",
            loss=f"{loss:.4f}",
        )

    def log_eval(self, step: int, metrics: dict[str, Any]) -> None:
        if self.enabled:
            self.progress.console.print(f"[dim]step {step}[/dim]  {format_metrics(metrics)}")
