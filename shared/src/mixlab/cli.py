"""Options and helpers that every package's Typer CLI reuses (DESIGN.md §7).

Every `train` command accepts the same runtime options (`--dataset`, `--data-root`, `--epochs`, `--batch-size`,
`--seed`, `--device`, `--amp`, `--out`, `--resume`, ...). Config layering is defaults < recipe < command line:
recipe fields are overridden only by the options the user actually gave (they default to None here).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mixlab.errors import ConfigError, MixlabError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# -- the common train options, as reusable Annotated types --------------------------------------------------
Dataset = Annotated[str | None, typer.Option(help="Dataset name (default: the recipe's; 'digits' is built in).")]
DataRoot = Annotated[
    Path | None, typer.Option(help="Where datasets live (default: $MIXLAB_DATA, else ~/.cache/mixlab/data).")
]
Download = Annotated[bool, typer.Option(help="Download the dataset (official source, checksummed) if it is absent.")]
Recipe = Annotated[
    str | None,
    typer.Option(help="Named recipe (see the `recipes` command); default: the paper's main one for --dataset."),
]
Epochs = Annotated[int | None, typer.Option(help="Training epochs (default: the recipe's).")]
BatchSize = Annotated[int | None, typer.Option(help="Batch size per process (default: the recipe's).")]
Seed = Annotated[int, typer.Option(help="Random seed (model init, sampling, augmentation).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Amp = Annotated[str, typer.Option(help="Mixed precision: off, bf16 or fp16.")]
Compile = Annotated[bool, typer.Option(help="torch.compile the training forward.")]
ChannelsLast = Annotated[bool | None, typer.Option(help="channels_last memory format (default: on for CUDA).")]
SyncBN = Annotated[bool, typer.Option(help="SyncBatchNorm across processes under torchrun.")]
Out = Annotated[Path | None, typer.Option(help="Run directory (default: runs/<package>/<dataset>/<timestamp>).")]
Resume = Annotated[Path | None, typer.Option(help="Continue the run in this directory exactly where it stopped.")]
EvalEvery = Annotated[int, typer.Option(help="Evaluate every N epochs (and always at the end).")]
CheckpointEvery = Annotated[int, typer.Option(help="Also checkpoint every N steps (0: at epoch ends only).")]
StopAfterSteps = Annotated[
    int | None, typer.Option(help="Stop after this many steps with a resumable checkpoint (for time-limited jobs).")
]
Progress = Annotated[bool, typer.Option(help="Show the progress bar.")]
Checkpoint = Annotated[Path, typer.Option(help="A checkpoint (.pt) written by this package's `train`.")]


def table_console() -> Console:
    """A console for wide tables: the terminal's width, or 200 columns when writing to a pipe or file."""
    return console if console.is_terminal else Console(width=200)


def handle_errors(fn: F) -> F:
    """Turn user-facing errors into `error: <one line>` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MixlabError as exc:
            message = " ".join(str(exc).split())
            err_console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: resume with --resume <run dir>")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def override(config: Any, **values: Any) -> Any:
    """`dataclasses.replace` with the options the user gave (None means 'keep the recipe's value')."""
    given = {k: v for k, v in values.items() if v is not None}
    names = {f.name for f in dataclasses.fields(config)}
    unknown = set(given) - names
    if unknown:
        raise ConfigError(f"unknown option(s) for {type(config).__name__}: {', '.join(sorted(unknown))}")
    return dataclasses.replace(config, **given)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (frozen) config dataclass from its saved dict; lists become tuples where the field wants them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"saved config has fields this version does not know: {', '.join(sorted(unknown))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs (values parsed as JSON when they can be: numbers, true/false, lists)."""
    result: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if value == "inf":
            value = float("inf")
        result[key.strip().replace("-", "_")] = value
    return result


def merge_options(explicit: dict[str, Any], set_items: list[str] | None) -> dict[str, Any]:
    """The command's own options (None = not given) plus its `--set` fields; a field given both ways is an error."""
    extra = parse_set_options(set_items)
    both = sorted(k for k in extra if explicit.get(k) is not None)
    if both:
        raise ConfigError(f"{', '.join(both)} given both as an option and with --set; give it once")
    return {**explicit, **extra}


def metrics_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, list):
            table.add_row(key, ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value))
        elif value is not None and not isinstance(value, dict):
            table.add_row(key, str(value))
    return table


