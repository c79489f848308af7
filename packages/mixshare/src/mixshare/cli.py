"""`mixshare train | eval | recipes | analyze`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer
from mixlab import cli as common
from mixlab.mimo import build_network
from mixlab.mimo.evaluation import evaluate_checkpoints, load_network
from rich.table import Table

from mixshare.analysis import analyze as analyze_network
from mixshare.analysis import head_share_rate, write_plot
from mixshare.config import MixShareConfig
from mixshare.method import MixShareMethod
from mixshare.recipes import BOOK

app = typer.Typer(
    help="MixShare: feature sharing between MIMO subnetworks by unmixing (thesis §3.4, A.6).",
    no_args_is_help=True,
    add_completion=False,
)

Opt = typer.Option


def _load(path: Path, device: torch.device):
    return load_network(path, device, method="mixshare", config_cls=MixShareConfig, build=build_network)


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
    model: Annotated[str | None, Opt(help="Backbone, e.g. wrn28-2, wrn28-5, wrn16-1.")] = None,
    members: Annotated[int | None, Opt("--members", "-M", help="Number of inputs/subnetworks M.")] = None,
    unmix: Annotated[str | None, Opt(help="Unmixing: none, full, partial, fadeout.")] = None,
    unmix_fraction: Annotated[
        float | None, Opt(help="Partial unmixing: fraction of the final channels unmixed.")
    ] = None,
    fadeout_epochs: Annotated[float | None, Opt(help="Fadeout unmixing: epochs until the heads pool normally.")] = None,
    encoder_init: Annotated[
        str | None, Opt(help="Encoder alignment at init: independent, identical, colinear.")
    ] = None,
    binary_prob: Annotated[float | None, Opt("--binary-prob", "-p", help="Probability p of CutMix mixing.")] = None,
    weight_root: Annotated[float | None, Opt("--weight-root", "-r", help="Root r of w_r (1: raw ratios).")] = None,
    batch_repetitions: Annotated[int | None, Opt("--batch-repetitions", "-b", help="Batch repetition b.")] = None,
    input_repetition: Annotated[float | None, Opt(help="Share of rows with the same image on every input.")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any config field, e.g. --set unmix_normalize=true.")] = None,
) -> None:
    """Train a MixShare network (default: the fadeout recipe for --dataset; 'digits' when none is given)."""
    overrides = common.merge_options(
        dict(
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            model=model,
            num_members=members,
            unmix=unmix,
            unmix_fraction=unmix_fraction,
            fadeout_epochs=fadeout_epochs,
            encoder_init=encoder_init,
            binary_prob=binary_prob,
            weight_root=weight_root,
            batch_repetitions=batch_repetitions,
            input_repetition=input_repetition,
        ),
        set_,
    )
    summary = common.train_from_cli(
        package="mixshare",
        config_cls=MixShareConfig,
        book=BOOK,
        make_method=lambda config: MixShareMethod(config, data_root=data_root, download=download),
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
    common.print_summary(summary, keys=("top1", "top1_individual", "share_rate", "nll", "ece"))
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
        bool, Opt(help="Also report CIFAR-100-C (CIFAR-100 models, when the data is present).")
    ] = False,
    json_out: Annotated[Path | None, Opt("--json", help="Also write the metrics to this JSON file.")] = None,
) -> None:
    """Ensemble and individual accuracy, the classifier share rate, NLL, ECE (calibrated too), diversity."""
    report = evaluate_checkpoints(
        checkpoint,
        method="mixshare",
        config_cls=MixShareConfig,
        build=build_network,
        data_root=data_root,
        device=device,
        amp=amp,
        batch_size=batch_size,
        cifar100c=cifar100c,
    )
    if len(checkpoint) == 1:
        model, _ = _load(checkpoint[0], torch.device("cpu"))
        report["metrics"].update(head_share_rate(model))
    common.print_eval_report(report, json_out)


@app.command()
@common.handle_errors
def recipes(
    dataset: Annotated[str | None, Opt(help="Only recipes for this dataset.")] = None,
    show: Annotated[str | None, Opt(help="Print one recipe's full configuration and paper numbers.")] = None,
) -> None:
    """List the named recipes with the numbers Table 3.6 reports for them (mean ± std over 3 seeds)."""
    if show is not None:
        common.show_recipe(BOOK.get(show))
        return
    table = Table(title="MixShare recipes (Table 3.6 numbers, %)", header_style="bold")
    for col in ("recipe", "what", "acc ens.", "acc ind.", "share rate"):
        table.add_column(col, justify="left" if col in ("recipe", "what") else "right")
    for name, r in BOOK.recipes.items():
        if dataset and r.config.dataset != dataset:
            continue
        m = r.results[0].metrics if r.results else {}

        def cell(key: str, m: dict = m) -> str:
            return f"{m[key]:.1f} ± {m[key + '_std']:.1f}" if key in m else "-"

        table.add_row(name, r.description, cell("top1"), cell("top1_individual"), cell("share_rate"))
    common.table_console().print(table)


@app.command()
@common.handle_errors
def analyze(
    checkpoint: Annotated[Path, Opt("--checkpoint", "-c", help="A checkpoint of `mixshare train`.")],
    out: Annotated[
        Path | None, Opt(help="Directory for analysis.json and analysis.png (default: next to the checkpoint).")
    ] = None,
) -> None:
    """Which encoder channels and penultimate features each subnetwork uses, share rates, active filters (§3.4.1)."""
    model, config = _load(checkpoint, torch.device("cpu"))
    report = {
        "checkpoint": str(checkpoint),
        "model": config.model,
        "unmix": config.unmix,
        "encoder_init": config.encoder_init,
        **analyze_network(model),
    }
    out = out if out is not None else checkpoint.parent.parent / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(report, indent=2) + "\n")
    title = f"{checkpoint}  ({config.model}, unmix={config.unmix}, encoders {config.encoder_init})"
    write_plot(report, out / "analysis.png", title)
    rows = {k: v for k, v in report.items() if k.startswith(("share_rate", "encoder_share_rate"))}
    rows.update({f"active_filters_{k} (%)": v for k, v in report.get("active_filters", {}).items()})
    for name, key in (("encoder channels", "encoder_dominant_member"), ("head features", "head_dominant_member")):
        counts = [report[key].count(i) for i in range(report["num_members"])]
        rows[f"{name}: largest for member"] = ", ".join(f"{i}: {c}" for i, c in enumerate(counts))
    common.console.print(common.metrics_table(f"feature usage of {checkpoint} (share rates in %)", rows))
    common.console.print(f"wrote {out / 'analysis.json'} and {out / 'analysis.png'}")


def main() -> None:
    torch.set_float32_matmul_precision("high")
    app()


if __name__ == "__main__":
    main()
