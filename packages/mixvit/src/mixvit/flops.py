"""The analytic inference cost of MixViT (thesis §4.3.3.2, A.7.3): the "# FLOPS" column of Tables 4.1 and 4.6.

fvcore/ptflops cannot count the custom attention layers, so the thesis counts the dominant products itself:
a self-attention (SA) layer costs about 13 N d^2 + 2 N^2 d operations on N tokens of width d, a class-attention
(CA) layer (3N + 9) d^2 + 2 N d. Separate inference runs the L SA layers once and the 2 CA layers M times.
"""

from __future__ import annotations


def sa_ops(num_tokens: int, dim: int) -> float:
    """q, k, v (3Nd^2) + scores (N^2 d) + weighted sum (N^2 d) + projection (Nd^2) + MLP 4d (8Nd^2)."""
    return 13 * num_tokens * dim**2 + 2 * num_tokens**2 * dim


def ca_ops(num_tokens: int, dim: int) -> float:
    """k, v for every token (and q for one): (3N + 9) d^2 + 2 N d; only the class token gets the MLP."""
    return (3 * num_tokens + 9) * dim**2 + 2 * num_tokens * dim


def ca_sa_ratio(num_tokens: int) -> float:
    """CA / SA cost without the terms linear in d: (3N + 9) / (13N), at most about 0.25 for N >= 64."""
    return (3 * num_tokens + 9) / (13 * num_tokens)


def overhead(L: int, M: int, *, tight: bool = True) -> float:
    """Inference cost of MixViT relative to its backbone.

    ``tight``: CA counted as a quarter of SA, (L + 0.5 M) / (L + 0.5) (1.09, "x1.1", for the 5-block ConViT);
    otherwise the pessimistic rule of thumb that prices CA like SA, (L + 2M) / (L + 2).
    """
    if tight:
        return (L + 0.5 * M) / (L + 0.5)
    return (L + 2 * M) / (L + 2)


def inference_cost_ratio(
    L: int, num_tokens: int, dim: int, M: int, *, split: int | None = None, encoding: bool = False, head_depth: int = 2
) -> float:
    """Operation count of separate inference over the backbone's, from :func:`sa_ops` and :func:`ca_ops`.

    The trunk runs once up to ``split`` (default L, late attribution) and M times after it, the head blocks M
    times; source encoding adds M token-wise d x d products.
    """
    split = L if split is None else split
    sa, ca = sa_ops(num_tokens, dim), ca_ops(num_tokens, dim)
    backbone = L * sa + head_depth * ca
    mixvit = split * sa + M * ((L - split) * sa + head_depth * ca)
    if encoding:
        mixvit += M * num_tokens * dim**2
    return mixvit / backbone
