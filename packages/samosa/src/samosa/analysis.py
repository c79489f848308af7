"""What `samosa hybrids` and `samosa separation` compute from a trained run (spec samosa-scimix §2.5, §2.8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mixlab.data import build_dataset
from mixlab.errors import ConfigError
from mixlab.metrics import background_separation, linear_probe_accuracy, samosa_separation
from mixlab.metrics.hybrids import hybrid_pairs
from mixlab.ssl import primary
from mixlab.visual import grid_parents, save_hybrid_grid, to_uint8
from torch import Tensor

from samosa.hybrids import hybridize


def _scaled(method: Any, images: Tensor) -> Tensor:
    return method.inputs.scale(images.to(method.runtime.device))


def _require_branch(method: Any) -> None:
    if not method.config.use_reconstruction:
        raise ConfigError("this run has no reconstruction branch (use_reconstruction=false): it makes no hybrids")


@torch.no_grad()
def hybrid_grid(method: Any, path: Path, *, rows: int = 8, columns: int = 8, seed: int = 0) -> dict[str, Any]:
    """A PNG of hybrids: ``rows`` semantic parents (one per class first) down the side, ``columns`` appearance
    parents along the top, each cell D(E_c(row), E_r(column)); cells the classifier filter rejects are framed red
    (the hybrid is drawn anyway, not its replacement)."""
    _require_branch(method)
    data = method.data.evaluation
    row_index, col_index = grid_parents(data.targets, rows, columns, seed)
    x1 = _scaled(method, data.images[row_index]).repeat_interleave(columns, 0)
    y1 = data.targets[row_index].to(x1.device).repeat_interleave(columns, 0)
    x2 = _scaled(method, data.images[col_index]).repeat(rows, 1, 1, 1)
    cfg = method.config
    raw = hybridize(method.model, method.gates, method.decoder, x1, y1, x2, filter=False, bn_mode="eval")
    checked = hybridize(method.model, method.gates, method.decoder, x1, y1, x2, filter=True, bn_mode="eval")
    mean, std = method.inputs.mean.flatten().tolist(), method.inputs.std.flatten().tolist()
    cells = to_uint8(raw.x, mean, std).view(rows, columns, 3, *raw.x.shape[-2:])
    rejected = (~checked.kept).view(rows, columns).cpu()
    save_hybrid_grid(data.images[row_index], data.images[col_index], cells, path, rejected=rejected)
    return {"path": str(path), "rows": rows, "columns": columns, "rejected": int(rejected.sum()),
            "filter": cfg.filter_hybrids}  # fmt: skip


@torch.no_grad()
def _codes(method: Any, images: Tensor, batch: int = 500) -> tuple[Tensor, Tensor, Tensor]:
    """(E_r codes z_r, pooled E_c features, primary logits) of uint8 images, in eval mode, batch by batch."""
    method.model.eval()
    method.gates.eval()
    z_r, f_c, logits = [], [], []
    for chunk in images.split(batch):
        x = _scaled(method, chunk)
        z_c, _ = method.model.encoder(x)
        z_r.append(method.gates(x).float().cpu())
        f_c.append(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(z_c, 1), 1).float().cpu())
        logits.append(primary(method.model.classifier(z_c)).float().cpu())
    return torch.cat(z_r), torch.cat(f_c), torch.cat(logits)


@torch.no_grad()
def separation(method: Any, *, partners: int = 10, seed: int = 0, probe: bool = True, batch: int = 500) -> dict:
    """§2.8 on D_H: every labeled image hybridized with ``partners`` random unlabeled images, raw (no filter).

    s_c: SAMOSA's own classifier on the hybrids, the semantic parent's label as truth; s_r and the d_c / d_r ratio
    on E_r's codes; for MNIST-M, the background criterion too; with ``probe``, linear probes on frozen z_r (trained
    on every training label, [S] §4.3) and on pooled z_c (trained on the labeled images only), scored on the test
    set.
    """
    _require_branch(method)
    method.model.eval()
    method.gates.eval()
    method.decoder.eval()
    labeled, unlabeled = method.data.labeled, method.data.unlabeled_images
    i1, i2 = hybrid_pairs(len(labeled), len(unlabeled), partners, seed=seed)
    preds, z_h, z_1, z_2, labels = [], [], [], [], []
    backgrounds = _mnistm_backgrounds(method) if method.config.dataset == "mnistm" else None
    background_parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    for a, b in zip(i1.split(batch), i2.split(batch)):
        x1, x2 = _scaled(method, labeled.images[a]), _scaled(method, unlabeled[b])
        y1 = labeled.targets[a]
        hybrids = hybridize(method.model, method.gates, method.decoder, x1, y1.to(x1.device), x2, filter=False)
        z_c, _ = method.model.encoder(hybrids.x)
        preds.append(primary(method.model.classifier(z_c)).argmax(1).cpu())
        z_h.append(method.gates(hybrids.x).cpu())
        z_1.append(method.gates(x1).cpu())
        z_2.append(method.gates(x2).cpu())
        labels.append(y1)
        if backgrounds is not None:
            masks, crops, index_l, index_u = backgrounds
            pixels = to_uint8(hybrids.x, *_stats(method)).float() / 255
            background_parts.append(
                (pixels, masks[index_l[a]], crops[index_l[a]].float() / 255, crops[index_u[b]].float() / 255)
            )
    report = samosa_separation(torch.cat(preds), torch.cat(labels), torch.cat(z_h), torch.cat(z_1), torch.cat(z_2))
    report = {k: 100 * v if k in ("s_c", "s_r") else v for k, v in report.items()}
    report["hybrids"] = len(i1)
    if background_parts:
        parts = [torch.cat(p) for p in zip(*background_parts)]
        background = background_separation(*parts)
        report["s_r_background"] = 100 * background["s_r"]
        report["ratio_background"] = background["ratio"]
    if probe:
        report.update(_probes(method, batch))
    return report


def _stats(method: Any) -> tuple[list[float], list[float]]:
    return method.inputs.mean.flatten().tolist(), method.inputs.std.flatten().tolist()


def _mnistm_backgrounds(method: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The MNIST-M masks and crops of the labeled and unlabeled images, by their training-set indices."""
    train = build_dataset("mnistm", "train", method.data_root)
    split = method.data.split
    return train.masks, train.backgrounds, torch.as_tensor(split.labeled), torch.as_tensor(split.unlabeled)


def _probes(method: Any, batch: int) -> dict[str, float]:
    """Linear probes: on z_r with every training label, on pooled z_c with the labeled images (test accuracy %)."""
    train = build_dataset(method.config.dataset, "train", method.data_root)
    test = method.data.evaluation
    zr_train, _, _ = _codes(method, train.images, batch)
    zr_test, fc_test, _ = _codes(method, test.images, batch)
    _, fc_labeled, _ = _codes(method, method.data.labeled.images, batch)
    k = method.num_classes
    zr = linear_probe_accuracy(zr_train, train.targets, zr_test, test.targets, num_classes=k, epochs=200, lr=0.01)
    fc = linear_probe_accuracy(fc_labeled, method.data.labeled.targets, fc_test, test.targets, num_classes=k,
                               epochs=200, lr=0.01)  # fmt: skip
    return {"probe_zr": 100 * zr, "probe_zc": 100 * fc}
