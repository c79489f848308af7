"""Labeled-unlabeled pair interpolation (LUPI, spec §2.3-2.4): the mixing ratio, the mix, and which labeled image
guides which unlabeled one.

- ``sample_lambda``: lambda ~ Beta(alpha, alpha), folded to min(lambda, 1 - lambda) so the unlabeled image dominates,
  redrawn until lambda < lambda_max (the tables' "lambda < tau"); with alpha = 1 that is Uniform(0, lambda_max).
- ``lupi_mix``: x_mix = lambda x_l + (1 - lambda) x_u (Eq. 2), on normalised tensors (normalisation is affine).
- ``pair_unlabeled`` / ``pair_labeled``: for each unlabeled image, the nearest labeled image of the batch in
  encoder-feature space (Eq. 3: Euclidean distance between the flattened Γ_enc maps; ``feature="pooled"`` uses
  their global average); for each labeled seed, its nearest *other* labeled image (the L_dec partner). ``random``
  pairing (Table 2's "similar pair ✗", the Cityscapes default) draws uniform partners and a derangement.
"""

from __future__ import annotations

import torch
from mixlab.errors import ConfigError
from mixlab.rng import symmetric_dirichlet


def sample_lambda(
    alpha: float, lambda_max: float, generator: torch.Generator | None = None, size: int | None = None
) -> torch.Tensor:
    """One lambda (``size=None``: a 0-d tensor) or ``size`` of them, each in (0, lambda_max), on the CPU.

    Rejection sampling of the folded Beta(alpha, alpha) draw; ``lambda_max >= 0.5`` never rejects.
    """
    if alpha <= 0 or not 0 < lambda_max <= 0.5:
        raise ConfigError(f"lambda needs alpha > 0 and 0 < lambda_max <= 0.5, not alpha={alpha}, max={lambda_max}")
    count = 1 if size is None else size
    out = torch.empty(count, dtype=torch.float64)
    filled = 0
    while filled < count:
        draw = symmetric_dirichlet(alpha, (count, 2), "cpu", generator)[:, 0]  # Beta(alpha, alpha)
        draw = torch.minimum(draw, 1 - draw)
        keep = draw[(draw > 0) & (draw < lambda_max)]
        take = min(count - filled, len(keep))
        out[filled : filled + take] = keep[:take]
        filled += take
    return out[0] if size is None else out


def lupi_mix(labeled: torch.Tensor, unlabeled: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """``lam * labeled + (1 - lam) * unlabeled`` (Eq. 2); ``lam`` a scalar or one value per row."""
    if isinstance(lam, torch.Tensor) and lam.dim() == 1:
        lam = lam.view(-1, *([1] * (labeled.dim() - 1)))
    if isinstance(lam, torch.Tensor):
        lam = lam.to(device=labeled.device, dtype=labeled.dtype)
    return lam * labeled + (1 - lam) * unlabeled


def pair_features(enc: torch.Tensor, feature: str = "map") -> torch.Tensor:
    """What the distance compares: the flattened Γ_enc map (Eq. 3 literal) or its global average (``pooled``)."""
    if feature == "map":
        return enc.flatten(1).float()
    if feature == "pooled":
        return enc.float().mean(dim=(2, 3)) if enc.dim() == 4 else enc.float()
    raise ConfigError(f"pair_feature must be map or pooled, not {feature!r}")


def pair_unlabeled(e_l: torch.Tensor, e_u: torch.Tensor, assignment: str = "argmin") -> torch.Tensor:
    """``pi (B_u,)``: the labeled index nearest to each unlabeled feature vector (``argmin``, with replacement), or a
    one-to-one Hungarian assignment minimising the total distance (``one_to_one``; labeled images reused in turn when
    B_u > B_l)."""
    distance = torch.cdist(e_u, e_l)  # (B_u, B_l)
    if assignment == "argmin":
        return distance.argmin(dim=1)
    if assignment != "one_to_one":
        raise ConfigError(f"pair_assignment must be argmin or one_to_one, not {assignment!r}")
    from scipy.optimize import linear_sum_assignment

    b_u, b_l = distance.shape
    copies = -(-b_u // b_l)  # every labeled image available ceil(B_u / B_l) times
    cost = distance.detach().cpu().repeat(1, copies).numpy()
    rows, cols = linear_sum_assignment(cost)
    pi = torch.empty(b_u, dtype=torch.long)
    pi[torch.as_tensor(rows)] = torch.as_tensor(cols) % b_l
    return pi.to(distance.device)


def pair_labeled(e_l: torch.Tensor) -> torch.Tensor:
    """``sigma (B_l,)``: each labeled image's nearest other labeled image (the diagonal excluded)."""
    distance = torch.cdist(e_l, e_l)
    distance.fill_diagonal_(float("inf"))
    return distance.argmin(dim=1)


def random_pairs(b_l: int, b_u: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random mode: ``pi`` uniform over the labeled rows, ``sigma`` a uniform derangement (sigma(i) != i; B_l >= 2)."""
    pi = torch.randint(0, b_l, (b_u,), generator=generator)
    if b_l < 2:
        return pi, torch.zeros(b_l, dtype=torch.long)
    # A random permutation composed with a random non-zero cyclic shift of it is a derangement: i -> perm[(k+s) % n].
    perm = torch.randperm(b_l, generator=generator)
    shift = int(torch.randint(1, b_l, (1,), generator=generator))
    sigma = torch.empty(b_l, dtype=torch.long)
    sigma[perm] = perm.roll(-shift)
    return pi, sigma
