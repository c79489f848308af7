"""The ViT backbones of thesis ch. 4 against the spec (mixvit §3.1, §3.7, §12 invariant 15).

Parameter counts of the full-size models are taken on the meta device (no memory, no init); forwards run on tiny
widths. timm is the optional `vit` extra: without it these tests skip.
"""

import pytest
import torch

pytest.importorskip("timm")

from mixlab.errors import ConfigError  # noqa: E402
from mixlab.models import MultiHeadMIMO, count_parameters, create_model  # noqa: E402
from mixlab.models.vit import VisionTransformer, grid_rel_indices  # noqa: E402


def _count(name: str, num_classes: int, **options) -> int:
    with torch.device("meta"):
        return count_parameters(create_model(name, num_classes, **options))


def test_convit_variant_parameter_count_matches_the_spec_breakdown():
    # Spec §3.7: 12,496,528 on CIFAR-100 = patch 18,816 + pos 24,576 + cls 384 + 5 x 1,773,372 (GPSA)
    # + 2 x 1,773,312 (CA without LayerScale) + LN 768 + head 38,500.
    assert _count("convit5-384", 100) == 12_496_528
    with torch.device("meta"):
        model = create_model("convit5-384", 100)
    assert count_parameters(model.blocks[0]) == 1_773_372
    assert count_parameters(model.head_blocks[0]) == 1_773_312
    assert count_parameters(model.stem) == 18_816 and model.pos_embed.numel() == 24_576


def test_cait_parameter_counts():
    # timm's cait_xxs24_224 has 11,956,264 parameters; ours at 224 px / patch 16 / 1000 classes is the same model.
    assert _count("cait-xxs24", 1000, img_size=224, patch_size=16) == 11_956_264
    assert _count("cait24-192", 1000, img_size=224, patch_size=16) == 11_956_264
    # Tiny ImageNet (64 px, patch 8, 200 classes), plus MixViT-embedding's second head and 2 source vectors:
    # spec §3.7's 26.18M (XS-24) and 11.70M (XXS-24).
    xs = _count("cait-xs24", 200, img_size=64, patch_size=8) + (288 * 200 + 200) + 2 * 288
    xxs = _count("cait-xxs24", 200, img_size=64, patch_size=8) + (192 * 200 + 200) + 2 * 192
    assert abs(xs - 26.18e6) / 26.18e6 < 0.01 and abs(xxs - 11.70e6) / 11.70e6 < 0.01


def test_gpsa_local_init_sets_identity_values_and_nine_of_twelve_local_heads():
    model = create_model("convit1-384", 10)  # 12 heads: int(sqrt(12)) = 3, so a 3x3 kernel of 9 heads
    attn = model.blocks[0].attn.requires_grad_(False)
    assert torch.equal(attn.v.weight, torch.eye(384))
    local = attn.pos_proj.weight[:, 2] == -1.0  # local heads weigh the squared distance by -1 (strength 1)
    assert int(local.sum()) == 9 and bool(local[:9].all())
    offsets = {(float(attn.pos_proj.weight[h, 0]), float(attn.pos_proj.weight[h, 1])) for h in range(9)}
    assert offsets == {(2.0 * a, 2.0 * b) for a in (-1, 0, 1) for b in (-1, 0, 1)}


def test_grid_rel_indices_equal_timm_on_one_grid_and_tile_over_token_sets():
    model = create_model("convit1-32", 5, img_size=16, patch_size=4)
    attn = model.blocks[0].attn
    from timm.models.convit import GPSA

    assert torch.equal(grid_rel_indices(16, 4), GPSA.get_rel_indices(attn, 16))
    tiled = grid_rel_indices(32, 4)  # two token sets of the same 4x4 grid
    assert torch.equal(tiled[0, :16, 16:], tiled[0, :16, :16]) and torch.equal(tiled[0, 16:, 16:], tiled[0, :16, :16])
    with pytest.raises(ConfigError):
        grid_rel_indices(20, 4)


def test_split_forward_equals_the_backbone_forward():
    torch.manual_seed(0)
    model = create_model("convit2-32", 5, img_size=16, num_heads=4).double().eval()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    tokens = model.forward_blocks(model.add_positions(model.embed(x)))
    assert tokens.shape == (3, 16, 32)
    assert torch.allclose(model.head(model.forward_head(tokens)), model(x), atol=1e-12)
    assert model.stem(x).shape == (3, 32, 4, 4)  # the stem's output is the token grid: the MIMO mixing space


def test_class_attention_head_reads_patches_but_only_updates_the_class_token():
    torch.manual_seed(0)
    model = create_model("convit1-32", 5, img_size=16, num_heads=4).eval()
    tokens = torch.randn(2, 16, 32)
    shuffled = tokens[:, torch.randperm(16)]  # CA has no positions: the class feature ignores token order
    assert torch.allclose(model.forward_head(tokens), model.forward_head(shuffled), atol=1e-5)
    assert not torch.allclose(
        model.forward_head(tokens), model.forward_head(tokens + torch.randn(2, 16, 32)), atol=1e-3
    )


def test_sa_head_blocks_and_cait_build_and_run():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    sa = create_model("convit1-32", 7, img_size=16, head_block="sa")
    assert sa.head_block == "sa" and sa(x).shape == (2, 7)
    assert type(sa.head_blocks[0].attn).__name__ == "MHSA"
    cait = create_model("cait2-48", 7, img_size=16, drop_path_rate=0.1)
    assert cait(x).shape == (2, 7) and cait.num_heads == 1
    assert cait.blocks[0].drop_path.drop_prob == 0.1 and isinstance(cait.head_blocks[0].drop_path, torch.nn.Identity)
    assert cait.blocks[0].gamma_1[0].item() == pytest.approx(1e-5)  # LayerScale init of CaiT-24


def test_multihead_mimo_wraps_a_vit_into_the_naive_mimo_transformer():
    torch.manual_seed(0)
    backbone = create_model("convit1-32", 5, img_size=16)
    model = MultiHeadMIMO(backbone, 2)
    assert isinstance(model.core, VisionTransformer) and model.stem_stride == 4
    # the copy of the patch embedding is freshly initialised, not a clone of encoder 0
    assert not torch.equal(model.encoders[0].proj.weight, model.encoders[1].proj.weight)
    bound = 1 / (3 * 4 * 4) ** 0.5
    assert model.encoders[1].proj.weight.abs().max().item() <= bound
    x = torch.randn(2, 2, 3, 16, 16)
    masks = torch.rand(2, 2, 1, 4, 4)
    assert model(x, masks / masks.sum(1, keepdim=True)).shape == (2, 2, 5)


def test_bad_geometry_is_a_config_error():
    with pytest.raises(ConfigError, match="not a multiple of the patch size"):
        create_model("convit1-32", 5, img_size=18, patch_size=4)
    with pytest.raises(ConfigError, match="not divisible by 5 attention heads"):
        create_model("convit1-32", 5, num_heads=5)
    with pytest.raises(ConfigError, match="head_block"):
        create_model("convit1-32", 5, head_block="mlp")
