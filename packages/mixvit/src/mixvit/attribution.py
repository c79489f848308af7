"""Source attribution: tell each shared token which input/subnetwork it belongs to (thesis §4.3.3.1).

After the shared trunk the patch tokens ``t`` carry no trace of which input they came from. Source attribution
adds subnetwork-specific information through the same token masks ``M_i`` as the input mixing:

* source encoding (Eq. 4.5):  t* = t + sum_i M_i ⊙ (t W_i^T + b_i)   (a residual linear map per subnetwork);
* source embedding (Eq. 4.6): t* = t + sum_i M_i ⊙ b_i               (W_i = 0: M*d parameters, O(NMd) work).

These are neither extra tokens nor extra class tokens: they modify the existing tokens in place. At inference
``tiled`` builds the M token sets t + s_i(t) (every token attributed to source i) in one batched operation.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

ATTRIBUTIONS: tuple[str, ...] = ("embedding", "encoding", "none")
INIT_STD = 0.02  # not stated in the thesis: the trunc-normal std of the positional embeddings


class SourceAttribution(nn.Module, abc.ABC):
    """Base class: ``sources(t)`` returns s_i(t) for every i as (B, n, M, d) (or (M, d) when it ignores t)."""

    def __init__(self, num_members: int, dim: int) -> None:
        super().__init__()
        self.num_members = num_members
        self.dim = dim

    @abc.abstractmethod
    def sources(self, tokens: Tensor) -> Tensor:
        """s_i(t) for every source i: (B, n, M, d), or (M, d) when the attribution does not depend on t."""

    def forward(self, tokens: Tensor, masks: Tensor) -> Tensor:
        """t (B, n, d), masks (B, M, n) in {0, 1} -> t + sum_i M_i ⊙ s_i(t)."""
        s = self.sources(tokens)
        weights = masks.transpose(1, 2).to(tokens.dtype)  # (B, n, M)
        if s.dim() == 2:  # embeddings: (B, n, M) @ (M, d)
            return tokens + weights @ s.to(tokens.dtype)
        return tokens + (weights.unsqueeze(-1) * s).sum(2)

    def tiled(self, tokens: Tensor) -> Tensor:
        """t (B, n, d) -> (M, B, n, d): set i is t + s_i(t), every token attributed to source i (Alg. A.9)."""
        s = self.sources(tokens)
        if s.dim() == 2:
            return tokens.unsqueeze(0) + s.to(tokens.dtype)[:, None, None, :]
        return tokens.unsqueeze(0) + s.permute(2, 0, 1, 3)


class SourceEmbedding(SourceAttribution):
    """One learned vector b_i per subnetwork, added to the tokens of input i (Eq. 4.6)."""

    def __init__(self, num_members: int, dim: int) -> None:
        super().__init__(num_members, dim)
        self.embedding = nn.Parameter(torch.zeros(num_members, dim))
        nn.init.trunc_normal_(self.embedding, std=INIT_STD)

    def sources(self, tokens: Tensor) -> Tensor:
        return self.embedding

    def no_weight_decay(self) -> set[str]:
        """Like positional embeddings, the source embeddings are kept out of weight decay."""
        return {"embedding"}


class SourceEncoding(SourceAttribution):
    """A residual linear layer s_i(t) = t W_i^T + b_i per subnetwork (Eq. 4.5).

    All M maps run as one (d -> M*d) matrix product and are then selected by the masks: M d x d products per
    token, the cost the thesis counts, without gathering per-token weights.
    """

    def __init__(self, num_members: int, dim: int) -> None:
        super().__init__(num_members, dim)
        self.weight = nn.Parameter(torch.zeros(num_members, dim, dim))
        self.bias = nn.Parameter(torch.zeros(num_members, dim))
        nn.init.trunc_normal_(self.weight, std=INIT_STD)

    def sources(self, tokens: Tensor) -> Tensor:
        M, d = self.num_members, self.dim
        out = nn.functional.linear(tokens, self.weight.reshape(M * d, d), self.bias.reshape(M * d))
        return out.unflatten(-1, (M, d))  # (B, n, M, d)

    def no_weight_decay(self) -> set[str]:
        return {"bias"}


def build_attribution(kind: str, num_members: int, dim: int) -> SourceAttribution | None:
    """The module for ``kind`` (one of ``ATTRIBUTIONS``); ``"none"`` gives None (t* = t)."""
    if kind == "embedding":
        return SourceEmbedding(num_members, dim)
    if kind == "encoding":
        return SourceEncoding(num_members, dim)
    return None
