"""The MixViT network: shared patch embedding and trunk, source attribution, shared class token, M heads.

Training (Alg. A.8), for inputs x_0..x_{M-1} and token masks M_i::

    mixed image (patch n from input i(n)) -> shared embedding e -> + positions -> SA_0..SA_{a-1}
        -> source attribution t* = t + sum_i M_i ⊙ s_i(t) -> SA_a..SA_{L-1} -> class token through the CA blocks
        -> LN -> heads d_0..d_{M-1}

``a`` is the split point: L (after the last SA block, "late", the thesis's MixViT) by default, 0 for the "early"
ablation. Inference (Alg. A.9) runs the trunk once up to the split on the clean image and only the rest M times,
as one batch of M*B token sets; with the late split that is the CA blocks alone, about 1.1x a plain forward for
the ConViT variant. The Table 4.6 inference ablations (sum, alternating, single) are one pass each.
"""

from __future__ import annotations

import copy

import torch
from mixlab.errors import ConfigError
from mixlab.models.vit import VisionTransformer
from torch import Tensor, nn

from mixvit.attribution import build_attribution
from mixvit.masks import mix_patches

INFERENCE_SCHEMES: tuple[str, ...] = ("separate", "sum", "alternating", "single")
ALTERNATING_PATTERNS: tuple[str, ...] = ("random", "checkerboard")
ALTERNATING_SEED = 0  # evaluation is deterministic: the "random" attribution pattern comes from a fixed seed


def split_index(attribution_layer: int | str, depth: int) -> int:
    """Index of the first SA block after source attribution: ``"late"`` = L, ``"early"`` = 0, or 0..L."""
    if attribution_layer == "late":
        return depth
    if attribution_layer == "early":
        return 0
    if isinstance(attribution_layer, bool) or not isinstance(attribution_layer, int):
        raise ConfigError(f"attribution_layer must be 'late', 'early' or a block index, got {attribution_layer!r}")
    if not 0 <= attribution_layer <= depth:
        raise ConfigError(
            f"attribution_layer must lie in 0..{depth} for a trunk of {depth} blocks, got {attribution_layer}"
        )
    return attribution_layer


