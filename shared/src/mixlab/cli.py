"""The CLI factory: one function builds a package's `train | eval | recipes` commands (DESIGN.md §7).

Every `train` command has the same runtime options (`--dataset`, `--data-root`, `--steps`, `--epochs` where the
paper counts epochs, `--eval-every` in steps, `--batch-size`, `--seed`, `--device`, `--amp`, `--compile`, `--out`,
`--resume`, `--init-from`, `--set`, `--recipe`...), declared once here. A package gives its config class, its
recipe book, how to build its method, and only its own options (each one naming the config field it sets); it may
add commands of its own to the app this returns. Configuration layering (defaults < recipe < options) lives in
`mixlab.config`; options left out are None and keep the recipe's value.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mixlab.config import field_types, load_run_config, merge_options, resolve_config
from mixlab.errors import ConfigError, MixlabError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Option:
    """One command-line option: ``--name`` (or ``flags``), its type and help, and the config field it sets.

    ``field=""`` means the field of the same name; ``field=None`` an option the package reads itself (in
    ``choose_recipe`` or its evaluator) instead of a config field. ``parse`` turns the raw value into the field's.
    """

    name: str
    type: Any
    help: str
    field: str | None = ""
    flags: tuple[str, ...] = ()
    default: Any = None
    parse: Callable[[Any], Any] | None = None

    @property
    def field_name(self) -> str | None:
        return self.name if self.field == "" else self.field

    def parameter(self) -> inspect.Parameter:
        kind = self.type if self.default is not None else self.type | None
        info = typer.Option(*self.flags, help=self.help) if self.flags else typer.Option(help=self.help)
        annotation = Annotated[kind, info]  # type: ignore[valid-type]
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=self.default, annotation=annotation)


def _run_options(has_epochs: bool) -> list[Option]:
    """The options every `train` command has."""
    options = [
        Option("recipe", str, "Named recipe (see `recipes`); default: the paper's main one for --dataset.", None),
        Option("dataset", str, "Dataset (default: the recipe's; 'digits' is built in, no download)."),
        Option("data_root", Path, "Where datasets live (default: $MIXLAB_DATA, else ~/.cache/mixlab/data).", None),
        Option(
            "download",
            bool,
            "Download the dataset (official source, checksummed) if it is absent.",
            None,
            default=False,
        ),
        Option("steps", int, "Training length in optimizer steps (default: the recipe's)."),
    ]
    if has_epochs:
        options.append(
            Option("epochs", int, "Training length in epochs, as the paper counts it (default: the recipe's).")
        )
    options += [
        Option("eval_every", int, "Evaluate every N optimizer steps, and at the end (default: the recipe's)."),
        Option("batch_size", int, "Batch size per process (default: the recipe's)."),
        Option("seed", int, "Random seed of initialisation, sampling and augmentation (default: the recipe's)."),
        Option("device", str, "auto, cpu, cuda, cuda:N or mps.", None, default="auto"),
        Option("amp", str, "Mixed precision: off, bf16 or fp16.", None, default="off"),
        Option("compile", bool, "torch.compile the training forward.", None, default=False),
        Option(
            "compile_mode",
            str,
            "torch.compile mode (implies --compile): default, reduce-overhead (CUDA graphs: one launch for the "
            "step's kernels), max-autotune or max-autotune-no-cudagraphs.",
            None,
            default="default",
        ),
        Option("channels_last", bool, "channels_last memory format (default: on for CUDA).", None),
        Option("sync_bn", bool, "SyncBatchNorm across processes under torchrun (CUDA).", None, default=False),
        Option("out", Path, "Run directory (default: runs/<package>/<dataset>/<timestamp>).", None),
        Option("resume", Path, "Continue the run in this directory exactly where it stopped.", None),
        Option("init_from", Path, "Start from another run's weights (a run directory or a .pt file).", None),
        Option("checkpoint_every", int, "Also checkpoint every N steps (0: at evaluations only).", None, default=0),
        Option("stop_after_steps", int, "Stop after N steps with a resumable checkpoint (time-limited jobs).", None),
        Option("progress", bool, "Show the progress bar.", None, default=True),
    ]
    return options


#: `eval --raw` of the semi-supervised packages, which report the EMA weights by default.
RAW_WEIGHTS_OPTION = Option(
    "raw", bool, "Score the trained weights instead of their EMA (the papers report the EMA).", None, default=False
)

#: `eval --reliability PATH` of the calibration-centred packages (MixMo, MixShare, MixViT).
RELIABILITY_OPTION = Option(
    "reliability", Path, "Also write a reliability diagram (PNG) of the prediction to this file.", None
)

SET_OPTION = Option("set_", list[str], "Any config field, e.g. --set lr=0.01 (repeatable).", None, ("--set",))


def _command(fn: Callable[..., Any], options: Sequence[Option], doc: str) -> Callable[..., Any]:
    """``fn(**values)`` with the options as its signature, so Typer sees a normal command."""

    @functools.wraps(fn)
    def command(**values: Any) -> Any:
        return fn(**values)

    command.__signature__ = inspect.Signature([o.parameter() for o in options])  # type: ignore[attr-defined]
    command.__annotations__ = {o.name: o.parameter().annotation for o in options}
    command.__doc__ = doc
    return handle_errors(command)


# -- options of a package's own commands (hybrids, separation, transfer...) ---------------------------------------
CheckpointArg = Annotated[Path, typer.Option("--checkpoint", "-c", help="A run directory or one of its checkpoints.")]
DataRootArg = Annotated[Path | None, typer.Option(help="Where datasets live (default: $MIXLAB_DATA, else ~/.cache).")]
DeviceArg = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]


# -- helpers every command uses ----------------------------------------------------------------------------------
def table_console() -> Console:
    """A console for wide tables: the terminal's width, or 200 columns when writing to a pipe or file."""
    return console if console.is_terminal else Console(width=200)


