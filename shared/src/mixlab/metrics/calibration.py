"""Temperature scaling and the official cross-halves calibrated metrics (spec §6.7, NLL_c).

TS fits one scalar T > 0 minimising the NLL of softmax(z / T). The official MixMo procedure runs LBFGS from
T = 1 for each learning rate of a small grid (no line search, so the learning rate is the fraction of the
quasi-Newton step taken per iteration), keeps the T with the lowest NLL and falls back to T = 1 if no run
improves on it. Here the optimised variable is log T, which keeps T positive without a guard; the optimum is
the same. The gradient is recomputed from scratch at every evaluation (the official closure never zeroes it,
so its LBFGS sees accumulated gradients; that slip is not copied).

The default solver is not that LBFGS loop but the exact minimiser: NLL(z / T) is convex in beta = 1 / T (its
second derivative is the mean variance of z under softmax(beta z)), so a safeguarded Newton iteration finds the
optimum to machine precision in a few dozen passes. The official loop approximates the same optimum with up to
6 x 5000 passes (minutes per evaluation on a CPU); its result can only be worse or equal, so NLL_c from the
exact solver is the quantity the official protocol aims at. ``solver="lbfgs"`` runs the official loop. NLL_c then splits the evaluation set once with a fixed seed (31) into halves A and B, fits T on A,
evaluates on B, swaps the halves, and averages the two half-set metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mixlab.metrics._inputs import logits_and_targets
from mixlab.metrics.classification import ece, topk_accuracy

OFFICIAL_TS_LRS: tuple[float, ...] = (1e-3, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6)
OFFICIAL_TS_MAX_ITER: int = 5000
OFFICIAL_SPLIT_SEED: int = 31


def _fit_device(logits: torch.Tensor) -> torch.device:
    """Fit where the logits are (thousands of sequential NLL evaluations), except on MPS (no float64)."""
    return torch.device("cpu") if logits.device.type == "mps" else logits.device


def _nll_at(z: torch.Tensor, t: torch.Tensor, temperature: float) -> float:
    return F.cross_entropy(z / temperature, t).item()


def _lbfgs_temperature(z: torch.Tensor, t: torch.Tensor, z_y: torch.Tensor, lr: float, max_iter: int) -> float:
    """One official LBFGS run from T = 1 (no line search) on log T; returns the final T."""
    log_t = torch.zeros(1, dtype=z.dtype, device=z.device, requires_grad=True)
    # In one dimension every BFGS update resets the inverse-Hessian estimate to the last secant s/y, so a
    # history of 1 follows the same iterates as the official default of 100 at a fraction of the cost.
    opt = torch.optim.LBFGS([log_t], lr=lr, max_iter=max_iter, history_size=1)

    def closure() -> torch.Tensor:
        # Analytic gradient of NLL(z * u), u = 1/T = exp(-log T): dNLL/dlogT = -u * mean(E_p[z] - z_y).
        u = torch.exp(-log_t.detach())
        log_p = torch.log_softmax(z * u, dim=1)
        loss = -log_p.gather(1, t[:, None]).mean()
        log_t.grad = (-u * ((log_p.exp() * z).sum(1) - z_y).mean()).reshape(1)
        return loss

    opt.step(closure)
    return math.exp(log_t.item())


def _exact_temperature(z: torch.Tensor, t: torch.Tensor, z_y: torch.Tensor, tol: float = 1e-10) -> float:
    """argmin over T of NLL(z / T), by safeguarded Newton on the convex function f(beta), beta = 1/T."""

    def derivatives(beta: float) -> tuple[float, float]:
        p = torch.softmax(z * beta, dim=1)
        mean_z = (p * z).sum(1)
        var_z = (p * z * z).sum(1) - mean_z**2
        return float((mean_z - z_y).mean()), float(var_z.clamp_min(0).mean())

    # f'(0) = mean(mean_k z - z_y) <= 0 unless the model is worse than chance; bracket the root of f'.
    lo, hi = 0.0, 1.0
    g_hi, _ = derivatives(hi)
    while g_hi < 0 and hi < 1e6:
        lo, hi = hi, hi * 2
        g_hi, _ = derivatives(hi)
    if g_hi < 0:
        return 1.0 / hi  # NLL keeps decreasing as T -> 0 (every prediction right): sharpest T tried
    beta = (lo + hi) / 2
    for _ in range(200):
        g, h = derivatives(beta)
        if abs(g) < tol:
            break
        if g > 0:
            hi = beta
        else:
            lo = beta
        step = beta - g / h if h > 0 else None
        beta = step if step is not None and lo < step < hi else (lo + hi) / 2
        if hi - lo < tol * max(1.0, beta):
            break
    return 1.0 / beta if beta > 0 else 1.0


def fit_temperature(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    lrs: Sequence[float] = OFFICIAL_TS_LRS,
    max_iter: int = OFFICIAL_TS_MAX_ITER,
    solver: str = "exact",
) -> float:
    """Best temperature T for softmax(logits / T) on (logits, targets); never worse than T = 1.

    ``max_iter`` is LBFGS's iteration budget per learning rate (official 5000; the cost is about
    len(lrs) * max_iter evaluations of the NLL, so tests and quick evaluations pass less).
    """
    if max_iter < 1 or not lrs:
        raise ValueError("fit_temperature needs max_iter >= 1 and at least one learning rate.")
    if solver not in ("exact", "lbfgs"):
        raise ValueError(f"Unknown temperature solver {solver!r}; choose exact or lbfgs.")
    z, t = logits_and_targets(logits, targets, device=_fit_device(logits))
    z_y = z.gather(1, t[:, None])[:, 0]
    best_t, best_nll = 1.0, _nll_at(z, t, 1.0)
    if solver == "exact":
        temperature = _exact_temperature(z, t, z_y)
        return temperature if _nll_at(z, t, temperature) < best_nll else 1.0
    for lr in lrs:
        temperature = _lbfgs_temperature(z, t, z_y, lr, max_iter)
        if not math.isfinite(temperature) or temperature <= 0.0:
            continue
        value = _nll_at(z, t, temperature)
        if value < best_nll:
            best_t, best_nll = temperature, value
    return best_t


def split_halves(n: int, seed: int = OFFICIAL_SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed random split of n evaluation samples into halves A (n // 2) and B (the rest)."""
    if n < 2:
        raise ValueError(f"The cross-halves protocol needs at least 2 samples, got {n}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2 :]


def cross_halves_calibrated(
    logits: torch.Tensor,
    targets: torch.Tensor,
    seed: int = OFFICIAL_SPLIT_SEED,
    *,
    lrs: Sequence[float] = OFFICIAL_TS_LRS,
    max_iter: int = OFFICIAL_TS_MAX_ITER,
    solver: str = "exact",
) -> dict[str, float]:
    """Calibrated metrics by the official cross-halves protocol.

    Returns ``nll_c``, ``ece_c`` (fraction) and ``top1_c`` (percent), each the mean of the two half-set values
    (T fitted on the other half), plus the fitted ``temperature_a`` (on A) and ``temperature_b`` (on B).
    """
    z, t = logits_and_targets(logits, targets, device=_fit_device(logits))
    half_a, half_b = (h.to(z.device) for h in split_halves(z.shape[0], seed))
    temp_a = fit_temperature(z[half_a], t[half_a], lrs=lrs, max_iter=max_iter, solver=solver)
    temp_b = fit_temperature(z[half_b], t[half_b], lrs=lrs, max_iter=max_iter, solver=solver)
    values: dict[str, list[float]] = {"nll_c": [], "ece_c": [], "top1_c": []}
    for temperature, half in ((temp_a, half_b), (temp_b, half_a)):
        scaled, truth = z[half] / temperature, t[half]
        values["nll_c"].append(F.cross_entropy(scaled, truth).item())
        values["ece_c"].append(ece(scaled, truth))
        values["top1_c"].append(topk_accuracy(scaled, truth, ks=(1,))["top1"])
    out = {key: sum(v) / 2.0 for key, v in values.items()}
    out["temperature_a"], out["temperature_b"] = temp_a, temp_b
    return out
