"""`mixvit train | eval | recipes`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mixlab import cli as common
from mixlab.cli import Option, RecipeListing
from mixlab.mimo.evaluation import evaluate_checkpoints

from mixvit.config import MixViTConfig
from mixvit.flops import overhead
from mixvit.method import MixViTMethod, build_network
from mixvit.recipes import BOOK


def evaluate(paths: list[Path], *, inference: str | None = None, **options: Any) -> dict[str, Any]:
    """MIMO metrics of a MixViT checkpoint (or ensemble), under the run's inference scheme or another one."""

    def build(config: MixViTConfig, num_classes: int):
        if inference is not None:
            config = dataclasses.replace(config, inference=inference).validate()
        return build_network(config, num_classes)

    report = evaluate_checkpoints(
        paths, method="mixvit", config_cls=MixViTConfig, build=build,
        cifar100c=False, **options,
    )  # fmt: skip
    if inference is not None:
        report["title"] += f", {inference} inference"
    return report


def _attribution_layer(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _table_label(table: str) -> str:
    """ "Table 4.2a (Tiny ImageNet)" -> "4.2a"."""
    return table.split(" (")[0].removeprefix("Table ")


def _cell(recipe, key: str) -> str:
    metrics = recipe.results[0].metrics if recipe.results else {}
    if key not in metrics:
        return "-"
    std = metrics.get(f"{key}_std")
    return f"{metrics[key]:.1f} ± {std:.1f}" if std is not None else f"{metrics[key]:.1f}"


def _flops(recipe) -> str:
    flops = next((res.metrics["flops_x"] for res in recipe.results if "flops_x" in res.metrics), None)
    return f"x{flops:g}" if flops is not None else "-"


def in_table(recipe, table: str | None = None) -> bool:
    """`--table 4.2` matches 4.2a-d, `--table 4.2a` only 4.2a."""
    if table is None:
        return True
    labels = [_table_label(res.table) for res in recipe.results]
    return any(label == table or (label.startswith(table) and label[len(table) :].isalpha()) for label in labels)


app = common.method_app(
    package="mixvit",
    help="MixViT: multi-input multi-output vision transformers with source attribution (thesis ch. 4).",
    train_help="Train MixViT (default: the MixViT-embedding recipe of --dataset; 'digits' when none is given).",
    config_cls=MixViTConfig,
    book=BOOK,
    make_method=MixViTMethod,
    options=[
        Option("model", str, "Backbone: convit5-384, cait-xxs24, cait-xs24, convit{L}-{d}, cait{L}-{d}."),
        Option(
            "members", int, "Number of inputs/subnetworks M (1: the plain ViT).", "num_members", ("--members", "-M")
        ),
        Option("attribution", str, "Source attribution: embedding, encoding, none.", "source_attribution"),
        Option(
            "attribution_layer",
            str,
            "Where: late (after the last SA block), early, or a block index.",
            parse=_attribution_layer,
        ),
        Option("inference", str, "separate, sum, alternating, single (multi_encoder: sum, separate)."),
        Option("input_mixing", str, "binarized_cutmix or all_tokens."),
        Option("network", str, "mixvit, or multi_encoder for the naive MIMO/MixMo transformers."),
        Option("mix_alpha", float, "alpha of the token-mask ratio Beta(alpha, alpha)."),
        Option("msda", str, "Pixel MSDA: simultaneous, alternate, none."),
        Option("batch_repetitions", int, "Batch augmentations b.", "", ("--batch-repetitions", "-b")),
    ],  # fmt: skip
    summary_keys=("top1", "top1_individual", "nll", "ece"),
    evaluator=evaluate,
    eval_help="Ensemble and per-subnetwork accuracy, NLL, ECE (calibrated too), diversity; any inference scheme.",
    eval_options=[
        Option("inference", str, "Evaluate under another inference scheme than the run's.", None),
        common.RELIABILITY_OPTION,
    ],
    listing=RecipeListing(
        title="MixViT recipes (thesis ch. 4 numbers, top-1 %)",
        columns={
            "recipe": lambda r: r.name,
            "what": lambda r: r.description,
            "tables": lambda r: ", ".join(_table_label(res.table) for res in r.results) or "-",
            "acc.": lambda r: _cell(r, "top1"),
            "subnet acc.": lambda r: _cell(r, "top1_individual"),
            "# FLOPS": _flops,
        },
        footer=f"MixViT's analytic inference overhead (A.7.3): x{overhead(5, 2):.2f} for the 5-block ConViT, "
        f"x{overhead(24, 2):.2f} for CaiT-24 (M = 2).",
        right_aligned=("acc.", "subnet acc.", "# FLOPS"),
    ),
    recipe_options=[Option("table", str, "Only recipes of this table, e.g. 4.6, 4.2 (a-d), 4.2a or A.19.", None)],
    recipe_filter=in_table,
)


def main() -> None:
    common.run_app(app)


if __name__ == "__main__":
    main()
