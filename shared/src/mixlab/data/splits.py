"""Seeded, class-balanced semi-supervised splits (labeled / unlabeled / validation), saved with the run.

Rule (every SSL spec of the project): the labeled set has ``num_labeled / len(labeled_classes)`` images of each
labeled class (``num_labeled`` must divide evenly; the SVHN protocol of RealMix, whose labeled set follows the class
frequencies, is ``balance="proportional"``). Validation images, when asked for, are drawn the same way and are
removed from the unlabeled pool. The unlabeled set is every other training image of the unlabeled classes (their
labels are kept in the tensors for auditing; methods must not read them).

Class-mismatch protocol (RealMix §5.2, after Oliver et al. 2018). With ``labeled_classes`` a subset (CIFAR-10:
the six animals 2..7, 400 images each = ``num_labeled=2400``), the split is drawn exactly as a class-balanced split
over **all** classes (400 of every class, i.e. the usual 4,000-label split) of which only the labeled classes'
images are kept: the 400 drawn in each other class are held out of everything. The unlabeled set holds the rest of
``unlabeled_classes`` (4 x 4,600 = 18,400 images). ``mismatch=r`` picks those classes the way the RealMix table
does: take the last ``n_u`` labeled classes (4, 5, 6, 7) and replace the first ``round(r·n_u)`` of them by the first
classes outside the labeled set (0, 1, 8, 9), giving {4,5,6,7}, {0,5,6,7}, {0,1,6,7}, {0,1,8,7}, {0,1,8,9} for
r = 0, .25, .5, .75, 1. The fraction of out-of-distribution unlabeled images is then exactly ``r``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mixlab.errors import ConfigError, DatasetError


@dataclass
class SplitIndices:
    """Indices into the training set (int64 tensors, sorted) plus the parameters that produced them."""

    labeled: torch.Tensor
    unlabeled: torch.Tensor
    validation: torch.Tensor
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists of ints) for ``split.json`` in the run directory."""
        return {
            **self.params,
            "num_labeled_indices": int(self.labeled.numel()),
            "num_unlabeled_indices": int(self.unlabeled.numel()),
            "num_validation_indices": int(self.validation.numel()),
            "labeled": self.labeled.tolist(),
            "unlabeled": self.unlabeled.tolist(),
            "validation": self.validation.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitIndices:
        if not isinstance(data, dict):
            raise DatasetError(f"a saved split must be a JSON object, found {type(data).__name__}.")
        try:
            tensors = {key: torch.tensor(data[key], dtype=torch.long) for key in ("labeled", "unlabeled", "validation")}
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"a saved split is malformed ({type(error).__name__}: {error}).") from None
        derived = {"num_labeled_indices", "num_unlabeled_indices", "num_validation_indices"}
        params = {k: v for k, v in data.items() if k not in tensors and k not in derived}
        return cls(tensors["labeled"], tensors["unlabeled"], tensors["validation"], params)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` atomically (temporary file, then rename)."""
        target = Path(path)
        temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        temporary.write_text(json.dumps(self.to_json()))
        os.replace(temporary, target)

    @classmethod
    def load(cls, path: str | Path) -> SplitIndices:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise DatasetError(f"could not read the split file {path} ({error}).") from None


def _class_list(values: Sequence[int] | None, num_classes: int, what: str) -> list[int]:
    if values is None:
        return list(range(num_classes))
    out = [int(v) for v in values]
    if not out or len(set(out)) != len(out) or min(out) < 0 or max(out) >= num_classes:
        raise ConfigError(f"{what} must be distinct class indices in [0, {num_classes}), got {list(values)}.")
    return sorted(out)


def mismatch_unlabeled_classes(
    labeled_classes: Sequence[int], num_classes: int, mismatch: float, num_unlabeled_classes: int | None = None
) -> list[int]:
    """The unlabeled classes of the RealMix/Oliver protocol at mismatch fraction ``mismatch`` (module docstring)."""
    inside = sorted(int(c) for c in labeled_classes)
    outside = [c for c in range(num_classes) if c not in inside]
    n_u = len(outside) if num_unlabeled_classes is None else int(num_unlabeled_classes)
    if not 0.0 <= mismatch <= 1.0:
        raise ConfigError(f"mismatch must be a fraction in [0, 1], got {mismatch}.")
    if n_u < 1 or n_u > len(inside) or n_u > len(outside):
        raise ConfigError(
            f"the mismatch protocol cannot draw {n_u} unlabeled classes. They must come from both the {len(inside)} "
            f"labeled and the {len(outside)} other classes; choose num_unlabeled_classes <= "
            f"{min(len(inside), len(outside))}."
        )
    k = round(mismatch * n_u)
    if abs(k - mismatch * n_u) > 1e-9:
        raise ConfigError(
            f"mismatch={mismatch} is not a multiple of 1/{n_u}: with {n_u} unlabeled classes the possible levels "
            f"are {', '.join(f'{i / n_u:g}' for i in range(n_u + 1))}."
        )
    return sorted(outside[:k] + inside[len(inside) - n_u :][k:])


def _proportional(counts: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder apportionment of ``total`` over classes proportionally to ``counts``."""
    quota = counts * total / counts.sum()
    share = np.floor(quota).astype(np.int64)
    order = np.lexsort((np.arange(len(counts)), -(quota - share)))
    share[order[: total - int(share.sum())]] += 1
    return share


def ssl_split(
    targets: torch.Tensor | Sequence[int],
    num_labeled: int,
    num_classes: int,
    seed: int,
    num_validation: int = 0,
    labeled_classes: Sequence[int] | None = None,
    unlabeled_classes: Sequence[int] | None = None,
    mismatch: float | None = None,
    num_unlabeled_classes: int | None = None,
    balance: Literal["uniform", "proportional"] = "uniform",
    unlabeled_includes_labeled: bool = False,
) -> SplitIndices:
    """Draw a seeded SSL split of the training targets (rules in the module docstring).

    ``unlabeled_includes_labeled``: FixMatch-style, the labeled images are also in the unlabeled set.
    Impossible requests (a count that does not divide, more images than a class has) raise :class:`ConfigError`.
    """
    labels = torch.as_tensor(targets).reshape(-1).to(torch.long)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DatasetError(
            f"an SSL split needs labeled training targets in [0, {num_classes}); found values in "
            f"[{int(labels.min())}, {int(labels.max())}] (an unlabeled split cannot be split further)."
        )
    inside = _class_list(labeled_classes, num_classes, "labeled_classes")
    if mismatch is not None:
        if unlabeled_classes is not None:
            raise ConfigError("give either unlabeled_classes or mismatch, not both (mismatch chooses the classes).")
        if labeled_classes is None:
            raise ConfigError("the mismatch protocol needs labeled_classes (e.g. the six CIFAR-10 animals 2..7).")
        u_classes = mismatch_unlabeled_classes(inside, num_classes, mismatch, num_unlabeled_classes)
    else:
        u_classes = _class_list(unlabeled_classes, num_classes, "unlabeled_classes")
    if num_labeled < 1 or num_validation < 0:
        raise ConfigError(f"num_labeled must be >= 1 and num_validation >= 0, got {num_labeled}, {num_validation}.")

    counts = torch.bincount(labels, minlength=num_classes).numpy()
    if balance == "uniform":
        for what, total in (("num_labeled", num_labeled), ("num_validation", num_validation)):
            if total % len(inside):
                raise ConfigError(
                    f"{what}={total} cannot be split evenly over the {len(inside)} labeled classes; use a multiple "
                    f"of {len(inside)} (the split is class-balanced)."
                )
        # Every class (not only the labeled ones) gives up the same number of images: the mismatch protocol's rule.
        n_lab = np.full(num_classes, num_labeled // len(inside))
        n_val = np.full(num_classes, num_validation // len(inside))
    elif balance == "proportional":
        if len(inside) != num_classes or mismatch is not None:
            raise ConfigError("balance='proportional' (the RealMix SVHN protocol) uses every class as labeled.")
        n_lab, n_val = _proportional(counts, num_labeled), _proportional(counts, num_validation)
    else:
        raise ConfigError(f"balance must be 'uniform' or 'proportional', got {balance!r}.")

    for c in range(num_classes):
        if (c in inside or c in u_classes) and n_lab[c] + n_val[c] > counts[c]:
            raise ConfigError(
                f"class {c} has too few training images for this split. It has {counts[c]}, fewer than the "
                f"{n_lab[c]} labeled + {n_val[c]} validation images the split asks of every class; lower "
                "num_labeled/num_validation."
            )
        if c in u_classes and not unlabeled_includes_labeled and n_lab[c] + n_val[c] == counts[c]:
            raise ConfigError(
                f"class {c} would have no unlabeled image left ({counts[c]} images, {n_lab[c]} labeled, {n_val[c]} "
                "validation); lower num_labeled/num_validation."
            )

    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(labels.numel(), generator=generator)
    ordered_labels = labels[order]
    labeled, unlabeled, validation = [], [], []
    for c in range(num_classes):
        members = order[ordered_labels == c]  # class c in the seeded order
        drawn, held = members[: n_lab[c]], members[n_lab[c] : n_lab[c] + n_val[c]]
        rest = members[n_lab[c] + n_val[c] :]
        if c in inside:
            labeled.append(drawn)
            validation.append(held)
        if c in u_classes:
            unlabeled.append(torch.cat([drawn, rest]) if unlabeled_includes_labeled and c in inside else rest)

    def pack(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.sort(torch.cat(parts)).values if parts else torch.empty(0, dtype=torch.long)

    params = {
        "seed": int(seed),
        "num_labeled": int(num_labeled),
        "num_validation": int(num_validation),
        "num_classes": int(num_classes),
        "labeled_classes": inside,
        "unlabeled_classes": u_classes,
        "mismatch": mismatch,
        "balance": balance,
        "unlabeled_includes_labeled": bool(unlabeled_includes_labeled),
    }
    return SplitIndices(pack(labeled), pack(unlabeled), pack(validation), params)
