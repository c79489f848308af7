"""`mixmo train | eval | recipes`."""

from __future__ import annotations

from mixlab import cli as common
from mixlab.cli import Option, RecipeListing

from mixmo.config import MixMoConfig
from mixmo.evaluation import evaluate_checkpoints
from mixmo.method import MixMoMethod
from mixmo.recipes import BOOK


def _first(recipe, key: str, fmt: str) -> str:
    metrics = recipe.results[0].metrics if recipe.results else {}
    return format(metrics[key], fmt) if key in metrics else "-"


app = common.method_app(
    package="mixmo",
    help="MixMo: multi-input multi-output subnetworks trained with mixed inputs (thesis ch. 3).",
    train_help="Train a MixMo network (default: the paper's main recipe for --dataset; 'digits' when none).",
    config_cls=MixMoConfig,
    book=BOOK,
    make_method=MixMoMethod,
    options=[
        Option("model", str, "Backbone, e.g. wrn28-10, wrn16-1, preactresnet18-2."),
        Option("members", int, "Number of inputs/subnetworks M (1: plain net).", "num_members", ("--members", "-M")),
        Option("block", str, "Binary mixing block: cutmix, hconcat, vconcat, patchup2d, fmix, cowmask, linear."),
        Option("alpha", float, "Ratio concentration alpha (<=0: fixed 1/M, i.e. MIMO)."),
        Option("binary_prob", float, "Probability p of the binary block.", "", ("--binary-prob", "-p")),
        Option("weight_root", float, "Root r of the w_r reweighting (inf: none).", "", ("--weight-root", "-r")),
        Option("batch_repetitions", int, "Batch repetition b.", "", ("--batch-repetitions", "-b")),
        Option("pixel_msda", str, "In-pixel MSDA on the inputs: none, cutmix, mixup."),
        Option("augmix", bool, "AugMix on the training images (CIFAR-100-C experiments)."),
    ],
    evaluator=evaluate_checkpoints,
    eval_help="Top-1/5, NLL, ECE, calibrated NLL/ECE, each head's accuracy, diversity (and CIFAR-100-C robustness).",
    eval_options=[
        common.RELIABILITY_OPTION,
        Option(
            "cifar100c",
            bool,
            "Also report CIFAR-100-C (a CIFAR-100 model, when the data is present).",
            None,
            default=True,
        ),
    ],  # fmt: skip
    listing=RecipeListing(
        title="MixMo recipes (paper numbers; NLL raw, not x1e-2)",
        columns={
            "recipe": lambda r: r.name,
            "what": lambda r: r.description,
            "tables": lambda r: "; ".join(res.table.split(" (")[0] for res in r.results) or "-",
            "top1": lambda r: _first(r, "top1", ".2f"),
            "nll_c": lambda r: _first(r, "nll_c", ".3f"),
        },
        right_aligned=("top1", "nll_c"),
    ),
)


def main() -> None:
    common.run_app(app)


if __name__ == "__main__":
    main()
