"""`mixshare train | eval | recipes | analyze`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from mixlab import cli as common
from mixlab.cli import Option, RecipeListing
from mixlab.mimo import build_network
from mixlab.mimo.evaluation import load_network, mimo_evaluator

from mixshare.analysis import analyze as analyze_network
from mixshare.analysis import head_share_rate, write_plot
from mixshare.config import MixShareConfig
from mixshare.core_features import FIXED_INPUT_HELP
from mixshare.method import MixShareMethod
from mixshare.recipes import BOOK

_evaluate_networks = mimo_evaluator(method="mixshare", config_cls=MixShareConfig, build=build_network)


def _load(path: Path, device: torch.device):
    return load_network(path, device, method="mixshare", config_cls=MixShareConfig, build=build_network)


def evaluate(paths: list[Path], **options: Any) -> dict[str, Any]:
    """The MIMO metrics, plus the classifier share rate of a single network."""
    report = _evaluate_networks(paths, **options)
    if len(paths) == 1:
        model, _ = _load(paths[0], torch.device("cpu"))
        report["metrics"].update(head_share_rate(model))
    return report


def _cell(recipe, key: str) -> str:
    m = recipe.results[0].metrics if recipe.results else {}
    return f"{m[key]:.1f} ± {m[key + '_std']:.1f}" if key in m else "-"


app = common.method_app(
    package="mixshare",
    help="MixShare: feature sharing between MIMO subnetworks by unmixing (thesis §3.4, A.6).",
    train_help="Train a MixShare network (default: the fadeout recipe for --dataset; 'digits' when none is given).",
    config_cls=MixShareConfig,
    book=BOOK,
    make_method=MixShareMethod,
    options=[
        Option("model", str, "Backbone, e.g. wrn28-2, wrn28-5, wrn16-1."),
        Option("members", int, "Number of inputs/subnetworks M.", "num_members", ("--members", "-M")),
        Option("unmix", str, "Unmixing: none, full, partial, fadeout."),
        Option("unmix_fraction", float, "Partial unmixing: fraction of the final channels unmixed."),
        Option("fadeout_epochs", float, "Fadeout unmixing: epochs until the heads pool normally."),
        Option("encoder_init", str, "Encoder alignment at init: independent, identical, colinear."),
        Option("binary_prob", float, "Probability p of CutMix mixing.", "", ("--binary-prob", "-p")),
        Option("weight_root", float, "Root r of w_r (1: raw ratios).", "", ("--weight-root", "-r")),
        Option("batch_repetitions", int, "Batch repetition b.", "", ("--batch-repetitions", "-b")),
        Option("input_repetition", float, "Share of rows with the same image on every input."),
    ],
    summary_keys=("top1", "top1_individual", "share_rate", "nll", "ece"),
    evaluator=evaluate,
    eval_help="Ensemble and individual accuracy, the classifier share rate, NLL, ECE (calibrated too), diversity.",
    eval_options=[
        common.RELIABILITY_OPTION,
        Option(
            "cifar100c",
            bool,
            "Also report CIFAR-100-C (CIFAR-100 models, when the data is present).",
            None,
            default=False,
        ),
    ],  # fmt: skip
    listing=RecipeListing(
        title="MixShare recipes (Table 3.6 numbers, %)",
        columns={
            "recipe": lambda r: r.name,
            "what": lambda r: r.description,
            "acc ens.": lambda r: _cell(r, "top1"),
            "acc ind.": lambda r: _cell(r, "top1_individual"),
            "share rate": lambda r: _cell(r, "share_rate"),
        },
        right_aligned=("acc ens.", "acc ind.", "share rate"),
    ),
)


def _core_features(
    model, config, *, fixed_input: str, max_images: int | None, data_root: Path | None, device: str, batch_size: int
) -> dict[str, Any]:
    """App. A.6.3 on the run's test set: the ``core_features`` block of analysis.json."""
    from mixlab.data import build_dataset
    from mixlab.data.dataset import require_rgb
    from mixlab.engine import resolve_device
    from mixlab.errors import ConfigError, DatasetError

    from mixshare import core_features as cf

    if batch_size < 1 or (max_images is not None and max_images < 2):
        raise ConfigError("--batch-size must be at least 1 and --max-images at least 2")
    dev = resolve_device(device)
    try:
        test_set = build_dataset(config.dataset, "test", data_root)
    except DatasetError as exc:
        raise DatasetError(f"{exc} (the core-network influence needs the test set; --no-core skips it)") from exc
    require_rgb(test_set, "the multi-input networks")
    fixed = cf.fixed_image(test_set, fixed_input, batch_size, dev, max_images)
    batches = cf.standardized_batches(test_set, batch_size, dev, max_images)
    influence = cf.core_feature_influence(model.to(dev), batches, fixed)
    images = len(test_set) if max_images is None else min(max_images, len(test_set))
    return cf.summarize(influence, fixed_input, images)


