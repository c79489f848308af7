"""Training Signal Annealing (UDA, Xie et al. 2019) adapted to MixUp soft labels, as RealMix uses it (§3.5).

TSA drops labeled samples the model is already confident about, with a confidence threshold ``eta_t`` that rises
from ``1/C`` to 1 over training, so a 250-label set is not memorised early. RealMix's labels are MixUp mixtures, so
the one-hot rule "drop if ``p(y*|x) >= eta``" becomes "keep if some target class ``c`` (``y_c > 0``) still has
``p_c < y_c·eta``". The released code compared against ``logits·eta`` instead (a typo for labels); that variant is
kept as ``impl="official"`` for bit-faithful reproduction only.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from mixlab.errors import ConfigError
from mixlab.mixing import soft_cross_entropy

TSASchedule = Literal["linear", "log", "exp"]
TSAImpl = Literal["intended", "official"]

TSA_SCHEDULES: tuple[str, ...] = ("linear", "log", "exp")
TSA_IMPLS: tuple[str, ...] = ("intended", "official")

_SCALE = 5.0  # UDA's schedule sharpness: exp(-5) ≈ 0.0067


def tsa_threshold(progress: float, num_classes: int, schedule: TSASchedule) -> float:
    """``eta_t = alpha_t·(1 - 1/C) + 1/C`` with ``alpha_t`` = r (linear), 1 - exp(-5r) (log), exp(5(r - 1)) (exp).

    ``progress`` is ``r = step / total_steps`` in [0, 1].
    """
    if schedule not in TSA_SCHEDULES:
        raise ConfigError(f"TSA schedule must be one of {', '.join(TSA_SCHEDULES)}, got {schedule!r}.")
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:  # also rejects NaN
        raise ConfigError(f"TSA progress (step / total steps) must be in [0, 1], got {progress!r}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"TSA needs an integer number of classes >= 2, got {num_classes!r}.")
    if schedule == "linear":
        alpha = progress
    elif schedule == "log":
        alpha = 1.0 - math.exp(-_SCALE * progress)
    else:
        alpha = math.exp(_SCALE * (progress - 1.0))
    start = 1.0 / num_classes
    return alpha * (1.0 - start) + start


def _check_inputs(logits: torch.Tensor, soft_targets: torch.Tensor, threshold: float | None, impl: str) -> None:
    if impl not in TSA_IMPLS:
        raise ConfigError(f"TSA impl must be one of {', '.join(TSA_IMPLS)}, got {impl!r}.")
    if logits.dim() != 2 or logits.shape != soft_targets.shape:
        raise ConfigError(
            f"TSA needs logits and soft targets of the same (B, C) shape, got {tuple(logits.shape)} "
            f"and {tuple(soft_targets.shape)}."
        )
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"the TSA threshold must be in [0, 1], got {threshold!r}.")


@torch.no_grad()
def tsa_keep_mask(
    logits: torch.Tensor, soft_targets: torch.Tensor, threshold: float, impl: TSAImpl = "intended"
) -> torch.Tensor:
    """float32 (B,) of {0, 1}: 1 = the labeled sample still trains at threshold ``eta = threshold``.

    intended: keep if some class has ``y_c > 0`` and ``p_c < y_c·eta`` (UDA's rule for one-hot labels).
    official: keep if some class has ``p_c·1[y_c > 0] < z_c·eta`` (z = logits), as in the released code; any
    non-target class with a positive logit keeps the sample.
    """
    _check_inputs(logits, soft_targets, threshold, impl)
    z = logits.detach().float()
    y = soft_targets.detach().to(device=z.device, dtype=torch.float32)
    p = torch.softmax(z, dim=-1)
    target = y > 0
    if impl == "intended":
        keep = (target & (p < y * threshold)).any(dim=-1)
    else:
        keep = (p * target < z * threshold).any(dim=-1)
    return keep.float()


def tsa_cross_entropy(
    logits: torch.Tensor, soft_targets: torch.Tensor, threshold: float | None, impl: TSAImpl = "intended"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_sup, keep)``: ``L_sup = sum_i keep_i·CE_i / max(sum_i keep_i, 1)`` with soft-target CE in float32.

    ``threshold=None`` is "no TSA": every sample kept, the plain mean CE. All samples dropped gives 0 (the
    denominator clamps to 1), as in the official code. Gradients flow through CE only, never through ``keep``.
    """
    _check_inputs(logits, soft_targets, threshold, impl)
    ce = soft_cross_entropy(
        logits.float(), soft_targets.to(device=logits.device, dtype=torch.float32), reduction="none"
    )
    if threshold is None:
        keep = torch.ones_like(ce, requires_grad=False)
    else:
        keep = tsa_keep_mask(logits, soft_targets, threshold, impl).to(ce.device)
    loss = (keep * ce).sum() / keep.sum().clamp_min(1.0)
    return loss, keep
