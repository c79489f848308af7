"""Vision transformers split as patch trunk + class-attention head (thesis ch. 4; spec mixvit §3.1).

MixViT needs a transformer that separates cleanly into (a) a trunk of self-attention (SA) blocks on the patch
tokens and (b) a few blocks that only update a class token (class attention, CA). Two such families are used:

* ``convit{depth}-{width}``: the thesis's ConViT variant (DyTox-like encoder): ``depth`` ConViT GPSA blocks with
  the convolution-like local init, then a class token and 2 CA blocks **without** LayerScale (the appendix once
  says "2 SA blocks"; ``head_block="sa"`` gives ConViT's MHSA blocks on [cls; patches] for that reading).
  ``convit5-384`` (12 heads) is the thesis's backbone: 12,496,528 parameters on CIFAR-100.
* ``cait{depth}-{width}`` and the named ``cait-xxs{depth}`` / ``cait-xs{depth}``: CaiT (LayerScale, talking
  heads) with its 2 LayerScale CA blocks. ``cait-xs24`` on 64x64 Tiny ImageNet with patch 8 is the 26M model.

Both are :class:`~mixlab.models.base.Backbone` s: the stem is the patch embedding (a conv with kernel = stride =
patch size) whose output (B, d, h, w) is the token grid, so the generic :class:`MultiHeadMIMO` wrapper turns them
into the naive MIMO/MixMo transformers of Table 4.1 unchanged. ``forward_blocks`` / ``forward_head`` expose the
split point to MixViT. Blocks come from timm (the ``mixlab[vit]`` extra), imported when a model is built, so
``import mixlab.models`` never needs timm.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone
from mixlab.models.registry import register_model

HeadBlock = Literal["ca", "sa"]
HEAD_BLOCKS: tuple[str, ...] = ("ca", "sa")
LN_EPS = 1e-6  # ConViT and CaiT both normalise with eps 1e-6
POS_STD = 0.02  # trunc-normal std of timm's ConViT/CaiT for positions, class token and dense layers


def _timm():
    """The timm modules the blocks come from; a clear error when the `vit` extra is not installed."""
    try:
        import timm.layers as layers
        import timm.models.cait as cait
        import timm.models.convit as convit
    except ImportError:  # pragma: no cover - exercised only where timm is absent
        raise ConfigError(
            "vision-transformer backbones need timm: install the `vit` extra (pip install 'mixlab[vit]')"
        ) from None
    return layers, convit, cait


def grid_rel_indices(num_tokens: int, grid_size: int) -> Tensor:
    """GPSA's relative positions (1, n, n, 3) = (dx, dy, dx^2 + dy^2) for tokens laid out on a ``grid_size`` grid.

    Token p sits at grid cell ``p mod grid_size^2``, so ``n`` may be any multiple of the grid: the M
    concatenated token sets of MixViT's "all tokens" ablation share their grid offsets (spec §4.5). For
    ``n = grid_size^2`` this equals timm's ``GPSA.get_rel_indices``.
    """
    cells = grid_size * grid_size
    if num_tokens % cells:
        raise ConfigError(f"{num_tokens} tokens do not tile a {grid_size}x{grid_size} patch grid")
    cell = torch.arange(num_tokens) % cells
    row, col = (cell // grid_size).float(), (cell % grid_size).float()
    dx = col[None, :] - col[:, None]
    dy = row[None, :] - row[:, None]
    return torch.stack([dx, dy, dx**2 + dy**2], dim=-1).unsqueeze(0)


@functools.cache
def _grid_gpsa_class() -> type[nn.Module]:
    """timm's GPSA with relative positions taken on the patch grid (see :func:`grid_rel_indices`)."""
    _, convit, _ = _timm()

    class GridGPSA(convit.GPSA):
        def __init__(self, *args, grid_size: int, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.grid_size = grid_size

        def get_rel_indices(self, num_patches: int) -> Tensor:
            weight = self.qk.weight
            return grid_rel_indices(num_patches, self.grid_size).to(device=weight.device, dtype=weight.dtype)

    GridGPSA.__qualname__ = GridGPSA.__name__
    return GridGPSA


class ClassAttentionBlock(nn.Module):
    """A CA block without LayerScale (DyTox/ConViT style): only the class token is updated.

    ``cls = cls + DropPath(ClassAttn(LN([cls; x])))``, then ``cls = cls + DropPath(MLP(LN(cls)))``: queries
    come from the class token, keys and values from [cls; patches]. Same ``forward(x, x_cls)`` signature as
    timm's ``LayerScaleBlockClassAttn`` (CaiT), so the head stage treats both alike.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        layers, _, cait = _timm()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = cait.ClassAttn(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.drop_path = layers.DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = layers.Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor, x_cls: Tensor) -> Tensor:
        u = torch.cat((x_cls, x), dim=1)
        x_cls = x_cls + self.drop_path(self.attn(self.norm1(u)))
        return x_cls + self.drop_path(self.mlp(self.norm2(x_cls)))


class VisionTransformer(Backbone):
    """Patch embedding (the stem) -> + positions -> SA trunk -> class token through the head blocks -> LN -> head.

    ``head_block="ca"``: each head block maps (patch tokens, class token) to a new class token. ``"sa"``: the
    head blocks are self-attention blocks on [cls; patches] (the patch tokens change too; only the class token
    is read at the end). Either way ``forward_head(tokens)`` returns the normalised class features (B, d).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        num_heads: int,
        blocks: list[nn.Module],
        head_blocks: list[nn.Module],
        head_block: HeadBlock = "ca",
    ) -> None:
        super().__init__()
        layers, _, _ = _timm()
        self.num_classes = num_classes
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_features = embed_dim
        self.stem_channels = embed_dim
        self.stem_stride = patch_size
        self.head_block = head_block

        # flatten=False: the stem's output is the (B, d, h, w) token grid, the mixing space of MultiHeadMIMO.
        self.stem = layers.PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=3, embed_dim=embed_dim, flatten=False
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
        self.blocks = nn.ModuleList(blocks)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.head_blocks = nn.ModuleList(head_blocks)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.head = nn.Linear(embed_dim, num_classes)
        self.init_weights()

    @property
    def depth(self) -> int:
        """L, the number of SA blocks in the trunk (MixViT's default split point)."""
        return len(self.blocks)

    # -- token plumbing ---------------------------------------------------------------------------------------
    @staticmethod
    def to_tokens(grid: Tensor) -> Tensor:
        """(B, d, h, w) -> (B, h*w, d), row-major like timm; a free view under channels_last."""
        b, d, h, w = grid.shape
        return grid.permute(0, 2, 3, 1).reshape(b, h * w, d)

    def to_grid(self, tokens: Tensor) -> Tensor:
        b, n, d = tokens.shape
        side = self.grid_size
        return tokens.reshape(b, side, side, d).permute(0, 3, 1, 2)

    def embed(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> patch tokens e(x) (B, N, d), without positions."""
        return self.to_tokens(self.stem(x))

    def add_positions(self, tokens: Tensor) -> Tensor:
        """Add the learned absolute positions; a token count that is a multiple of N gets them tiled."""
        n = tokens.shape[1]
        pos = self.pos_embed if n == self.num_patches else self.pos_embed.repeat(1, n // self.num_patches, 1)
        return tokens + pos

    def forward_blocks(self, tokens: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """SA blocks ``start`` .. ``stop - 1`` of the trunk."""
        for block in self.blocks[start:stop]:
            tokens = block(tokens)
        return tokens

    def forward_head(self, tokens: Tensor) -> Tensor:
        """Patch tokens (B, n, d) -> class features (B, d): the class token through the head blocks, then LN."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        if self.head_block == "ca":
            for block in self.head_blocks:
                cls = block(tokens, cls)
        else:
            u = torch.cat((cls, tokens), dim=1)
            for block in self.head_blocks:
                u = block(u)
            cls = u[:, :1]
        return self.norm(cls)[:, 0]

    # -- the Backbone split --------------------------------------------------------------------------------------
    def forward_features(self, z: Tensor) -> Tensor:
        """Token grid (B, d, h, w) -> + positions -> SA trunk -> token grid (B, d, h, w)."""
        return self.to_grid(self.forward_blocks(self.add_positions(self.to_tokens(z))))

    def pool(self, feature_map: Tensor) -> Tensor:
        """The transformer's "pooling" is the class-token head stage."""
        return self.forward_head(self.to_tokens(feature_map))

    def no_weight_decay(self) -> set[str]:
        """Parameters kept out of weight decay besides biases and norms (timm's convention)."""
        return {"pos_embed", "cls_token"}

    def init_weights(self, module: nn.Module | None = None, *, generator: torch.Generator | None = None) -> None:
        """timm's ConViT/CaiT scheme: trunc-normal(0.02) dense weights and positions, zero biases, unit norms,
        PyTorch's default for the patch conv, then ConViT's local init of every GPSA (its v is the identity and
        its positional heads look at a kernel of neighbours, so training starts convolution-like)."""
        target = self if module is None else module
        with torch.no_grad():
            if module is None:
                for p in (self.pos_embed, self.cls_token):
                    _trunc_normal(p, generator)
            for m in target.modules():
                if isinstance(m, nn.Linear):
                    _trunc_normal(m.weight, generator)
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                elif isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                    if m.bias is not None:
                        bound = 1.0 / math.sqrt(m.weight[0].numel())
                        nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            for m in target.modules():
                if hasattr(m, "local_init") and not m.v.weight.is_meta:
                    m.local_init()


def _trunc_normal(tensor: Tensor, generator: torch.Generator | None) -> None:
    if not tensor.is_meta:
        nn.init.trunc_normal_(tensor, std=POS_STD, generator=generator)


def _check_geometry(name: str, img_size: int, patch_size: int, width: int, num_heads: int, depth: int) -> None:
    if img_size < 1 or patch_size < 1 or img_size % patch_size:
        raise ConfigError(f"{name}: the image size {img_size} is not a multiple of the patch size {patch_size}")
    if num_heads < 1 or width % num_heads:
        raise ConfigError(f"{name}: the width {width} is not divisible by {num_heads} attention heads")
    if depth < 1:
        raise ConfigError(f"{name}: the trunk needs at least one block, got depth {depth}")


def convit_variant(
    num_classes: int,
    *,
    depth: int = 5,
    width: int = 384,
    img_size: int = 32,
    patch_size: int = 4,
    num_heads: int | None = None,
    mlp_ratio: float = 4.0,
    head_depth: int = 2,
    head_block: HeadBlock = "ca",
    drop_path_rate: float = 0.0,
    locality_strength: float = 1.0,
) -> VisionTransformer:
    """The thesis's ConViT variant: ``depth`` GPSA blocks, class token, ``head_depth`` CA blocks (spec §3.1).

    ConViT defaults: no qkv bias, LN eps 1e-6, GELU, head dim 32 unless ``num_heads`` is given (so 384 -> 12
    heads, of which int(sqrt(12))^2 = 9 get the local init; the thesis kept this). Stochastic depth rises
    linearly over the trunk as in ConViT; the CA blocks take the last rate.
    """
    layers, convit, _ = _timm()
    heads = num_heads if num_heads is not None else max(1, width // 32)
    _check_geometry(f"convit{depth}-{width}", img_size, patch_size, width, heads, depth)
    if head_block not in HEAD_BLOCKS:
        raise ConfigError(f"head_block must be one of {', '.join(HEAD_BLOCKS)}, got {head_block!r}")
    rates = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]  # ConViT's linear decay rule
    norm = functools.partial(nn.LayerNorm, eps=LN_EPS)
    grid_gpsa = _grid_gpsa_class()
    blocks = []
    for rate in rates:
        block = convit.Block(
            width,
            heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=False,
            drop_path=rate,
            norm_layer=norm,
            use_gpsa=True,
            locality_strength=locality_strength,
        )
        block.attn = grid_gpsa(
            width,
            num_heads=heads,
            qkv_bias=False,
            locality_strength=locality_strength,
            grid_size=img_size // patch_size,
        )
        blocks.append(block)
    if head_block == "ca":
        head = [
            ClassAttentionBlock(width, heads, mlp_ratio, qkv_bias=False, drop_path=drop_path_rate)
            for _ in range(head_depth)
        ]
    else:
        head = [
            convit.Block(
                width,
                heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=False,
                drop_path=drop_path_rate,
                norm_layer=norm,
                use_gpsa=False,
            )
            for _ in range(head_depth)
        ]
    return VisionTransformer(
        num_classes=num_classes,
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=width,
        num_heads=heads,
        blocks=blocks,
        head_blocks=head,
        head_block=head_block,
    )


def cait(
    num_classes: int,
    *,
    depth: int = 24,
    width: int = 192,
    img_size: int = 32,
    patch_size: int = 4,
    num_heads: int | None = None,
    mlp_ratio: float = 4.0,
    head_depth: int = 2,
    drop_path_rate: float = 0.0,
    init_values: float = 1e-5,
) -> VisionTransformer:
    """CaiT (Touvron et al. 2021b) as timm builds it: LayerScale + talking-heads SA blocks, LayerScale CA blocks.

    Defaults of the XXS/XS-24 models: MLP ratio 4, qkv bias, LayerScale init 1e-5, head dim 48 unless
    ``num_heads`` is given (192 -> 4 heads, 288 -> 6), a uniform stochastic-depth rate on the SA blocks only.
    """
    layers, _, cait_mod = _timm()
    heads = num_heads if num_heads is not None else max(1, width // 48)
    _check_geometry(f"cait{depth}-{width}", img_size, patch_size, width, heads, depth)
    norm = functools.partial(nn.LayerNorm, eps=LN_EPS)
    blocks = [
        cait_mod.LayerScaleBlock(
            width,
            heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_path=drop_path_rate,
            norm_layer=norm,
            init_values=init_values,
        )
        for _ in range(depth)
    ]
    head = [
        cait_mod.LayerScaleBlockClassAttn(
            width, heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=norm, init_values=init_values
        )
        for _ in range(head_depth)
    ]
    return VisionTransformer(
        num_classes=num_classes,
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=width,
        num_heads=heads,
        blocks=blocks,
        head_blocks=head,
        head_block="ca",
    )


register_model(
    "convit{depth}-{width}", description="ConViT variant: GPSA trunk + 2 class-attention blocks (thesis ch. 4)"
)(convit_variant)
register_model("cait{depth}-{width}", description="CaiT: LayerScale/talking-heads trunk + 2 LayerScale CA blocks")(cait)


@register_model("cait-xxs{depth}", description="CaiT-XXS (width 192, 4 heads), e.g. cait-xxs24")
def cait_xxs(
    num_classes: int,
    *,
    depth: int,
    img_size: int = 32,
    patch_size: int = 4,
    head_depth: int = 2,
    drop_path_rate: float = 0.0,
    init_values: float = 1e-5,
) -> VisionTransformer:
    """CaiT-XXS-``depth``: width 192, 4 heads (CaiT paper, timm ``cait_xxs24``)."""
    return cait(
        num_classes,
        depth=depth,
        width=192,
        img_size=img_size,
        patch_size=patch_size,
        head_depth=head_depth,
        drop_path_rate=drop_path_rate,
        init_values=init_values,
    )


@register_model("cait-xs{depth}", description="CaiT-XS (width 288, 6 heads), e.g. cait-xs24")
def cait_xs(
    num_classes: int,
    *,
    depth: int,
    img_size: int = 32,
    patch_size: int = 4,
    head_depth: int = 2,
    drop_path_rate: float = 0.0,
    init_values: float = 1e-5,
) -> VisionTransformer:
    """CaiT-XS-``depth``: width 288, 6 heads (CaiT paper, timm ``cait_xs24``)."""
    return cait(
        num_classes,
        depth=depth,
        width=288,
        img_size=img_size,
        patch_size=patch_size,
        head_depth=head_depth,
        drop_path_rate=drop_path_rate,
        init_values=init_values,
    )