class MixViT(nn.Module):
    """MixViT on a :class:`VisionTransformer`, which it takes over (its head becomes head 0).

    ``forward(x (B, M, 3, H, W), masks (B, M, h, w))`` is the training forward and returns the M heads' logits
    (B, M, K); ``concat=True`` is the "all tokens" ablation (the M token sets side by side, each attributed to its
    source). ``forward(x (B, 3, H, W))`` is inference with the scheme in ``self.inference``: (B, M, K), or
    (B, 1, K) for single-subnetwork inference. With M = 1 and no attribution it is the plain backbone.
    """

    def __init__(
        self,
        backbone: VisionTransformer,
        num_members: int,
        *,
        attribution: str = "embedding",
        attribution_layer: int | str = "late",
        inference: str = "separate",
        alternating_pattern: str = "random",
        single_index: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, VisionTransformer):
            raise ConfigError(
                f"MixViT needs a vision transformer backbone (convit*, cait*), got {type(backbone).__name__}"
            )
        if num_members < 1:
            raise ConfigError(f"the number of subnetworks M must be at least 1, got {num_members}")
        if inference not in INFERENCE_SCHEMES:
            raise ConfigError(f"inference must be one of {', '.join(INFERENCE_SCHEMES)}, got {inference!r}")
        if alternating_pattern not in ALTERNATING_PATTERNS:
            raise ConfigError(f"alternating_pattern must be one of {', '.join(ALTERNATING_PATTERNS)}")
        if not 0 <= single_index < num_members:
            raise ConfigError(f"single_index must be a subnetwork in 0..{num_members - 1}, got {single_index}")
        self.num_members = num_members
        self.split = split_index(attribution_layer, backbone.depth)
        self.inference = inference
        self.alternating_pattern = alternating_pattern
        self.single_index = single_index

        head = backbone.head
        backbone.head = nn.Identity()
        self.vit = backbone
        heads = [head] + [copy.deepcopy(head) for _ in range(num_members - 1)]
        for extra in heads[1:]:
            backbone.init_weights(extra, generator=generator)
        self.heads = nn.ModuleList(heads)
        self.attribution = build_attribution(attribution, num_members, backbone.embed_dim)

    # -- geometry ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.vit.num_classes

    @property
    def stem_stride(self) -> int:
        """Pixels per token along one axis: the mixing grid is the patch grid."""
        return self.vit.patch_size

    @property
    def grid(self) -> tuple[int, int]:
        return self.vit.grid_size, self.vit.grid_size

    # -- pieces -----------------------------------------------------------------------------------------------
    def attribute(self, tokens: Tensor, masks: Tensor) -> Tensor:
        """t + sum_i M_i ⊙ s_i(t) with masks (B, M, n); t itself without attribution."""
        return tokens if self.attribution is None else self.attribution(tokens, masks)

    def tiled(self, tokens: Tensor) -> Tensor:
        """(B, n, d) -> (M, B, n, d), set i attributed entirely to source i (SourceAttributionTiled)."""
        if self.attribution is None:
            return tokens.unsqueeze(0).expand(self.num_members, *tokens.shape)
        return self.attribution.tiled(tokens)

    def all_heads(self, features: Tensor) -> Tensor:
        """Every head on the same class features (B, d) -> (B, M, K)."""
        return torch.stack([head(features) for head in self.heads], dim=1)

    def after_split(self, tokens: Tensor) -> Tensor:
        """SA blocks from the split point on, then the class-token head stage: (B, n, d) -> (B, d)."""
        return self.vit.forward_head(self.vit.forward_blocks(tokens, self.split))

    # -- forwards ---------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, masks: Tensor | None = None, *, concat: bool = False) -> Tensor:
        if masks is None:
            return self.forward_infer(x)
        return self.forward_train(x, masks, concat=concat)

    def forward_train(self, x: Tensor, masks: Tensor, *, concat: bool = False) -> Tensor:
        """x (B, M, 3, H, W), masks (B, M, h, w) partitioning the grid -> logits (B, M, K)."""
        vit, M = self.vit, self.num_members
        if x.dim() != 5 or x.shape[1] != M or masks.shape[:2] != x.shape[:2]:
            raise ValueError(
                f"forward_train expects x (B, M={M}, 3, H, W) and masks (B, M, h, w); got "
                f"{tuple(x.shape)} and {tuple(masks.shape)}"
            )
        B = x.shape[0]
        if concat:
            # "All tokens": no compression, the M token sets side by side; set i is attributed to source i.
            tokens = vit.embed(x.flatten(0, 1)).unflatten(0, (B, M)).flatten(1, 2)  # (B, M*N, d)
            n = vit.num_patches
            token_masks = torch.eye(M, device=x.device, dtype=tokens.dtype).repeat_interleave(n, dim=1)
            token_masks = token_masks.unsqueeze(0).expand(B, M, M * n)
        else:
            tokens = vit.embed(mix_patches(x, masks, vit.patch_size))
            token_masks = masks.flatten(2)
        tokens = vit.forward_blocks(vit.add_positions(tokens), 0, self.split)
        return self.all_heads(self.after_split(self.attribute(tokens, token_masks)))

    def trunk(self, x: Tensor) -> Tensor:
        """Clean images (B, 3, H, W) -> tokens at the split point (B, N, d): the part inference runs once."""
        vit = self.vit
        return vit.forward_blocks(vit.add_positions(vit.embed(x)), 0, self.split)

    def forward_infer(self, x: Tensor, scheme: str | None = None) -> Tensor:
        """Test-time logits of clean images x (B, 3, H, W) under ``scheme`` (default ``self.inference``)."""
        scheme = scheme or self.inference
        if scheme not in INFERENCE_SCHEMES:
            raise ConfigError(f"inference must be one of {', '.join(INFERENCE_SCHEMES)}, got {scheme!r}")
        tokens = self.trunk(x)
        B, M = tokens.shape[0], self.num_members
        if scheme == "separate":
            features = self.after_split(self.tiled(tokens).flatten(0, 1)).unflatten(0, (M, B))  # one M*B batch
            return torch.stack([head(features[i]) for i, head in enumerate(self.heads)], dim=1)
        if scheme == "single":
            source = torch.zeros(B, M, tokens.shape[1], device=x.device, dtype=tokens.dtype)
            source[:, self.single_index] = 1.0
            features = self.after_split(self.attribute(tokens, source))
            return self.heads[self.single_index](features).unsqueeze(1)
        if scheme == "sum":
            tokens = self.tiled(tokens).sum(0)  # the literal sum of the M attributed sets
        else:
            tokens = self.attribute(tokens, self.alternating_masks(B, tokens.shape[1], tokens))
        return self.all_heads(self.after_split(tokens))

    def alternating_masks(self, batch: int, num_tokens: int, like: Tensor) -> Tensor:
        """(B, M, n) one-hot sources: a seeded random source per token, or a checkerboard of the patch grid."""
        M = self.num_members
        if self.alternating_pattern == "checkerboard":
            side = self.vit.grid_size
            cell = torch.arange(num_tokens, device=like.device)
            source = ((cell // side + cell % side) % M).expand(batch, num_tokens)
        else:
            generator = torch.Generator().manual_seed(ALTERNATING_SEED)
            source = torch.randint(M, (batch, num_tokens), generator=generator).to(like.device)
        return nn.functional.one_hot(source, M).transpose(1, 2).to(like.dtype)