def _one_line(message: str) -> str:
    """One line, whitespace collapsed (messages lead with a short sentence; the details follow it)."""
    return " ".join(message.split())


def handle_errors(fn: F) -> F:
    """Turn user-facing errors (and failed file operations) into `error: <one line>` on stderr, exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MixlabError as exc:
            err_console.print(f"[bold red]error:[/bold red] {_one_line(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except OSError as exc:  # a read-only directory, a full disk, a missing file: the user's to fix
            where = f": {exc.filename}" if exc.filename else ""
            err_console.print(
                f"[bold red]error:[/bold red] {exc.strerror or exc}{where}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: resume with --resume <run dir>")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


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
    if summary.get("status") == "stopped":
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
    from mixlab.metrics import BRIER_CONVENTION

    if "brier" in report["metrics"]:
        report = {**report, "notes": [*report.get("notes", ()), BRIER_CONVENTION]}
    console.print(metrics_table(report["title"], report["metrics"]))
    if report.get("cifar100c"):
        console.print(metrics_table("CIFAR-100-C (pooled, no temperature scaling)", report["cifar100c"]))
    elif report.get("cifar100c_note"):
        console.print(f"[dim]{report['cifar100c_note']}[/dim]")
    for title, rows in (report.get("tables") or {}).items():
        console.print(metrics_table(title, rows))
    for note in report.get("notes", ()):
        console.print(f"[dim]{note}[/dim]")
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")


def _one_budget(config: Any, given: dict[str, Any]) -> Any:
    """The budget option given wins: `--epochs` clears a recipe's step count, `--steps` an epoch count (where the
    config allows none), so that a run is never budgeted by a value the user did not choose over one they did."""
    optional = {name for name, kind in field_types(type(config)).items() if type(None) in typing.get_args(kind)}
    cleared = {}
    if given.get("epochs") is not None and given.get("steps") is None and "steps" in optional:
        cleared["steps"] = None
    if given.get("steps") is not None and given.get("epochs") is None and "epochs" in optional:
        cleared["epochs"] = None
    return dataclasses.replace(config, **cleared).validate() if cleared else config


# -- the factory ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecipeListing:
    """How `<pkg> recipes` prints its table: a title, columns (header -> cell of a recipe), a footer."""

    title: str
    columns: dict[str, Callable[[Any], str]]
    footer: str | None = None
    right_aligned: tuple[str, ...] = ()


#: builds the method from its resolved config: ``make_method(config, data_root=..., download=...)``
MethodFactory = Callable[..., Any]
#: evaluates checkpoints: ``evaluator(paths, dataset=, data_root=, device=, amp=, batch_size=, **package_options)``
Evaluator = Callable[..., dict[str, Any]]


def method_app(
    *,
    package: str,
    help: str,
    config_cls: type,
    book: Any,
    make_method: MethodFactory,
    options: Sequence[Option] = (),
    choose_recipe: Callable[[dict[str, Any]], str | None] | None = None,
    summary_keys: tuple[str, ...] = ("top1", "nll", "ece"),
    evaluator: Evaluator,
    eval_help: str,
    eval_options: Sequence[Option] = (),
    ensembles: bool = True,
    listing: RecipeListing,
    recipe_options: Sequence[Option] = (),
    recipe_filter: Callable[..., bool] | None = None,
    recipe_action: Callable[..., bool] | None = None,
    train_help: str | None = None,
    train_commands: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> typer.Typer:
    """The Typer app of a method package: `train`, `eval` and `recipes`, built from its config, book and method."""
    app = typer.Typer(help=help, no_args_is_help=True, add_completion=False)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    train_options = [*_run_options("epochs" in fields), *options, SET_OPTION]
    names = [o.name for o in train_options]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise AssertionError(f"{package}: options declared twice: {duplicated}")
    for option in train_options:
        if option.field_name is not None and option.field_name not in fields:
            raise AssertionError(f"{package}: option --{option.name} sets {option.field_name!r}, not a config field")

    def train(fixed: dict[str, Any] | None = None, **values: Any) -> None:
        set_items = values.pop("set_")
        recipe = choose_recipe(values) if choose_recipe is not None else values["recipe"]
        explicit = {}
        for option in train_options:
            value = values.get(option.name)
            if option.field_name is not None and value is not None:
                explicit[option.field_name] = option.parse(value) if option.parse else value
        overrides = merge_options(explicit, set_items)
        if fixed:  # a train command of the package's own (scimix train-generator) fixes some fields
            clash = sorted(k for k in fixed if overrides.get(k) is not None)
            if clash:
                raise ConfigError(f"this command sets {', '.join(clash)} itself; drop it")
            overrides = {**overrides, **fixed}
        resume = values["resume"]
        if resume is not None:
            given = sorted(k for k in overrides if k not in (fixed or {})) + (["--recipe"] if values["recipe"] else [])
            if given:
                raise ConfigError(f"--resume continues the saved configuration; drop {', '.join(given)}")
            config = load_run_config(resume, config_cls, package)
        else:
            config = _one_budget(resolve_config(book, recipe, overrides), overrides)
        from mixlab.engine import RunOptions, Trainer

        run = RunOptions(
            package=package,
            dataset=config.dataset,
            seed=config.seed,
            **{
                k: values[k]
                for k in ("device", "amp", "compile", "compile_mode", "channels_last", "sync_bn", "out", "resume")
            },
            **{k: values[k] for k in ("init_from", "checkpoint_every", "stop_after_steps", "progress")},
        )
        method = make_method(config, data_root=values["data_root"], download=values["download"])
        summary = Trainer(method, run).fit()
        print_summary(summary, keys=summary_keys)
        raise typer.Exit(exit_code_for(summary))

    doc = (
        train_help or f"Train {package} (default: the paper's main recipe for --dataset; 'digits' when none is given)."
    )
    app.command("train")(_command(train, train_options, doc))
    for name, (help_text, fixed) in (train_commands or {}).items():
        app.command(name)(_command(functools.partial(train, fixed), train_options, help_text))

    checkpoint_type = list[Path] if ensembles else Path
    eval_common = [
        Option(
            "checkpoint",
            checkpoint_type,
            "A checkpoint (.pt) or a run directory (its last.pt)"
            + ("; several = a deep ensemble." if ensembles else "."),
            None,
            ("--checkpoint", "-c"),
            default=...,
        ),
        Option("dataset", str, "Evaluate on this dataset instead of the run's (same classes).", None),
        Option("data_root", Path, "Where datasets live (default: $MIXLAB_DATA, else ~/.cache/mixlab/data).", None),
        Option("device", str, "auto, cpu, cuda, cuda:N or mps.", None, default="auto"),
        Option("amp", str, "Mixed precision: off, bf16 or fp16.", None, default="off"),
        Option("batch_size", int, "Evaluation batch size.", None, default=500),
        Option("json_out", Path, "Also write the metrics to this JSON file.", None, ("--json",)),
    ]

    def evaluate(**values: Any) -> None:
        from mixlab.engine.rundir import checkpoint_of

        if values["batch_size"] < 1:
            raise ConfigError(f"--batch-size must be at least 1, not {values['batch_size']}")
        given = values.pop("checkpoint")
        paths = [checkpoint_of(p) for p in (given if isinstance(given, list) else [given])]
        json_out = values.pop("json_out")
        report = evaluator(paths, **values)
        print_eval_report(report, json_out)

    app.command("eval")(_command(evaluate, [*eval_common, *eval_options], eval_help))

    recipe_common = [
        Option("dataset", str, "Only recipes for this dataset.", None),
        Option("show", str, "Print one recipe's full configuration and paper numbers.", None),
    ]

    def recipes(**values: Any) -> None:
        dataset, show = values.pop("dataset"), values.pop("show")
        if show is not None:
            show_recipe(book.get(show))
            return
        if recipe_action is not None and recipe_action(**values):
            return
        table = Table(title=listing.title, header_style="bold")
        for header in listing.columns:
            table.add_column(header, justify="right" if header in listing.right_aligned else "left")
        for recipe in book:
            if dataset and recipe.config.dataset != dataset:
                continue
            if recipe_filter is not None and not recipe_filter(recipe, **values):
                continue
            table.add_row(*(cell(recipe) for cell in listing.columns.values()))
        table_console().print(table)
        if listing.footer:
            console.print(f"[dim]{listing.footer}[/dim]")

    app.command("recipes")(
        _command(recipes, [*recipe_common, *recipe_options], "List the named recipes with the paper's numbers.")
    )
    return app


def run_app(app: typer.Typer) -> None:
    """A package's `main`: TF32 matmuls where the device has them, then the app."""
    import torch

    torch.set_float32_matmul_precision("high")
    app()
