"""Test helpers every method package's CLI tests share (in-process Typer runs, one-line errors, exact resume)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import typer
from typer.testing import CliRunner, Result

from mixlab.engine import load_checkpoint


def cli_invoker(app: typer.Typer) -> Callable[..., Result]:
    """`invoke("train", "--epochs", 1, ...)`: run a package's CLI in-process (torch is imported once)."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def one_line_error(result: Result) -> str:
    """Assert the command failed with exit code 2 and exactly one `error: ...` line; return that line."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def assert_resume_is_exact(invoke: Callable[..., Result], train_args: list[str], tmp_path: Path, stop_after: int) -> None:
    """Train once straight through, once stopped after `stop_after` steps and resumed: the weights must be equal."""
    full, split = tmp_path / "full", tmp_path / "split"
    assert invoke(*train_args, "--out", full).exit_code == 0
    stopped = invoke(*train_args, "--out", split, "--stop-after-steps", stop_after)
    assert stopped.exit_code == 0 and "--resume" in stopped.output
    resumed = invoke("train", "--resume", split, "--no-progress", "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(full / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(split / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
