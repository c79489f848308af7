"""Backbone layouts against the spec (mixmo-mixshare §2.2-2.3, §10 invariants 14-15).

Parameter counts of the big models are taken on the meta device: the architecture is the real one, but no memory
is allocated, so WRN-28-10 and PreActResNet-18-3 cost nothing here. Forwards run on small widths only.
"""

import pytest
import torch
import torch.nn.functional as F
from mixlab.models import (
    MultiHeadMIMO,
    PreActResNet18,
    SmallCNN,
    WideResNet,
    count_parameters,
    create_model,
)


def _count(name: str, num_classes: int, num_members: int | None = None) -> int:
    with torch.device("meta"):
        model = create_model(name, num_classes)
        if num_members is not None:
            model = MultiHeadMIMO(model, num_members)
    return count_parameters(model)


# (name, K, vanilla, MixMo M=2, MixMo M=3) from spec §2.2 / §2.3 / §2.4.
COUNTS = [
    ("wrn28-2", 100, 1_479_220, 1_492_552, 1_505_884),
    ("wrn28-5", 100, 9_161_524, 9_194_056, 9_226_588),
    ("wrn28-10", 100, 36_536_884, 36_601_416, 36_665_948),
    ("wrn28-10", 10, 36_479_194, 36_486_036, 36_492_878),
    ("preactresnet18-1", 200, 11_268_616, 11_372_944, None),
    ("preactresnet18-2", 200, 44_784_648, 44_991_376, None),
    ("preactresnet18-3", 200, 100_537_864, 100_846_992, None),
]


@pytest.mark.parametrize(("name", "num_classes", "vanilla", "m2", "m3"), COUNTS)
def test_parameter_counts_match_spec(name, num_classes, vanilla, m2, m3):
    assert _count(name, num_classes) == vanilla
    assert _count(name, num_classes, 1) == vanilla  # M=1 adds nothing and keeps nothing unused
    assert _count(name, num_classes, 2) == m2
    if m3 is not None:
        assert _count(name, num_classes, 3) == m3


def test_wrn16_4_smoke_backbone_counts():
    assert _count("wrn16-4", 10) == 2_748_890
    assert _count("wrn16-4", 100) == 2_772_020


def test_mixmo_overhead_is_one_stem_and_one_head():
    # WRN-28-10 / CIFAR-100: +432 (3*16*3*3) + 64,100 (640*100 + 100) per extra member.
    assert _count("wrn28-10", 100, 2) - _count("wrn28-10", 100) == 432 + 64_100


def test_wrn28_shapes_invariant_14():
    # The forward runs at width 1 (cheap); width only scales channels, which WRN-28-10 reports without a forward.
    torch.manual_seed(0)
    model = MultiHeadMIMO(create_model("wrn28-1", 100), 2)
    with torch.no_grad():
        lat = model.encode(torch.randn(4, 2, 3, 32, 32))
        fmap = model.features(lat.sum(1))
        f = model.pool(fmap)
        logits = model.classify(f)
    assert lat.shape == (4, 2, 16, 32, 32)
    assert fmap.shape == (4, 64, 8, 8)
    assert f.shape == (4, 64)
    assert logits.shape == (4, 2, 100)
    with torch.device("meta"):
        wide = MultiHeadMIMO(create_model("wrn28-10", 100), 2)
    assert wide.num_features == 640 and wide.stem_channels == 16 and wide.stem_stride == 1
    assert wide.core.layer3[-1].conv2.out_channels == 640 and wide.core.bn.num_features == 640
    assert all(enc.out_channels == 16 and enc.stride == (1, 1) for enc in wide.encoders)
    assert all(head.in_features == 640 and head.out_features == 100 for head in wide.heads)


