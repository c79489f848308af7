"""`mixvit train | eval | recipes`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import torch
import typer
from mixlab import cli as common
from mixlab.mimo.evaluation import evaluate_checkpoints
from rich.table import Table

from mixvit.config import MixViTConfig
from mixvit.flops import overhead
from mixvit.method import MixViTMethod, build_network, dataset_options
from mixvit.recipes import BOOK

app = typer.Typer(
    help="MixViT: multi-input multi-output vision transformers with source attribution (thesis ch. 4).",
    no_args_is_help=True,
    add_completion=False,
)

Opt = typer.Option


@app.command()
@common.handle_errors
def train(
    recipe: common.Recipe = None,
    dataset: common.Dataset = None,
    data_root: common.DataRoot = None,
    download: common.Download = False,
    epochs: common.Epochs = None,
    batch_size: common.BatchSize = None,
    seed: Annotated[int | None, Opt(help="Random seed (default: the recipe's, 0).")] = None,
    device: common.Device = "auto",
    amp: common.Amp = "off",
    compile: common.Compile = False,
    channels_last: common.ChannelsLast = None,
    out: common.Out = None,
    resume: common.Resume = None,
    eval_every: common.EvalEvery = 1,
    checkpoint_every: common.CheckpointEvery = 0,
    stop_after_steps: common.StopAfterSteps = None,
    progress: common.Progress = True,
    model: Annotated[
        str | None, Opt(help="Backbone: convit5-384, cait-xxs24, cait-xs24, convit{L}-{d}, cait{L}-{d}.")
    ] = None,
    members: Annotated[
        int | None, Opt("--members", "-M", help="Number of inputs/subnetworks M (1: the plain ViT).")
    ] = None,
    attribution: Annotated[str | None, Opt(help="Source attribution: embedding, encoding, none.")] = None,
    attribution_layer: Annotated[
        str | None, Opt(help="Where: late (after the last SA block), early, or a block index.")
    ] = None,
    inference: Annotated[
        str | None, Opt(help="separate, sum, alternating, single (multi_encoder: sum, separate).")
    ] = None,
    input_mixing: Annotated[str | None, Opt(help="binarized_cutmix or all_tokens.")] = None,
    network: Annotated[str | None, Opt(help="mixvit, or multi_encoder for the naive MIMO/MixMo transformers.")] = None,
    mix_alpha: Annotated[float | None, Opt(help="alpha of the token-mask ratio Beta(alpha, alpha).")] = None,
    msda: Annotated[str | None, Opt(help="Pixel MSDA: simultaneous, alternate, none.")] = None,
    batch_repetitions: Annotated[int | None, Opt("--batch-repetitions", "-b", help="Batch augmentations b.")] = None,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field, e.g. --set tie_break=per_patch_coin.")
    ] = None,
) -> None:
    """Train MixViT (default: the MixViT-embedding recipe of --dataset; 'digits' when none is given)."""
    layer: int | str | None = attribution_layer
    if attribution_layer is not None and attribution_layer.isdigit():
        layer = int(attribution_layer)
    overrides = common.merge_options(
        dict(
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            model=model,
            num_members=members,
            source_attribution=attribution,
            attribution_layer=layer,
            inference=inference,
            input_mixing=input_mixing,
            network=network,
            mix_alpha=mix_alpha,
            msda=msda,
            batch_repetitions=batch_repetitions,
        ),
        set_,
    )
    summary = common.train_from_cli(
        package="mixvit",
        config_cls=MixViTConfig,
        book=BOOK,
        make_method=lambda config: MixViTMethod(config, data_root=data_root, download=download),
        recipe=recipe,
        overrides=overrides,
        resume=resume,
        out=out,
        device=device,
        amp=amp,
        compile=compile,
        channels_last=channels_last,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        stop_after_steps=stop_after_steps,
        progress=progress,
    )
    common.print_summary(summary, keys=("top1", "top1_individual", "nll", "ece"))
    raise typer.Exit(common.exit_code_for(summary))


@app.command("eval")
@common.handle_errors
def evaluate(
    checkpoint: Annotated[list[Path], Opt("--checkpoint", "-c", help="Checkpoint(s); several = a deep ensemble.")],
    inference: Annotated[str | None, Opt(help="Evaluate under another inference scheme than the run's.")] = None,
    data_root: common.DataRoot = None,
    device: common.Device = "auto",
    amp: common.Amp = "off",
    batch_size: Annotated[int, Opt(help="Evaluation batch size.")] = 500,
    json_out: Annotated[Path | None, Opt("--json", help="Also write the metrics to this JSON file.")] = None,
) -> None:
    """Ensemble and per-subnetwork accuracy, NLL, ECE (calibrated too), diversity; any inference scheme."""

    def build(config: MixViTConfig, num_classes: int):
        if inference is not None:
            config = dataclasses.replace(config, inference=inference).validate()
        return build_network(config, num_classes)

    report = evaluate_checkpoints(
        checkpoint,
        method="mixvit",
        config_cls=MixViTConfig,
        build=build,
        dataset_options=dataset_options,
        data_root=data_root,
        device=device,
        amp=amp,
        batch_size=batch_size,
        cifar100c=False,
    )
    if inference is not None:
        report["title"] += f", {inference} inference"
    common.print_eval_report(report, json_out)


def _table_label(table: str) -> str:
    """ "Table 4.2a (Tiny ImageNet)" -> "4.2a"."""
    return table.split(" (")[0].removeprefix("Table ")


def _cell(metrics: dict[str, float], key: str) -> str:
    if key not in metrics:
        return "-"
    std = metrics.get(f"{key}_std")
    return f"{metrics[key]:.1f} ± {std:.1f}" if std is not None else f"{metrics[key]:.1f}"


@app.command()
@common.handle_errors
def recipes(
    dataset: Annotated[str | None, Opt(help="Only recipes for this dataset.")] = None,
    table: Annotated[
        str | None, Opt(help="Only recipes reported in this table, e.g. 4.6, 4.2 (a-d), 4.2a or A.19.")
    ] = None,
    show: Annotated[str | None, Opt(help="Print one recipe's full configuration and paper numbers.")] = None,
) -> None:
    """List the named recipes with the numbers the thesis reports for them (mean ± std over 3 seeds)."""
    if show is not None:
        common.show_recipe(BOOK.get(show))
        return
    listing = Table(title="MixViT recipes (thesis ch. 4 numbers, top-1 %)", header_style="bold")
    for col in ("recipe", "what", "tables", "acc.", "subnet acc.", "# FLOPS"):
        listing.add_column(col, justify="left" if col in ("recipe", "what", "tables") else "right")
    for name, r in BOOK.recipes.items():
        if dataset and r.config.dataset != dataset:
            continue
        labels = [_table_label(res.table) for res in r.results]
        if table and not any(
            label == table or (label.startswith(table) and label[len(table) :].isalpha()) for label in labels
        ):
            continue
        tables = ", ".join(labels) or "-"
        metrics = r.results[0].metrics if r.results else {}
        flops = next((res.metrics["flops_x"] for res in r.results if "flops_x" in res.metrics), None)
        listing.add_row(
            name,
            r.description,
            tables,
            _cell(metrics, "top1"),
            _cell(metrics, "top1_individual"),
            f"x{flops:g}" if flops is not None else "-",
        )
    common.table_console().print(listing)
    common.console.print(
        f"[dim]MixViT's analytic inference overhead (A.7.3): x{overhead(5, 2):.2f} for the 5-block "
        f"ConViT, x{overhead(24, 2):.2f} for CaiT-24 (M = 2).[/dim]"
    )


def main() -> None:
    torch.set_float32_matmul_precision("high")
    app()


if __name__ == "__main__":
    main()
