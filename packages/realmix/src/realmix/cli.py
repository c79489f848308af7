"""`realmix train | eval | recipes`."""

from __future__ import annotations

from typing import Any

from mixlab import cli as common
from mixlab.cli import Option, RecipeListing
from mixlab.errors import ConfigError
from mixlab.ssl.evaluation import ssl_evaluator

from realmix.config import VARIANTS, RealMixConfig
from realmix.method import realmix_method
from realmix.paper import TABLES, markdown_table
from realmix.recipes import BOOK, recipe_for


def choose_recipe(values: dict[str, Any]) -> str | None:
    """`--variant V` runs the --dataset setting (its main recipe) with algorithm V's own hyperparameters."""
    variant, recipe = values["variant"], values["recipe"]
    if variant is None or values["resume"] is not None:
        return recipe
    if variant not in VARIANTS:
        raise ConfigError(f"--variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if recipe is not None:
        raise ConfigError("give --recipe or --variant, not both (recipe names end with their variant)")
    return recipe_for(values["dataset"] or "digits", variant)


def _error(recipe) -> str:
    if not recipe.results:
        return "-"
    m = recipe.results[0].metrics
    return f"{m['error']:.2f}" + (f" ± {m['error_std']:.2f}" if "error_std" in m else "")


def print_paper_table(paper: str | None = None) -> bool:
    if paper is None:
        return False
    common.console.print(markdown_table(paper), markup=False)
    return True


app = common.method_app(
    package="realmix",
    help="RealMix (Nair et al. 2019) and its baselines: supervised, Mean Teacher, MixMatch, FixMatch.",
    train_help="Train RealMix or a baseline (default: the paper's main recipe for --dataset; 'digits' when none).",
    config_cls=RealMixConfig,
    book=BOOK,
    make_method=realmix_method,
    options=[
        Option(
            "variant",
            str,
            f"Algorithm: {', '.join(VARIANTS)} (default: the recipe's, realmix); runs the --dataset setting with "
            "that algorithm's own hyperparameters.",
            None,
        ),
        Option("labels", int, "Number of labeled images (class-balanced, seeded split).", "num_labeled"),
        Option("split_seed", int, "Seed of the labeled/unlabeled split (default: the recipe's, 1)."),
        Option("model", str, "Backbone, e.g. wrnmm28-2 (the paper's), wrnmm10-1, wrn28-2."),
        Option("mismatch", float, "Class mismatch: % of the unlabeled classes out of distribution (0..100)."),
        Option("ood_gamma", float, "OOD mask: share of the least confident unlabeled rows dropped per batch."),
        Option("tsa", str, "Training Signal Annealing: none, linear, log, exp."),
        Option("extend_aug", str, "Extend step: cutout, simple, none."),
        Option("extend_copies", int, "Extend step: augmented copies per unlabeled image."),
        Option("lambda_u", float, "Weight of the unlabeled loss."),
    ],
    choose_recipe=choose_recipe,
    summary_keys=("error", "median_error", "top1", "nll"),
    evaluator=ssl_evaluator(method="realmix", config_cls=RealMixConfig, make_method=realmix_method),
    eval_help="Test error, accuracy, NLL and ECE of a checkpoint's EMA model on the run's evaluation set.",
    eval_options=[common.RAW_WEIGHTS_OPTION],
    ensembles=False,
    listing=RecipeListing(
        title=f"RealMix recipes (paper error %; tables: {', '.join(TABLES)})",
        columns={
            "recipe": lambda r: r.name,
            "what": lambda r: r.description,
            "labels": lambda r: str(r.config.num_labeled),
            "steps": lambda r: str(r.config.steps),
            "paper error %": _error,
            "table": lambda r: r.results[0].table.split(" (")[0] if r.results else "",
        },
        right_aligned=("labels", "steps", "paper error %"),
    ),
    recipe_options=[Option("paper", str, "Print one of the paper's tables (1-6) in Markdown.", None)],
    recipe_action=print_paper_table,
)


def main() -> None:
    common.run_app(app)


if __name__ == "__main__":
    main()