def _summary_rows(report: dict[str, Any]) -> dict[str, Any]:
    rows = {k: v for k, v in report.items() if k.startswith(("share_rate", "encoder_share_rate"))}
    rows.update({f"active_filters_{k} (%)": v for k, v in report.get("active_filters", {}).items()})
    for name, key in (("encoder channels", "encoder_dominant_member"), ("head features", "head_dominant_member")):
        counts = [report[key].count(i) for i in range(report["num_members"])]
        rows[f"{name}: largest for member"] = ", ".join(f"{i}: {c}" for i, c in enumerate(counts))
    for stage in report.get("core_features", {}).get("stages", []):
        name = f"core {stage['stage']} ({stage['channels']} ch.)"
        if stage["share_rate"] is not None:
            rows[f"{name}: share_rate"] = stage["share_rate"]
            rows[f"{name}: share_rate_mean_ratio"] = stage["share_rate_mean_ratio"]
        rows[f"{name}: largest for member"] = ", ".join(f"{i}: {c}" for i, c in enumerate(stage["dominant_counts"]))
    return rows


@app.command()
@common.handle_errors
def analyze(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A checkpoint of `mixshare train`.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for analysis.json, analysis.png and core_features.png (default: next to the checkpoint)."
        ),
    ] = None,
    core: Annotated[
        bool,
        typer.Option(help="Also measure the core-network feature influence (A.6.3, Fig. A.8) on the test set."),
    ] = True,
    fixed_input: Annotated[str, typer.Option(help=FIXED_INPUT_HELP)] = "first",
    max_images: Annotated[
        int | None, typer.Option(help="Core influence on the first N test images only (default: all).")
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="Where datasets live (default: $MIXLAB_DATA, else ~/.cache/mixlab/data).")
    ] = None,
    device: Annotated[str, typer.Option(help="Core influence: auto, cpu, cuda, cuda:N or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Core influence: test images per forward pass.")] = 500,
) -> None:
    """Which channels each subnetwork uses: encoders, heads (§3.4.1), core stages (A.6.3); share rates, active filters."""
    from mixlab.engine.rundir import checkpoint_of

    from mixshare.core_features import write_core_plot

    checkpoint = checkpoint_of(checkpoint)
    model, config = _load(checkpoint, torch.device("cpu"))
    report = {
        "checkpoint": str(checkpoint),
        "model": config.model,
        "unmix": config.unmix,
        "encoder_init": config.encoder_init,
        **analyze_network(model),
    }
    if core:
        report["core_features"] = _core_features(
            model,
            config,
            fixed_input=fixed_input,
            max_images=max_images,
            data_root=data_root,
            device=device,
            batch_size=batch_size,
        )
    out = out if out is not None else checkpoint.parent.parent / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(report, indent=2) + "\n")
    title = f"{checkpoint}  ({config.model}, unmix={config.unmix}, encoders {config.encoder_init})"
    written = [out / "analysis.json", write_plot(report, out / "analysis.png", title)]
    if core:
        written.append(write_core_plot(report["core_features"], out / "core_features.png", title))
    common.console.print(
        common.metrics_table(f"feature usage of {checkpoint} (share rates in %)", _summary_rows(report))
    )
    common.console.print("wrote " + ", ".join(str(p) for p in written))


def main() -> None:
    common.run_app(app)


if __name__ == "__main__":
    main()
