"""`realmix train | eval | recipes`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from mixlab import cli as common
from mixlab.errors import ConfigError
from mixlab.ssl.evaluation import evaluate_ssl_checkpoint
from rich.table import Table

from realmix.config import VARIANTS, RealMixConfig
from realmix.method import RealMixMethod
from realmix.paper import TABLES, markdown_table
from realmix.recipes import BOOK, recipe_for

app = typer.Typer(
    help="RealMix (Nair et al. 2019) and its baselines: supervised, Mean Teacher, MixMatch, FixMatch.",
    no_args_is_help=True,
    add_completion=False,
)

Opt = typer.Option


@app.command()
@common.handle_errors
def train(
    recipe: common.Recipe = None,
    variant: Annotated[
        str | None,
        Opt(
            help=f"Algorithm: {', '.join(VARIANTS)} (default: the recipe's, realmix); "
            "runs the --dataset setting with that algorithm's own hyperparameters."
        ),
    ] = None,
    dataset: common.Dataset = None,
    data_root: common.DataRoot = None,
    download: common.Download = False,
    labels: Annotated[int | None, Opt(help="Number of labeled images (class-balanced, seeded split).")] = None,
    steps: Annotated[int | None, Opt(help="Total optimizer steps (default: the recipe's; paper: 2^19).")] = None,
    eval_every: Annotated[int | None, Opt(help="Evaluate the EMA model every N steps (default: the recipe's).")] = None,
    batch_size: common.BatchSize = None,
    seed: Annotated[
        int | None, Opt(help="Random seed of initialisation and sampling (default: the recipe's, 0).")
    ] = None,
    split_seed: Annotated[
        int | None, Opt(help="Seed of the labeled/unlabeled split (default: the recipe's, 1).")
    ] = None,
    device: common.Device = "auto",
    amp: common.Amp = "off",
    compile: common.Compile = False,
    channels_last: common.ChannelsLast = None,
    sync_bn: common.SyncBN = False,
    out: common.Out = None,
    resume: common.Resume = None,
    checkpoint_every: common.CheckpointEvery = 0,
    stop_after_steps: common.StopAfterSteps = None,
    progress: common.Progress = True,
    model: Annotated[str | None, Opt(help="Backbone, e.g. wrnmm28-2 (the paper's), wrnmm10-1, wrn28-2.")] = None,
    mismatch: Annotated[
        float | None,
        Opt(help="Class-mismatch protocol: % of the unlabeled classes out of distribution (0, 25, 50, 75, 100)."),
    ] = None,
    ood_gamma: Annotated[
        float | None, Opt(help="OOD mask: share of the least confident unlabeled rows dropped per batch.")
    ] = None,
    tsa: Annotated[str | None, Opt(help="Training Signal Annealing: none, linear, log, exp.")] = None,
    extend_aug: Annotated[str | None, Opt(help="Extend step: cutout, simple, none.")] = None,
    extend_copies: Annotated[int | None, Opt(help="Extend step: augmented copies per unlabeled image.")] = None,
    lambda_u: Annotated[float | None, Opt(help="Weight of the unlabeled loss.")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any config field, e.g. --set bn_mode=concat.")] = None,
) -> None:
    """Train RealMix or a baseline (default: the paper's main recipe for --dataset; 'digits' when none is given)."""
    if variant is not None:
        if variant not in VARIANTS:
            raise ConfigError(f"--variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        if recipe is not None:
            raise ConfigError("give --recipe or --variant, not both (recipe names end with their variant)")
        if resume is None:
            recipe = recipe_for(dataset or "digits", variant)
    overrides = common.merge_options(
        dict(
            dataset=dataset,
            num_labeled=labels,
            total_steps=steps,
            eval_every=eval_every,
            batch_size=batch_size,
            seed=seed,
            split_seed=split_seed,
            model=model,
            mismatch=mismatch,
            ood_gamma=ood_gamma,
            tsa=tsa,
            extend_aug=extend_aug,
            extend_copies=extend_copies,
            lambda_u=lambda_u,
        ),
        set_,
    )
    if steps is not None and eval_every is None and resume is None:
        base = BOOK.get(recipe).config if recipe else BOOK.default(dataset or "digits").config
        if steps % base.eval_every:  # a shorter run evaluates at its end
            overrides["eval_every"] = steps if steps < base.eval_every else _largest_divisor(steps, base.eval_every)
    summary = common.train_from_cli(
        package="realmix",
        config_cls=RealMixConfig,
        book=BOOK,
        make_method=lambda config: RealMixMethod(config, data_root=data_root, download=download),
        recipe=recipe,
        overrides=overrides,
        resume=resume,
        out=out,
        device=device,
        amp=amp,
        compile=compile,
        channels_last=channels_last,
        sync_bn=sync_bn,
        eval_every=1,
        checkpoint_every=checkpoint_every,
        stop_after_steps=stop_after_steps,
        progress=progress,
    )
    common.print_summary(summary, keys=("error", "median_error", "top1", "nll"))
    raise typer.Exit(common.exit_code_for(summary))


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, at_most + 1) if n % d == 0)


@app.command("eval")
@common.handle_errors
def evaluate(
    checkpoint: Annotated[
        Path, Opt("--checkpoint", "-c", help="A checkpoint of `realmix train` (last.pt or best.pt).")
    ],
    data_root: common.DataRoot = None,
    device: common.Device = "auto",
    amp: common.Amp = "off",
    raw: Annotated[
        bool, Opt(help="Score the trained weights instead of their EMA (the paper reports the EMA).")
    ] = False,
    json_out: Annotated[Path | None, Opt("--json", help="Also write the metrics to this JSON file.")] = None,
) -> None:
    """Test error, accuracy, NLL and ECE of a checkpoint's EMA model on the run's evaluation set."""
    report = evaluate_ssl_checkpoint(
        checkpoint,
        method="realmix",
        config_cls=RealMixConfig,
        make_method=lambda config: RealMixMethod(config, data_root=data_root),
        device=device,
        amp=amp,
        raw=raw,
    )
    common.print_eval_report(report, json_out)


@app.command()
@common.handle_errors
def recipes(
    dataset: Annotated[str | None, Opt(help="Only recipes for this dataset.")] = None,
    show: Annotated[str | None, Opt(help="Print one recipe's full configuration and paper numbers.")] = None,
    paper: Annotated[str | None, Opt(help="Print one of the paper's tables (1-6) in Markdown.")] = None,
) -> None:
    """List the named recipes with the error rates the paper reports for them."""
    if show is not None:
        common.show_recipe(BOOK.get(show))
        return
    if paper is not None:
        common.console.print(markdown_table(paper), markup=False)
        return
    table = Table(title=f"RealMix recipes (paper error %; tables: {', '.join(TABLES)})", header_style="bold")
    for col in ("recipe", "what", "labels", "steps", "paper error %", "table"):
        table.add_column(col, justify="right" if col in ("labels", "steps", "paper error %") else "left")
    for name, r in BOOK.recipes.items():
        if dataset and r.config.dataset != dataset:
            continue
        result = r.results[0] if r.results else None
        error = "-"
        if result is not None:
            m = result.metrics
            error = f"{m['error']:.2f}" + (f" ± {m['error_std']:.2f}" if "error_std" in m else "")
        table.add_row(
            name,
            r.description,
            str(r.config.num_labeled),
            str(r.config.total_steps),
            error,
            result.table.split(" (")[0] if result else "",
        )
    common.table_console().print(table)


def main() -> None:
    torch.set_float32_matmul_precision("high")
    app()


if __name__ == "__main__":
    main()
