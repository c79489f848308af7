"""Per-head loss weights of MixViT (Eq. 4.4): L = sum_i w_i CE(y_i, p_i), w_i = lambda_i by default.

lambda_i is input i's token share, i.e. MixMo's w_r with root r = 1 (the thesis dropped the root early). The
weights sum to one as in Eq. 4.4; MixMo's code scales them to sum to M, which AdamW hardly notices. In a
whole-input batch only the input that owns every token has a loss, whatever the weighting.
"""

from __future__ import annotations

import torch
from mixlab.mixing import reweight


def head_weights(
    lam: torch.Tensor, *, weighting: str = "lambda", total: str = "one", root: float = 1.0, whole: bool = False
) -> torch.Tensor:
    """Weights (B, M) from the token shares ``lam`` (B, M) (rows summing to 1).

    ``weighting``: ``lambda`` (Eq. 4.4), ``mixmo_root`` (w_r(lambda) / M with root ``root``) or ``uniform``
    (1/M, the "all tokens" ablation); ``total="M"`` multiplies by M.
    """
    M = lam.shape[1]
    if whole or weighting == "lambda":
        weights = lam
    elif weighting == "mixmo_root":
        weights = reweight(lam, root) / M
    else:
        weights = torch.full_like(lam, 1.0 / M)
    return weights * M if total == "M" else weights
