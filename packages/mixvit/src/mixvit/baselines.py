"""The naive MIMO and MixMo transformers of Table 4.1 / A.18 (thesis §4.3.1, Fig. A.9).

The CNN recipe moved onto a ViT: M patch embeddings e_i (the MIMO encoders), their token grids mixed position by
position (MIMO: sum; MixMo: CutMix of the token grid with probability p, else linear, times M), a shared position
embedding, the whole trunk, the class-attention blocks and M heads. This is exactly `MultiHeadMIMO` around a
:class:`~mixlab.models.vit.VisionTransformer`, whose stem output is the token grid.

What is new is "separate" inference (rows 4-5): pass i feeds only M * e_i(x) (the factor M matches the training
scale) and keeps head i, i.e. M full forwards, which the thesis shows fixes the subnetworks' accuracy. "sum" is
MixMo's usual test-time block, sum_i e_i(x) and one pass.
"""

from __future__ import annotations

import torch
from mixlab.errors import ConfigError
from mixlab.models import MultiHeadMIMO
from mixlab.models.vit import VisionTransformer
from torch import Tensor

BASELINE_INFERENCE: tuple[str, ...] = ("sum", "separate")


class MultiEncoderViT(MultiHeadMIMO):
    """M patch embeddings, one shared transformer core, M heads; ``inference`` picks sum or separate passes."""

    def __init__(
        self,
        backbone: VisionTransformer,
        num_members: int,
        *,
        encoder_init: str = "independent",
        inference: str = "sum",
        scale_by_M: bool = True,
    ) -> None:
        if not isinstance(backbone, VisionTransformer):
            raise ConfigError(f"the multi-encoder baseline needs a vision transformer, got {type(backbone).__name__}")
        if inference not in BASELINE_INFERENCE:
            raise ConfigError(
                f"the naive MIMO/MixMo transformers infer by {' or '.join(BASELINE_INFERENCE)}, not {inference!r}"
            )
        super().__init__(backbone, num_members, encoder_init=encoder_init)
        self.inference = inference
        self.scale_by_M = scale_by_M

    def forward(self, x: Tensor, masks: Tensor | None = None, **kwargs) -> Tensor:
        if masks is None and self.inference == "separate" and self.num_members > 1:
            return self.forward_separate(x)
        return super().forward(x, masks, **kwargs)

    def forward_separate(self, x: Tensor) -> Tensor:
        """Logits (B, M, K) where column i comes from the pass on M * e_i(x) alone, read by head i."""
        M, B = self.num_members, x.shape[0]
        scale = float(M) if self.scale_by_M else 1.0
        z = torch.cat([encoder(x) for encoder in self.encoders]) * scale  # one batch of M*B token grids
        features = self.pool(self.features(z)).unflatten(0, (M, B))
        return torch.stack([head(features[i]) for i, head in enumerate(self.heads)], dim=1)
