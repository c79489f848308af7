"""`scimix train | train-generator | eval | recipes | hybrids | transfer`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from mixlab import cli as common
from mixlab.cli import Option, RecipeListing
from mixlab.engine.rundir import checkpoint_of
from mixlab.errors import ConfigError
from mixlab.metrics import scimix_transfer
from mixlab.metrics.hybrids import hybrid_pairs
from mixlab.mixing import fourier_amplitude_swap
from mixlab.ssl import primary
from mixlab.ssl.evaluation import restore_ssl_method, ssl_evaluator
from mixlab.visual import grid_parents, save_hybrid_grid, to_uint8

from scimix.adain import AdaINTransfer
from scimix.config import ScimixConfig
from scimix.method import scimix_method
from scimix.recipes import BOOK


def _paper(recipe, key: str) -> str:
    metrics = recipe.results[0].metrics if recipe.results else {}
    if key not in metrics:
        return "-"
    std = metrics.get(f"{key}_std")
    return f"{metrics[key]:g} ± {std:g}" if std is not None else f"{metrics[key]:g}"


def _phases(recipe) -> str:
    c = recipe.config
    parts = (["generator"] if c.train_generator and c.generator_run is None else []) + (
        [c.variant + ("" if c.num_hybrid_batches and (c.train_generator or c.mixer != "scimix") else " (no hybrids)")]
        if c.train_classifier else [])  # fmt: skip
    return " -> ".join(parts)


app = common.method_app(
    package="scimix",
    help="SciMix: a style-code generator swaps semantic contents; L_contradict on MT, FixMatch, supervised (thesis ch. 2).",
    train_help="Train the generator, then the classifier with L_contradict (default: the paper's main recipe for "
    "--dataset; 'digits' when none). With --generator RUN, only the classifier, on that run's generator.",
    config_cls=ScimixConfig,
    book=BOOK,
    make_method=scimix_method,
    options=[
        Option(
            "generator",
            Path,
            "A finished generator run of the same setting: train only the classifier on it.",
            "generator_run",
            parse=str,
        ),
        Option(
            "base",
            str,
            "The classifier's algorithm: mean-teacher, fixmatch, supervised (default: the recipe's).",
            "variant",
        ),
        Option("labels", int, "Number of labeled images (class-balanced, seeded split).", "num_labeled"),
        Option("model", str, "Trunk of E_c, E_r and the classifier: wrn{depth}-{width} (the paper's wrn28-2)."),
        Option("alpha", float, "L_contradict's mixture weight of the semantic parent (not in the sources: 0.9)."),
        Option("hybrid_loss", str, "How hybrids are used (Table V): contradict, consistency, pseudo_label, labeled."),
        Option("mixer", str, "Hybrids from the generator (scimix), or mixup / cutmix (Table II)."),
        Option("split_seed", int, "Seed of the labeled/unlabeled split (default: the recipe's, 0)."),
    ],  # fmt: skip
    summary_keys=("top1", "median_top1", "nll"),
    evaluator=ssl_evaluator(method="scimix", config_cls=ScimixConfig, make_method=scimix_method),
    eval_help="Test accuracy, NLL and ECE of a run's classifier (EMA / teacher); of the generator's classifier for a "
    "generator-only run.",
    eval_options=[common.RAW_WEIGHTS_OPTION],
    ensembles=False,
    listing=RecipeListing(
        title="SciMix recipes (the papers' accuracy %, s_c / s_r %)",
        columns={
            "recipe": lambda r: r.name,
            "what": lambda r: r.description,
            "phases": _phases,
            "labels": lambda r: str(r.config.num_labeled),
            "paper top-1": lambda r: _paper(r, "top1"),
            "paper s_c": lambda r: _paper(r, "s_c"),
            "table": lambda r: r.results[0].table.split(" (")[0] if r.results else "",
        },
        right_aligned=("labels", "paper top-1", "paper s_c"),
    ),
    train_commands={
        "train-generator": (
            "Train the generator phase only (its classifier E_c o C is evaluated).",
            {"train_classifier": False},
        ),
    },  # fmt: skip
)


def _restore(checkpoint: Path, data_root: Path | None, device: str) -> Any:
    method, _ = restore_ssl_method(
        checkpoint, method="scimix", config_cls=ScimixConfig, make_method=scimix_method, device=device,
        data_root=data_root,
    )  # fmt: skip
    for module in method.trainable.values():
        module.eval()
    return method


def _require_generator(method: Any, path: Path) -> None:
    if not (method.config.train_generator or method.config.generator_run):
        raise ConfigError(f"{path} is a run without a SciMix generator (a baseline): it makes no hybrids")


@app.command()
@common.handle_errors
def hybrids(
    checkpoint: common.CheckpointArg,
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: <run>/hybrids.png).")] = None,
    rows: Annotated[int, typer.Option(help="Semantic parents (one per class first).")] = 10,
    columns: Annotated[int, typer.Option(help="Context parents.")] = 8,
    seed: Annotated[int, typer.Option(help="Which test images are drawn.")] = 0,
    data_root: common.DataRootArg = None,
    device: common.DeviceArg = "auto",
) -> None:
    """A grid of hybrids G(E_c(row), E_r(column)): semantic parents as rows, context parents as columns."""
    path = checkpoint_of(checkpoint)
    if rows < 1 or columns < 1:
        raise ConfigError("--rows and --columns must be at least 1")
    method = _restore(path, data_root, device)
    _require_generator(method, path)
    data = method.data.evaluation
    row_index, col_index = grid_parents(data.targets, rows, columns, seed)
    dev = method.runtime.device
    x1 = method.inputs.scale(data.images[row_index].to(dev)).repeat_interleave(columns, 0)
    x2 = method.inputs.scale(data.images[col_index].to(dev)).repeat(rows, 1, 1, 1)
    cells = method.hybridize(x1, x2)
    mean, std = method.inputs.mean.flatten().tolist(), method.inputs.std.flatten().tolist()
    grid = to_uint8(cells, mean, std).view(rows, columns, 3, *cells.shape[-2:])
    target = out if out is not None else path.parent.parent / "hybrids.png"
    save_hybrid_grid(data.images[row_index], data.images[col_index], grid, target)
    common.console.print(f"wrote {target}: {rows} x {columns} hybrids")


@torch.no_grad()
def transfer_rates(
    method: Any,
    oracle: Any,
    partners: int = 1,
    seed: int = 0,
    batch: int = 500,
    fda_beta: float = 0.1,
    adain: AdaINTransfer | None = None,
) -> dict[str, Any]:
    """§3.8 on the test set: each test image a semantic parent, paired with ``partners`` random other test images.
    s_c: the oracle's accuracy on the hybrids (the semantic parent's label); s_r: hybrids closer to their context
    parent than to their semantic parent in standardised pixel space. The comparison rows: MixUp with the dominant
    (semantic) parent's label, lambda ~ U(0.5, 1) (its s_r is 0 by construction), and FDA, the semantic parent with
    the low-frequency amplitude of the context parent (band ``fda_beta`` of the side; on the uint8 pixels), and, given
    a pretrained ``adain`` model, AdaIN: the semantic parent in the style of the context parent."""
    data = method.data.evaluation
    i1, i2 = hybrid_pairs(len(data), len(data), partners, seed=seed, same_pool=True)
    rows: dict[str, list] = {"scimix": [], "mixup": [], "fda": []} | ({"adain": []} if adain is not None else {})
    dev = method.runtime.device
    if adain is not None:
        adain = adain.to(dev)
    g = torch.Generator().manual_seed(seed)
    for a, b in zip(i1.split(batch), i2.split(batch)):
        raw1, raw2 = data.images[a].to(dev), data.images[b].to(dev)
        x1, x2 = method.inputs.scale(raw1), method.inputs.scale(raw2)
        lam = (0.5 + 0.5 * torch.rand(len(a), generator=g)).to(dev).view(-1, 1, 1, 1)
        fda = fourier_amplitude_swap(raw1.float(), raw2.float(), fda_beta).round().clamp(0, 255).to(torch.uint8)
        hybrids = [("scimix", method.hybridize(x1, x2)), ("mixup", lam * x1 + (1 - lam) * x2),
                   ("fda", method.inputs.scale(fda))]  # fmt: skip
        if adain is not None:
            styled = adain(raw1.float() / 255, raw2.float() / 255).mul(255).round().to(torch.uint8)
            hybrids.append(("adain", method.inputs.scale(styled)))
        for name, x_h in hybrids:
            predicted = primary(oracle.ema.module(x_h)).argmax(1).cpu()
            rows[name].append((predicted, data.targets[a], x_h.cpu(), x1.cpu(), x2.cpu()))
    report: dict[str, Any] = {"pairs": len(i1)}
    for name, parts in rows.items():
        pred, labels, x_h, x_c, x_r = (torch.cat(p) for p in zip(*parts))
        result = scimix_transfer(pred, labels, x_h, x_c, x_r)
        report[f"{name}_s_c"], report[f"{name}_s_r"] = 100 * result["s_c"], 100 * result["s_r"]
    return report


@app.command()
@common.handle_errors
def transfer(
    checkpoint: common.CheckpointArg,
    oracle: Annotated[Path, typer.Option(help="A fully supervised classifier run (e.g. the *-oracle recipe).")],
    partners: Annotated[int, typer.Option(help="Context partners per test image.")] = 1,
    fda_beta: Annotated[float, typer.Option(help="FDA's low-frequency band, a share of the image side.")] = 0.1,
    adain_vgg: Annotated[
        Path | None, typer.Option(help="AdaIN row: the normalised VGG-19 state dict (vgg_normalised.pth).")
    ] = None,
    adain_decoder: Annotated[
        Path | None, typer.Option(help="AdaIN row: its decoder's state dict (decoder.pth).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rates here (default: <run>).")] = None,
    data_root: common.DataRootArg = None,
    device: common.DeviceArg = "auto",
) -> None:
    """Transfer rates (Table 2.5): s_c with an oracle classifier and pixel-space s_r, SciMix against MixUp and FDA
    (and AdaIN, given its pretrained files)."""
    if (adain_vgg is None) != (adain_decoder is None):
        raise ConfigError("the AdaIN row needs both --adain-vgg and --adain-decoder")
    adain = AdaINTransfer.from_files(adain_vgg, adain_decoder) if adain_vgg and adain_decoder else None
    path = checkpoint_of(checkpoint)
    method = _restore(path, data_root, device)
    _require_generator(method, path)
    judge = _restore(checkpoint_of(oracle), data_root, device)
    if judge.config.dataset != method.config.dataset:
        raise ConfigError(f"the oracle was trained on {judge.config.dataset}, the generator on {method.config.dataset}")
    report = transfer_rates(method, judge, partners=partners, fda_beta=fda_beta, adain=adain)
    target = json_out if json_out is not None else path.parent.parent / "transfer.json"
    target.write_text(json.dumps({"checkpoint": str(path), "oracle": str(oracle), **report}, indent=2) + "\n")
    common.console.print(common.metrics_table(f"transfer rates of {path} (%)", report))
    common.console.print(f"wrote {target}")


def main() -> None:
    common.run_app(app)


if __name__ == "__main__":
    main()
