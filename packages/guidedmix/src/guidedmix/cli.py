"""`guidedmix train | eval | recipes | predict`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from mixlab import cli as common
from mixlab.cli import Option, RecipeListing
from mixlab.engine.rundir import checkpoint_of
from mixlab.seg.data import build_seg_dataset
from mixlab.seg.evaluation import predict_files, prediction_grid, restore_seg_method, seg_evaluator

from guidedmix.config import GuidedMixConfig
from guidedmix.method import guidedmix_method
from guidedmix.recipes import BOOK


def _paper(recipe) -> str:
    for result in recipe.results:
        if "miou" in result.metrics:
            return f"{result.metrics['miou']:g}"
    return "-"


app = common.method_app(
    package="guidedmix",
    help="GuidedMix-Net: labeled images as reference for the pseudo masks of unlabeled ones (semi-supervised "
    "semantic segmentation).",
    train_help="Train GuidedMix-Net (default: the paper's main recipe for --dataset; the built-in 'digit-scenes' when "
    "none is given). --variant supervised trains the same network on the labeled images only.",
    config_cls=GuidedMixConfig,
    book=BOOK,
    make_method=guidedmix_method,
    options=[
        Option("variant", str, "guidedmix, or supervised (Table 2's baseline: labeled images only)."),
        Option(
            "labels",
            str,
            "Labeled images: a count (1464), a fraction of the train split (1/8) or a named setting (voc-aug-1464).",
        ),  # fmt: skip
        Option(
            "split_list",
            Path,
            "A published split list (one image id per line) of the labeled images.",
            "labeled_list",
            parse=str,
        ),  # fmt: skip
        Option("split_seed", int, "Seed of the random labeled subset (default 0)."),
        Option("encoder", str, "resnet50, resnet101 (the paper's), resnet18, resnet34 or resnet-tiny."),
        Option("arch", str, "psp_unet (the paper's network) or deeplabv3plus (smp; a documented deviation)."),
        Option(
            "pretrained",
            Path,
            "A local torchvision ResNet state dict for the encoder (nothing is downloaded).",
            parse=str,
        ),  # fmt: skip
        Option("crop_size", int, "Training crop side in pixels (VOC 321, Cityscapes 513, Context 480)."),
        Option("lambda_max", float, "Upper bound of the labeled image's weight lambda in the mix (Tables 1/6/8)."),
        Option("pairing", str, "similar (nearest in encoder-feature space) or random (Table 2; Cityscapes)."),
        Option("unlabeled_batch_size", int, "Unlabeled images per step and process (default: the recipe's)."),
        Option("lr", float, "Base learning rate of the encoder (new modules: x head_lr_mult)."),
        Option("workers", int, "DataLoader workers decoding file datasets."),
    ],
    summary_keys=("miou", "pixel_acc"),
    evaluator=seg_evaluator(method="guidedmix", config_cls=GuidedMixConfig, make_method=guidedmix_method),
    eval_help="mIoU, per-class IoU and pixel accuracy of a checkpoint on its dataset's validation split.",
    eval_options=[
        Option("tta", str, "none, or ms_flip (scales 0.5-1.75 x flip, Table 10) (default: the run's).", None),
        Option("eval_mode", str, "whole (default) or slide (sliding 513 windows, stride 342).", None),
        Option("max_images", int, "Score only the first N validation images.", None),
    ],
    ensembles=False,
    listing=RecipeListing(
        title="GuidedMix-Net recipes (the paper's mIoU %)",
        columns={
            "recipe": lambda r: r.name,
            "dataset": lambda r: r.config.dataset,
            "labels": lambda r: r.config.labels,
            "encoder": lambda r: r.config.encoder,
            "method": lambda r: r.config.variant,
            "paper mIoU": _paper,
            "table": lambda r: r.results[0].table if r.results else "ours (reduced)",
        },
        footer="Every paper recipe needs --pretrained PATH (an ImageNet ResNet state dict on your disk) to be "
        "comparable with the paper; without it the encoder starts from random weights.",
        right_aligned=("paper mIoU",),
    ),
)


@app.command()
@common.handle_errors
def predict(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A checkpoint (.pt) or a run directory.")],
    image: Annotated[
        list[Path], typer.Option("--image", "-i", help="An image file or a folder of images (repeatable).")
    ],
    out: Annotated[Path, typer.Option(help="Where the masks and overlays are written.")] = Path("predictions"),
    tta: Annotated[str | None, typer.Option(help="none or ms_flip (default: the run's).")] = None,
    alpha: Annotated[float, typer.Option(help="Opacity of the mask in the overlay.")] = 0.5,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
) -> None:
    """Segment images: writes <name>_mask.png (colour-coded), <name>_overlay.png and <name>_labels.png."""
    seg, _ = restore_seg_method(
        checkpoint_of(checkpoint), method="guidedmix", config_cls=GuidedMixConfig, make_method=guidedmix_method,
        device=device, overrides={"tta": tta} if tta else None,
    )  # fmt: skip
    written = predict_files(seg, image, out, alpha)
    for item in written:
        shares = ", ".join(f"{name} {share:g}%" for name, share in item["classes"].items())
        common.console.print(f"{item['image']} -> {item['mask']}  ({shares})")
    (out / "predictions.json").write_text(json.dumps(written, indent=2) + "\n")


@app.command()
@common.handle_errors
def pictures(
    checkpoint: Annotated[list[Path], typer.Option("--checkpoint", "-c", help="Runs to compare (repeatable).")],
    out: Annotated[Path, typer.Option(help="The PNG to write.")] = Path("predictions.png"),
    count: Annotated[int, typer.Option(help="Validation images (columns).")] = 8,
    data_root: Annotated[Path | None, typer.Option(help="Where datasets live.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
) -> None:
    """A grid of the first validation images of the runs' dataset: image, ground truth, one row per run."""
    models = []
    for path in checkpoint:
        seg, _ = restore_seg_method(
            checkpoint_of(path), method="guidedmix", config_cls=GuidedMixConfig, make_method=guidedmix_method,
            device=device, data_root=data_root,
        )  # fmt: skip
        models.append((f"{seg.config.variant} ({seg.config.labels} labels)", seg))
    first = models[0][1]
    dataset = build_seg_dataset(first.config.dataset, "val", data_root, **first.dataset_options())
    common.console.print(f"wrote {prediction_grid(models, dataset, out, count)}")


def main() -> None:
    common.run_app(app)
