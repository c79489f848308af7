"""Generic Multi-Input Multi-Output wrapper: M encoders, one shared core, M heads (spec mixmo-mixshare §2.1).

Training goes through the pieces, because the mixing block sits between them::

    l = model.encode(xs)              # (B, M, C0, H0, W0): l_i = c_i(x_i)
    z = mix(l, masks)                 # method-specific mixing block (mixlab.mixing)
    F = model.features(z)             # (B, D, h, w): the final map, before pooling (MixShare unmixes here)
    logits = model.classify(model.pool(F))          # (B, M, K): head i on the shared pooled features
                                      # (or model(xs, masks, pool_fn=...): one call, DDP-safe, custom pooling)

Testing uses ``forward``: the same image on every input, ``z = sum_i c_i(x)``, logits ``(B, M, K)``; the ensemble
prediction is their mean over M. With ``M = 1`` this is exactly the wrapped backbone (no x M factor, no mixing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone

EncoderInit = Literal["independent", "identical", "colinear"]
ENCODER_INITS: tuple[str, ...] = ("independent", "identical", "colinear")


def stem_conv(module: nn.Module) -> nn.Conv2d:
    """The convolution whose output filters define the mixing-space channels of an encoder.

    The encoder is either a ``Conv2d`` itself or a module holding exactly one.
    """
    if isinstance(module, nn.Conv2d):
        return module
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != 1:
        raise ConfigError(
            f"Encoder alignment and filter norms need an encoder with exactly one Conv2d; "
            f"{type(module).__name__} has {len(convs)}."
        )
    return convs[0]


class MultiHeadMIMO(nn.Module):
    """M encoders ``c_i`` (copies of ``backbone.stem``), the shared core, M heads ``d_i`` (copies of its head).

    The wrapper takes ownership of ``backbone``: its stem becomes encoder 0 and its head becomes head 0 (both keep
    their weights, so ``M = 1`` is the backbone itself), and ``core.stem`` / ``core.head`` are replaced by
    ``nn.Identity`` so that the parameter count holds exactly M encoders and M heads.

    Args:
        backbone: any :class:`Backbone`.
        num_members: M >= 1.
        encoder_init: ``"independent"`` (MixMo: every other encoder gets its own fresh initialisation),
            ``"identical"`` (MixShare: encoder 0's weights copied into separate tensors for the others) or
            ``"colinear"`` (encoder i's output filter k is ``s_ik * W_0[k]``, ``s_ik ~ U(colinear_scale_range)``).
        shared_encoder: one encoder serves every input (Table 3.4's "1 encoder" rows).
        num_heads: ``None`` or M for one head per member; 1 for a single head shared by all members (Table 3.4's
            "1 classifier" row). ``classify`` always returns (B, M, K); with one head the M slices are equal on
            shared features.
        colinear_scale_range: (low, high) of the per-filter scales, ``0 < low <= high`` (spec §5.3: 0.5, 1.5).
        generator: RNG for the fresh initialisations and scales; torch's global RNG when ``None``.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_members: int,
        *,
        encoder_init: EncoderInit = "independent",
        shared_encoder: bool = False,
        num_heads: int | None = None,
        colinear_scale_range: tuple[float, float] = (0.5, 1.5),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise ConfigError(f"MultiHeadMIMO wraps a mixlab Backbone, got {type(backbone).__name__}.")
        if isinstance(backbone.stem, nn.Identity) or isinstance(backbone.head, nn.Identity):
            raise ConfigError("This backbone is already the core of a MultiHeadMIMO; wrap a fresh backbone instead.")
        if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 1:
            raise ConfigError(f"The number of members M must be a positive integer, got {num_members!r}.")
        if encoder_init not in ENCODER_INITS:
            raise ConfigError(f"encoder_init must be one of {list(ENCODER_INITS)}, got {encoder_init!r}.")
        if num_heads is None:
            num_heads = num_members
        if num_heads not in (1, num_members):
            raise ConfigError(
                f"num_heads must be 1 (one shared classifier) or M={num_members} (one per member), got {num_heads}."
            )
        if shared_encoder and encoder_init == "colinear" and num_members > 1:
            raise ConfigError("encoder_init='colinear' needs one encoder per member; it contradicts shared_encoder.")
        low, high = colinear_scale_range
        if encoder_init == "colinear":
            if not 0 < low <= high:
                raise ConfigError(f"colinear_scale_range must satisfy 0 < low <= high, got {colinear_scale_range}.")
            stem_conv(backbone.stem)  # fail before the backbone is taken apart

        self.num_members = num_members
        self.encoder_init = encoder_init
        self.shared_encoder = shared_encoder

        stem, head = backbone.stem, backbone.head
        backbone.stem = nn.Identity()
        backbone.head = nn.Identity()
        self.core = backbone

        encoders = [stem] + [copy.deepcopy(stem) for _ in range((1 if shared_encoder else num_members) - 1)]
        for encoder in encoders[1:]:
            if encoder_init == "independent":
                backbone.init_weights(encoder, generator=generator)
            elif encoder_init == "colinear":
                _scale_filters_(stem_conv(encoder), low, high, generator)
            # "identical": the deep copy already holds encoder 0's values in separate tensors.
        self.encoders = nn.ModuleList(encoders)

        heads = [head] + [copy.deepcopy(head) for _ in range(num_heads - 1)]
        for extra in heads[1:]:
            backbone.init_weights(extra, generator=generator)
        self.heads = nn.ModuleList(heads)

    # -- geometry ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.core.num_classes

    @property
    def num_features(self) -> int:
        return self.core.num_features

    @property
    def num_heads(self) -> int:
        """Distinct heads: M, or 1 for the shared classifier (whose logits are still returned once per member)."""
        return len(self.heads)

    @property
    def stem_channels(self) -> int:
        return self.core.stem_channels

    @property
    def stem_stride(self) -> int:
        return self.core.stem_stride

    def member_encoder(self, i: int) -> nn.Module:
        """The encoder c_i of member i (the single shared one under ``shared_encoder``)."""
        return self.encoders[0 if self.shared_encoder else i]

    def member_head(self, i: int) -> nn.Module:
        """The head d_i of member i (the single shared one when ``num_heads == 1``)."""
        return self.heads[0 if len(self.heads) == 1 else i]

    # -- the pieces -------------------------------------------------------------------------------------------
    def encode(self, xs: Tensor) -> Tensor:
        """``xs`` (B, M, 3, H, W) -> ``l`` (B, M, C0, H0, W0) with ``l[:, i] = c_i(xs[:, i])``."""
        if xs.dim() != 5 or xs.size(1) != self.num_members:
            raise ValueError(f"encode expects (B, M={self.num_members}, C, H, W) inputs, got {tuple(xs.shape)}")
        if self.shared_encoder:
            l_flat = self.encoders[0](xs.flatten(0, 1))
            return l_flat.unflatten(0, (xs.size(0), self.num_members))
        return torch.stack([encoder(xs[:, i]) for i, encoder in enumerate(self.encoders)], dim=1)

    def features(self, z: Tensor) -> Tensor:
        """Core network on the mixed representation: (B, C0, H0, W0) -> final map F (B, D, h, w)."""
        return self.core.forward_features(z)

    def pool(self, feature_map: Tensor) -> Tensor:
        """The core's pooling, (B, D, h, w) -> (B, D)."""
        return self.core.pool(feature_map)

    def classify(self, f: Tensor) -> Tensor:
        """Heads on features: ``f`` (B, D) shared by all heads, or (B, M, D) one slice per head -> (B, M, K)."""
        M = self.num_members
        if f.dim() == 2:
            if len(self.heads) == 1:
                return self.heads[0](f).unsqueeze(1).expand(-1, M, -1)
            return torch.stack([head(f) for head in self.heads], dim=1)
        if f.dim() == 3 and f.size(1) == M:
            if len(self.heads) == 1:
                return self.heads[0](f)
            return torch.stack([head(f[:, i]) for i, head in enumerate(self.heads)], dim=1)
        raise ValueError(f"classify expects (B, D) or (B, M={M}, D) features, got {tuple(f.shape)}")

    def encode_sum(self, x: Tensor) -> Tensor:
        """Test-time mixing space: the same image on every input, ``z = sum_i c_i(x)`` (``c_0(x)`` when M = 1)."""
        if self.shared_encoder:
            z = self.encoders[0](x)
            return z if self.num_members == 1 else z * self.num_members
        z = self.encoders[0](x)
        for encoder in self.encoders[1:]:
            z = z + encoder(x)
        return z

    def forward(
        self,
        x: Tensor,
        masks: Tensor | None = None,
        *,
        scale_by_M: bool = True,
        pool_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Logits (B, M, K) of every head.

        Test path (``masks`` is None): ``x`` (B, 3, H, W) is fed to every encoder and the encodings are summed.
        Training path: ``x`` (B, M, 3, H, W) holds one image per input and ``masks`` (B, M, 1, H0|1, W0|1) the
        mixing block's per-input masks; the mixed encoding ``M * sum_i m_i * c_i(x_i)`` goes through the core.
        Both paths go through ``forward`` so that DDP sees (and synchronises) the training computation.

        ``pool_fn`` replaces the core's pooling of the final map F (B, D, h, w); it returns shared features
        (B, D) or one feature vector per head (B, M, D), e.g. MixShare's unmixing (masked pooling per head).
        """
        pool = self.pool if pool_fn is None else pool_fn
        if masks is None:
            if x.dim() != 4:
                raise ValueError(f"forward expects one image batch (B, C, H, W), got {tuple(x.shape)}; use encode()")
            return self.classify(pool(self.features(self.encode_sum(x))))
        from mixlab.mixing import mix  # models do not otherwise depend on the mixing package

        return self.classify(pool(self.features(mix(self.encode(x), masks, scale_by_M=scale_by_M))))


def _scale_filters_(conv: nn.Conv2d, low: float, high: float, generator: torch.Generator | None) -> None:
    """Multiply each output filter (and its bias) by its own ``s_k ~ U(low, high)``: colinear, not identical."""
    scales = torch.empty(conv.out_channels, device=generator.device if generator is not None else "cpu")
    scales.uniform_(low, high, generator=generator)
    with torch.no_grad():
        conv.weight.mul_(scales.to(conv.weight).view(-1, *([1] * (conv.weight.dim() - 1))))
        if conv.bias is not None:
            conv.bias.mul_(scales.to(conv.bias))


def encoder_filter_norms(model: MultiHeadMIMO) -> Tensor:
    """(M, C0): ``a_i[c] = ||W_{c_i}[c]||_1``, the L1 norm of each output filter of member i's encoder (§5.1)."""
    rows = [
        stem_conv(model.member_encoder(i)).weight.detach().abs().flatten(1).sum(1) for i in range(model.num_members)
    ]
    return torch.stack(rows).float()


def head_column_norms(model: MultiHeadMIMO) -> Tensor:
    """(M, D): ``h_i[c] = ||W_{d_i}[:, c]||_1``, the L1 norm of each weight column of member i's head (§5.1)."""
    rows = [model.member_head(i).weight.detach().abs().sum(0) for i in range(model.num_members)]
    return torch.stack(rows).float()