def print_summary(summary: dict[str, Any], keys: tuple[str, ...] = ("top1", "nll", "ece")) -> None:
    """Final line(s) of a train command: the headline metrics and where everything was written."""
    final = summary.get("final") or {}
    status = summary.get("status")
    if status == "stopped":
        console.print(f"stopped after step {summary['steps']}; continue with --resume {summary['run_dir']}")
        return
    parts = [f"{k} {final[k]:.4f}" for k in keys if isinstance(final.get(k), (int, float))]
    console.print(f"[bold green]done[/bold green]  {'  '.join(parts)}")
    ips = summary.get("train_images_per_s")
    console.print(
        f"run directory: {summary['run_dir']}  ({summary['device']}, {ips:,.0f} train img/s)"
        if ips
        else f"run directory: {summary['run_dir']}"
    )


def exit_code_for(summary: dict[str, Any]) -> int:
    return 0 if summary.get("status") in ("completed", "stopped") else 1


def python_command() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def train_from_cli(
    *,
    package: str,
    config_cls: type,
    book: Any,
    make_method: Callable[[Any], Any],
    recipe: str | None,
    overrides: dict[str, Any],
    resume: Path | None,
    **run_options: Any,
) -> dict[str, Any]:
    """The body of every `<pkg> train`: resolve the config (or reload a run's), run the engine, return the summary.

    `overrides` are the method options as given on the command line (None = not given); with `--resume` none may
    be given, because the run continues with its saved configuration.
    """
    from mixlab.engine import RunOptions, Trainer
    from mixlab.engine.rundir import CONFIG, read_json, resumable_run_dir

    if resume is not None:
        given = sorted(k for k, v in overrides.items() if v is not None) + (["--recipe"] if recipe else [])
        if given:
            raise ConfigError(f"--resume continues the saved configuration; drop {', '.join(given)}")
        config = config_from_dict(config_cls, read_json(resumable_run_dir(resume) / CONFIG)["config"])
    else:
        base = book.get(recipe).config if recipe else book.default(overrides.get("dataset") or "digits").config
        config = override(base, **overrides).validate()
    options = RunOptions(
        package=package, dataset=config.dataset, epochs=config.epochs, seed=config.seed, resume=resume, **run_options
    )
    return Trainer(make_method(config), options).fit()


def show_recipe(recipe: Any) -> None:
    """`<pkg> recipes --show NAME`: description, full configuration, the paper's numbers."""
    console.print(f"[bold]{recipe.name}[/bold]: {recipe.description}")
    if getattr(recipe, "ensemble_runs", 1) > 1:
        console.print(
            f"ensemble of {recipe.ensemble_runs} independently trained runs (seeds 0..{recipe.ensemble_runs - 1})"
        )
    console.print_json(json.dumps(dataclasses.asdict(recipe.config)))
    for result in recipe.results:
        console.print(f"{result.table}: " + ", ".join(f"{k} {v}" for k, v in result.metrics.items()))


def print_eval_report(report: dict[str, Any], json_out: Path | None = None) -> None:
    """`<pkg> eval` output: the metrics table, CIFAR-100-C when evaluated, and the JSON file when asked for."""
    console.print(metrics_table(report["title"], report["metrics"]))
    if report.get("cifar100c"):
        console.print(metrics_table("CIFAR-100-C (pooled, no temperature scaling)", report["cifar100c"]))
    elif report.get("cifar100c_note"):
        console.print(f"[dim]{report['cifar100c_note']}[/dim]")
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
