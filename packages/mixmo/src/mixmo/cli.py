"""`mixmo train | eval | recipes`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from mixlab import cli as common
from rich.table import Table

from mixmo.config import MixMoConfig
from mixmo.evaluation import evaluate_checkpoints
from mixmo.method import MixMoMethod
from mixmo.recipes import BOOK

app = typer.Typer(
    help="MixMo: multi-input multi-output subnetworks trained with mixed inputs (thesis ch. 3).",
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
    sync_bn: common.SyncBN = False,
    out: common.Out = None,
    resume: common.Resume = None,
    eval_every: common.EvalEvery = 1,
    checkpoint_every: common.CheckpointEvery = 0,
    stop_after_steps: common.StopAfterSteps = None,
    progress: common.Progress = True,
    model: Annotated[str | None, Opt(help="Backbone, e.g. wrn28-10, wrn16-1, preactresnet18-2.")] = None,
    members: Annotated[
        int | None, Opt("--members", "-M", help="Number of inputs/subnetworks M (1: plain net).")
    ] = None,
    block: Annotated[
        str | None, Opt(help="Binary mixing block: cutmix, hconcat, vconcat, patchup2d, fmix, cowmask, linear.")
    ] = None,
    alpha: Annotated[float | None, Opt(help="Ratio concentration alpha (<=0: fixed 1/M, i.e. MIMO).")] = None,
    binary_prob: Annotated[float | None, Opt("--binary-prob", "-p", help="Probability p of the binary block.")] = None,
    weight_root: Annotated[
        float | None, Opt("--weight-root", "-r", help="Root r of the w_r reweighting (inf: none).")
    ] = None,
    batch_repetitions: Annotated[int | None, Opt("--batch-repetitions", "-b", help="Batch repetition b.")] = None,
    pixel_msda: Annotated[str | None, Opt(help="In-pixel MSDA on the inputs: none, cutmix, mixup.")] = None,
    augmix: Annotated[bool | None, Opt(help="AugMix on the training images (CIFAR-100-C experiments).")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any config field, e.g. --set head_mode=single_soft.")] = None,
) -> None:
    """Train a MixMo network (default: the paper's main recipe for --dataset; 'digits' when none is given)."""
    overrides = common.merge_options(
        dict(
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            model=model,
            num_members=members,
            block=block,
            alpha=alpha,
            binary_prob=binary_prob,
            weight_root=weight_root,
            batch_repetitions=batch_repetitions,
            pixel_msda=pixel_msda,
            augmix=augmix,
        ),
        set_,
    )
    summary = common.train_from_cli(
        package="mixmo",
        config_cls=MixMoConfig,
        book=BOOK,
        make_method=lambda config: MixMoMethod(config, data_root=data_root, download=download),
        recipe=recipe,
        overrides=overrides,
        resume=resume,
        out=out,
        device=device,
        amp=amp,
        compile=compile,
        channels_last=channels_last,
        sync_bn=sync_bn,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        stop_after_steps=stop_after_steps,
        progress=progress,
    )
    common.print_summary(summary)
    raise typer.Exit(common.exit_code_for(summary))


@app.command("eval")
@common.handle_errors
def evaluate(
    checkpoint: Annotated[list[Path], Opt("--checkpoint", "-c", help="Checkpoint(s); several = a deep ensemble.")],
    data_root: common.DataRoot = None,
    device: common.Device = "auto",
    amp: common.Amp = "off",
    batch_size: Annotated[int, Opt(help="Evaluation batch size.")] = 500,
    cifar100c: Annotated[
        bool, Opt(help="Also report CIFAR-100-C (when the model is a CIFAR-100 one and the data is present).")
    ] = True,
    json_out: Annotated[Path | None, Opt("--json", help="Also write the metrics to this JSON file.")] = None,
) -> None:
    """Top-1/5, NLL, ECE, calibrated NLL/ECE, each head's accuracy, diversity (and CIFAR-100-C robustness)."""
    report = evaluate_checkpoints(
        checkpoint, data_root=data_root, device=device, amp=amp, batch_size=batch_size, cifar100c=cifar100c
    )
    common.print_eval_report(report, json_out)


@app.command()
@common.handle_errors
def recipes(
    dataset: Annotated[str | None, Opt(help="Only recipes for this dataset.")] = None,
    show: Annotated[str | None, Opt(help="Print one recipe's full configuration and paper numbers.")] = None,
) -> None:
    """List the named recipes with the numbers the thesis reports for them."""
    if show is not None:
        common.show_recipe(BOOK.get(show))
        return
    table = Table(title="MixMo recipes (paper numbers; NLL raw, not x1e-2)", header_style="bold")
    for col in ("recipe", "what", "tables", "top1", "nll_c"):
        table.add_column(col, justify="right" if col in ("top1", "nll_c") else "left")
    for name, r in BOOK.recipes.items():
        if dataset and r.config.dataset != dataset:
            continue
        first = r.results[0].metrics if r.results else {}
        tables = "; ".join(res.table.split(" (")[0] for res in r.results) or "-"
        table.add_row(
            name,
            r.description,
            tables,
            f"{first['top1']:.2f}" if "top1" in first else "-",
            f"{first['nll_c']:.3f}" if "nll_c" in first else "-",
        )
    common.table_console().print(table)


def main() -> None:
    torch.set_float32_matmul_precision("high")
    app()


if __name__ == "__main__":
    main()
