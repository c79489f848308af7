"""`samosa train | eval | recipes | hybrids | separation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from mixlab import cli as common
from mixlab.cli import Option, RecipeListing
from mixlab.engine.rundir import checkpoint_of
from mixlab.errors import ConfigError
from mixlab.ssl.evaluation import restore_ssl_method, ssl_evaluator

from samosa.analysis import hybrid_grid, separation
from samosa.config import SamosaConfig
from samosa.method import samosa_method
from samosa.recipes import BOOK


def _paper(recipe, key: str) -> str:
    metrics = recipe.results[0].metrics if recipe.results else {}
    if key not in metrics:
        return "-"
    std = metrics.get(f"{key}_std")
    return f"{metrics[key]:g} ± {std:g}" if std is not None else f"{metrics[key]:g}"


def _parts(recipe) -> str:
    c = recipe.config
    parts = [name for name, on in (("rec", c.use_reconstruction), ("Omega", c.use_omega_rec),
                                   ("hybrids", c.use_hybrid_aug)) if on]  # fmt: skip
    return "+".join(parts) or "baseline"


SHORT = {"mean-teacher": "mt", "mixmatch": "mixmatch", "fixmatch": "fixmatch"}


def choose_recipe(values: dict) -> str | None:
    """`--base B`: the --dataset's main SAMOSA recipe, with base B (recipes are per base: their schedules differ)."""
    base, recipe = values["base"], values["recipe"]
    if base is None or values["resume"] is not None:
        return recipe
    if base not in SHORT:
        raise ConfigError(f"--base must be one of {', '.join(SHORT)}, not {base!r}")
    if recipe is not None:
        raise ConfigError("give --recipe or --base, not both (recipe names say their base)")
    dataset = values["dataset"] or "digits"
    name = BOOK.default(dataset).name.replace("-mt-", f"-{SHORT[base]}-")
    if name not in BOOK.recipes:
        raise ConfigError(
            f"there is no {base} recipe for {dataset}: pick one with --recipe (`samosa recipes --dataset {dataset}`)"
        )
    return name


app = common.method_app(
    package="samosa",
    help="SAMOSA: semantic hybrids from a gated decoder, on Mean Teacher, MixMatch and FixMatch (thesis ch. 2).",
    train_help="Train SAMOSA or its baseline (default: the paper's main recipe for --dataset; 'digits' when none).",
    config_cls=SamosaConfig,
    book=BOOK,
    make_method=samosa_method,
    choose_recipe=choose_recipe,
    options=[
        Option(
            "base",
            str,
            "Base algorithm: mean-teacher, mixmatch or fixmatch: runs the --dataset recipe of that base "
            "(default: Mean Teacher).",
            None,
        ),
        Option("labels", int, "Number of labeled images (class-balanced, seeded split).", "num_labeled"),
        Option("model", str, "Trunk of E_c and E_r: wrn{depth}-{width} (the paper's wrn28-2; depth >= 16)."),
        Option("reconstruction", bool, "Train E_r and D with L_rec (Table 2).", "use_reconstruction"),
        Option("omega", bool, "Omega_rec: tie E_c's block 11 to D's first layer (Table 2).", "use_omega_rec"),
        Option("hybrids", bool, "Use the hybrids as augmentation (Table 2).", "use_hybrid_aug"),
        Option("lambda_samosa", float, "Weight of Omega_rec (CIFAR-10: 0.5; SVHN, MNIST-M: 0.1)."),
        Option("split_seed", int, "Seed of the labeled/unlabeled split (default: the recipe's, 0)."),
    ],
    summary_keys=("top1", "median_top1", "nll"),
    evaluator=ssl_evaluator(method="samosa", config_cls=SamosaConfig, make_method=samosa_method),
    eval_help="Test accuracy, NLL and ECE of a checkpoint's EMA classifier (the Mean Teacher's teacher).",
    eval_options=[common.RAW_WEIGHTS_OPTION],
    ensembles=False,
    listing=RecipeListing(
        title="SAMOSA recipes (the paper's accuracy %, or separation metrics %)",
        columns={
            "recipe": lambda r: r.name,
            "what": lambda r: r.description,
            "base": lambda r: r.config.variant,
            "SAMOSA parts": _parts,
            "labels": lambda r: str(r.config.num_labeled),
            "epochs": lambda r: f"{r.config.epochs:g}" if r.config.epochs is not None else "-",
            "paper top-1": lambda r: _paper(r, "top1"),
            "paper s_c": lambda r: _paper(r, "s_c"),
            "table": lambda r: r.results[0].table.split(" (")[0] if r.results else "",
        },
        right_aligned=("labels", "epochs", "paper top-1", "paper s_c"),
    ),
)


def _restore(checkpoint: Path, data_root: Path | None, device: str):
    method, _ = restore_ssl_method(
        checkpoint, method="samosa", config_cls=SamosaConfig, make_method=samosa_method, device=device,
        data_root=data_root,
    )  # fmt: skip
    return method


@app.command()
@common.handle_errors
def hybrids(
    checkpoint: common.CheckpointArg,
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: <run>/hybrids.png).")] = None,
    rows: Annotated[int, typer.Option(help="Semantic parents (one per class first).")] = 10,
    columns: Annotated[int, typer.Option(help="Appearance parents.")] = 8,
    seed: Annotated[int, typer.Option(help="Which test images are drawn.")] = 0,
    data_root: common.DataRootArg = None,
    device: common.DeviceArg = "auto",
) -> None:
    """A grid of hybrids: semantic parents as rows, appearance parents as columns, rejected hybrids framed red."""
    path = checkpoint_of(checkpoint)
    if rows < 1 or columns < 1:
        raise typer.BadParameter("--rows and --columns must be at least 1")
    method = _restore(path, data_root, device)
    target = out if out is not None else path.parent.parent / "hybrids.png"
    report = hybrid_grid(method, target, rows=rows, columns=columns, seed=seed)
    common.console.print(
        f"wrote {report['path']}: {rows} x {columns} hybrids, {report['rejected']} rejected by the classifier filter"
    )


@app.command("separation")
@common.handle_errors
def separation_command(
    checkpoint: common.CheckpointArg,
    partners: Annotated[int, typer.Option(help="Unlabeled partners per labeled image (the paper: 10).")] = 10,
    probe: Annotated[bool, typer.Option(help="Also the linear probes on z_r and z_c (slow on a CPU).")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here (default: <run>).")] = None,
    data_root: common.DataRootArg = None,
    device: common.DeviceArg = "auto",
) -> None:
    """The hybrid-quality metrics of §2.8: s_c, s_r, the d_c / d_r ratio (MNIST-M: background criterion), probes."""
    path = checkpoint_of(checkpoint)
    method = _restore(path, data_root, device)
    report = separation(method, partners=partners, probe=probe)
    target = json_out if json_out is not None else path.parent.parent / "separation.json"
    target.write_text(json.dumps({"checkpoint": str(path), **report}, indent=2) + "\n")
    common.console.print(common.metrics_table(f"separation of {path} (s_c, s_r, probes in %)", report))
    common.console.print(f"wrote {target}")


def main() -> None:
    common.run_app(app)


if __name__ == "__main__":
    main()