def test_preactresnet18_shapes_invariant_14():
    torch.manual_seed(0)
    model = MultiHeadMIMO(create_model("preactresnet18-1", 200), 2)
    with torch.no_grad():
        lat = model.encode(torch.randn(4, 2, 3, 64, 64))
        fmap = model.features(lat.sum(1))
        logits = model.classify(model.pool(fmap))
    assert lat.shape == (4, 2, 64, 32, 32)
    assert fmap.shape == (4, 512, 4, 4)
    assert logits.shape == (4, 2, 200)
    assert model.stem_stride == 2


def test_preactresnet_stem_is_not_widened_and_has_no_final_bn():
    with torch.device("meta"):
        model = create_model("preactresnet18-3", 200)
    assert isinstance(model, PreActResNet18)
    assert model.stem.out_channels == 64 and model.stem.stride == (2, 2)
    assert model.num_features == 1536


def test_preactresnet_pool_equals_official_avg_pool_4():
    with torch.device("meta"):
        model = create_model("preactresnet18-1", 10)  # pooling is parameter-free
    fmap = torch.randn(2, 512, 4, 4)
    assert torch.allclose(model.pool(fmap), F.avg_pool2d(fmap, 4).flatten(1), atol=1e-6)


def test_wrn_official_downsampling_layout():
    model = create_model("wrn16-2", 10)
    assert isinstance(model, WideResNet)
    down = model.layer2[0]
    assert isinstance(down.pad, torch.nn.ZeroPad2d) and down.pad.padding == (0, 1, 0, 1)
    assert down.conv2.stride == (2, 2) and down.conv2.padding == (0, 0)
    assert down.conv1.stride == (1, 1)
    assert down.shortcut.kernel_size == (1, 1) and down.shortcut.stride == (2, 2)
    assert isinstance(model.layer2[1].shortcut, torch.nn.Identity)
    # group1's first block changes width (16 -> 32), so it has a 1x1 shortcut despite stride 1.
    assert model.layer1[0].shortcut.stride == (1, 1)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert model.head.bias is not None


def test_wrn_downsampling_block_matches_hand_computation():
    """Check the block function, not just its shape: shortcut reads the raw input, conv2 sees the padded map."""
    torch.manual_seed(0)
    block = create_model("wrn10-1", 10).layer2[0].eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        h = block.conv1(F.relu(block.bn1(x)))
        h = F.relu(block.bn2(h))
        h = F.conv2d(F.pad(h, (0, 1, 0, 1)), block.conv2.weight, stride=2)
        expected = h + F.conv2d(x, block.shortcut.weight, stride=2)
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_small_forward_pieces_compose_to_forward():
    torch.manual_seed(0)
    for name, size in (("wrn16-1", 32), ("smallcnn-2", 32), ("preactresnet18-1", 64)):
        model = create_model(name, 7).eval()
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            fmap = model.forward_features(model.stem(x))
            out = model(x)
            assert torch.equal(out, model.head(model.pool(fmap)))
        assert out.shape == (2, 7) and torch.isfinite(out).all()
        # WRN / smallcnn end with BN-ReLU inside forward_features; the official PreActResNet does not.
        assert bool((fmap < 0).any()) == (name.startswith("preactresnet"))


def test_smallcnn_geometry_mimics_wrn():
    model = create_model("smallcnn-1", 10)
    assert isinstance(model, SmallCNN)
    with torch.no_grad():
        fmap = model.forward_features(model.stem(torch.randn(1, 3, 32, 32)))
    assert fmap.shape == (1, 32, 8, 8)
    assert (fmap >= 0).all()  # final BN-ReLU included in forward_features


def test_eval_forward_deterministic_and_train_reproducible_invariant_18():
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(3)
    model_a = create_model("wrn10-1", 10)
    torch.manual_seed(3)
    model_b = create_model("wrn10-1", 10)
    with torch.no_grad():
        assert torch.equal(model_a(x), model_b(x))  # same seed, same init, same train-mode forward
        model_a.eval()
        assert torch.equal(model_a(x), model_a(x))
