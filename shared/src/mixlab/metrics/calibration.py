"""Temperature scaling and the official cross-halves calibrated metrics (spec §6.7, NLL_c).

TS fits one scalar T > 0 minimising the NLL of softmax(z / T). Two solvers:

* ``solver="exact"`` (default): the exact minimiser. NLL(z / T) is convex in beta = 1 / T (its second derivative
  is the mean variance of z under softmax(beta z)), so a safeguarded Newton iteration finds the optimum to machine
  precision in a few dozen passes. No other T has a lower NLL, so this is the quantity the official loop aims at.
* ``solver="lbfgs"``: the official MixMo loop (``NetworkWithTemperature.learn_temperature_gridsearch``), step for
  step: for each learning rate of the grid (1e-3, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6) a fresh float32 parameter T = 1 is
  optimised by ``torch.optim.LBFGS(lr=lr, max_iter=5000)`` with its defaults (no line search, history 100,
  tolerances 1e-7 / 1e-9) on float32 logits; the closure calls ``loss.backward()`` without zeroing the gradient,
  so LBFGS sees the gradients accumulated since the start of the run (as in the official code; this is what makes
  it stop after a few hundred passes instead of running its 5000 iterations). A run whose final NLL exceeds the
  NLL at T = 1 counts as T = 1; the T with the strictly lowest NLL over the grid is kept (T = 1 if none improves).
  Its T is close to but not at the optimum: on synthetic problems (200-5000 samples, 10-100 classes, over- and
  under-confident) every run stopped after 45-865 iterations, and the kept T was 0.05-2.7% away from the exact T,
  with an NLL 1e-7 to 7e-4 above the minimum (below 0.001, the precision the thesis prints NLL_c with; the exact
  solver's NLL_c can be lower by that much). It takes seconds on a CPU for 5000 x 100 logits.
  Bit-identical temperatures to the official run are not guaranteed (float32 reductions differ across devices).

NLL_c, ECE_c and top1_c follow the official cross-halves protocol (``AbstractDataLoader._init_valtest_loader`` and
``scripts/evaluate.py --tempscale``): the n evaluation indices are shuffled by ``numpy.random.RandomState(31)``
(the official ``np.random.seed(31); np.random.shuffle(list(range(n)))`` gives the same order), half A is the first
floor(n / 2) of them (official "val") and half B the rest (official "test"); T fitted on A scores B, T fitted on B
scores A, and each metric is the plain average 0.5 * (B's value + A's value), as the official ``merge_scores``
(unweighted also for odd n). With the same logits, these numbers are comparable with the thesis code's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.metrics._inputs import logits_and_targets
from mixlab.metrics.classification import ece, topk_accuracy

OFFICIAL_TS_LRS: tuple[float, ...] = (1e-3, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6)
OFFICIAL_TS_MAX_ITER: int = 5000
OFFICIAL_SPLIT_SEED: int = 31
OFFICIAL_TS_DTYPE: torch.dtype = torch.float32  # the official network's logits and T


def _fit_device(logits: torch.Tensor) -> torch.device:
    """Fit where the logits are (thousands of sequential NLL evaluations), except on MPS (no float64)."""
    return torch.device("cpu") if logits.device.type == "mps" else logits.device


def _nll_at(z: torch.Tensor, t: torch.Tensor, temperature: float) -> float:
    return F.cross_entropy(z / temperature, t).item()


def _official_lbfgs_run(z: torch.Tensor, t: torch.Tensor, lr: float, max_iter: int) -> tuple[float, float, int]:
    """One official LBFGS run from T = 1 on T itself; returns (T, NLL at T, LBFGS iterations run).

    ``z`` is in the official dtype (float32). As in the official closure, the gradient is never zeroed.
    """
    temperature = torch.nn.Parameter(torch.ones(1, dtype=z.dtype, device=z.device))
    opt = torch.optim.LBFGS([temperature], lr=lr, max_iter=max_iter)

    def closure() -> torch.Tensor:
        loss = F.cross_entropy(z / temperature.unsqueeze(1).expand(z.shape[0], z.shape[1]), t)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        value = F.cross_entropy(z / temperature.unsqueeze(1).expand(z.shape[0], z.shape[1]), t).item()
    return temperature.item(), value, int(opt.state[temperature].get("n_iter", 0))


def _official_lbfgs_temperature(z: torch.Tensor, t: torch.Tensor, lrs: Sequence[float], max_iter: int) -> float:
    """The official grid search: best T over the learning rates, T = 1 when no run lowers the NLL."""
    z = z.to(OFFICIAL_TS_DTYPE)
    before = F.cross_entropy(z, t).item()
    best_t, best_nll = 1.0, before
    for lr in lrs:
        temperature, value, _ = _official_lbfgs_run(z, t, lr, max_iter)
        if value > before:  # official: "Temperature scaling failed", the run counts as T = 1
            temperature, value = 1.0, before
        if best_nll > value:
            best_t, best_nll = temperature, value
    return best_t


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

    ``solver`` is ``"exact"`` (the NLL minimiser; ``lrs`` and ``max_iter`` are unused) or ``"lbfgs"`` (the official
    loop, see the module docstring). ``max_iter`` is LBFGS's iteration budget per learning rate (official 5000; the
    official loop usually stops after a few hundred passes, so the cost is far below len(lrs) * max_iter passes).
    """
    if max_iter < 1 or not lrs:
        raise ValueError("fit_temperature needs max_iter >= 1 and at least one learning rate.")
    if solver not in ("exact", "lbfgs"):
        raise ValueError(f"Unknown temperature solver {solver!r}; choose exact or lbfgs.")
    z, t = logits_and_targets(logits, targets, device=_fit_device(logits))
    if solver == "lbfgs":
        return _official_lbfgs_temperature(z, t, lrs, max_iter)
    z_y = z.gather(1, t[:, None])[:, 0]
    temperature = _exact_temperature(z, t, z_y)
    return temperature if _nll_at(z, t, temperature) < _nll_at(z, t, 1.0) else 1.0


def split_halves(n: int, seed: int = OFFICIAL_SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """The official split of n evaluation samples: ``perm = numpy.random.RandomState(seed).permutation(n)``,
    half A = ``perm[: n // 2]`` (official "val"), half B = ``perm[n // 2 :]`` (official "test", one more for odd n).
    """
    if n < 2:
        raise ValueError(f"The cross-halves protocol needs at least 2 samples, got {n}.")
    perm = torch.from_numpy(np.random.RandomState(seed).permutation(n).astype(np.int64))
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
    """Calibrated metrics by the official cross-halves protocol (module docstring; comparable with the thesis code).

    Returns ``nll_c``, ``ece_c`` (fraction) and ``top1_c`` (percent), each the plain mean of the two half-set values
    (each half scored with the T fitted on the other half), plus the fitted ``temperature_a`` (on A) and
    ``temperature_b`` (on B); the official code reports their mean as its single "temperature".
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
