"""The WRN of the MixMatch/RealMix code (spec realmix §4 and §10 items 33-35)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.models import MultiHeadMIMO, WideResNet, count_parameters, create_model
from mixlab.models.wrn_mixmatch import MixMatchBlock, WideResNetMixMatch, tf_same_pad
from torch import nn


def _meta(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, num_classes, **kwargs)


def test_wrn28_2_parameter_count_item_33():
    assert count_parameters(_meta("wrnmm28-2", 10)) == 1_469_642
    # The count includes the conv biases; without them it drops by exactly the sum of conv output channels.
    model = _meta("wrnmm28-2", 10)
    conv_channels = sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    assert count_parameters(_meta("wrnmm28-2", 10, conv_bias=False)) == 1_469_642 - conv_channels


def test_registry_name_parses_and_options_pass_through():
    model = _meta("WRNMM28-2", 7)
    assert isinstance(model, WideResNetMixMatch)
    assert (model.depth, model.width, model.num_classes) == (28, 2, 7)
    assert (model.num_features, model.stem_channels, model.stem_stride) == (128, 16, 1)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [4, 4, 4]
    assert [s[0].conv1.out_channels for s in (model.layer1, model.layer2, model.layer3)] == [32, 64, 128]
    assert isinstance(_meta("wrn28-2"), WideResNet)  # the MixMo family keeps its name
    custom = _meta("wrnmm16-1", 3, bn_momentum=0.01, bn_eps=1e-5, leaky_slope=0.2)
    assert all((m.momentum, m.eps) == (0.01, 1e-5) for m in custom.modules() if isinstance(m, nn.BatchNorm2d))
    assert custom.leaky_slope == 0.2 and custom.layer1[0].leaky_slope == 0.2
    for bad, kwargs in (
        ("wrnmm27-2", {}),
        ("wrnmm28-0", {}),
        ("wrnmm28-2", {"dropout": 0.3}),
        ("wrnmm28-2", {"bn_momentum": 1.5}),
    ):
        with pytest.raises(ConfigError):
            _meta(bad, 10, **kwargs)


def test_batchnorm_momentum_and_eps_item_35():
    model = _meta("wrnmm28-2", 10)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 * 12 + 1
    assert all(m.momentum == 0.001 and m.eps == 1e-3 for m in bns)


def test_forward_shape_and_leaky_features_item_34():
    torch.manual_seed(0)
    model = create_model("wrnmm28-2", 10).train()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(model.stem(x))
    assert features.shape == (2, 128, 8, 8)
    assert (features < 0).any()  # final activation is a leaky ReLU, not a ReLU
    logits = model(x)
    assert logits.shape == (2, 10)
    assert torch.allclose(logits, model.head(model.pool(features)), atol=1e-5)


def test_block_layout_activate_before_residual():
    torch.manual_seed(1)
    model = create_model("wrnmm10-2", 10).train()
    first, down = model.layer1[0], model.layer2[0]
    assert first.activate_before_residual and not down.activate_before_residual
    assert all(not b.activate_before_residual for b in (*model.layer1[1:], *model.layer2, *model.layer3))
    assert isinstance(first.shortcut, nn.Conv2d) and first.shortcut.kernel_size == (1, 1)
    seen: dict[str, torch.Tensor] = {}
    first.shortcut.register_forward_hook(lambda m, inp, out: seen.__setitem__("first", inp[0]))
    down.shortcut.register_forward_hook(lambda m, inp, out: seen.__setitem__("down", inp[0]))
    z = model.stem(torch.randn(4, 3, 16, 16))
    with torch.no_grad():
        mid = model.layer1(z)
        model.layer2(mid)
        bn_z = F.batch_norm(z, None, None, first.bn1.weight, first.bn1.bias, True, 0.0, first.bn1.eps)
    # First block: the 1x1 shortcut reads lrelu(BN(x)); a later downsampling block reads the raw input.
    assert torch.allclose(seen["first"], F.leaky_relu(bn_z, 0.1), atol=1e-5)
    assert torch.equal(seen["down"], mid)
    deeper = _meta("wrnmm16-2")
    assert isinstance(deeper.layer1[1].shortcut, nn.Identity)  # same channels: identity shortcut
    # Width 1 keeps 16 channels in stage 1, so (as in the official code) even its first block has no 1x1 conv.
    assert isinstance(_meta("wrnmm10-1").layer1[0].shortcut, nn.Identity)


def test_tf_same_padding_alignment():
    ones = torch.ones(1, 1, 8, 8)
    padded = tf_same_pad(ones, 3, 2)
    assert padded.shape == (1, 1, 9, 9)
    assert padded[0, 0, 0].sum() == 8 and padded[0, 0, -1].sum() == 0  # nothing on top, one row at the bottom
    assert padded[0, 0, :, 0].sum() == 8 and padded[0, 0, :, -1].sum() == 0
    odd = tf_same_pad(torch.ones(1, 1, 7, 7), 3, 2)
    assert odd.shape == (1, 1, 9, 9) and odd[0, 0, 0].sum() == 0 and odd[0, 0, -1].sum() == 0
    block = MixMatchBlock(
        4,
        8,
        2,
        activate_before_residual=False,
        bn_momentum=0.001,
        bn_eps=1e-3,
        conv_bias=True,
        leaky_slope=0.1,
        tf_same_padding=True,
    )
    assert block(torch.randn(2, 4, 9, 9)).shape == (2, 8, 5, 5)  # ceil(9 / 2), like TF "SAME"
    sym = _meta("wrnmm10-1", 10, tf_same_padding=False)
    assert sym.layer2[0].conv1.padding == (1, 1) and _meta("wrnmm10-1").layer2[0].conv1.padding == (0, 0)


def test_initialisation_scheme():
    torch.manual_seed(2)
    model = create_model("wrnmm28-2", 10)
    conv = model.layer3[1].conv1  # 128 x 128 x 3 x 3 kernel
    assert conv.weight.std().item() == pytest.approx(1 / math.sqrt(0.5 * 9 * 128), rel=0.02)
    assert model.stem.weight.std().item() == pytest.approx(1 / math.sqrt(0.5 * 9 * 16), rel=0.15)
    assert all(m.bias is not None and not m.bias.any() for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model.head.weight.std().item() == pytest.approx(math.sqrt(2 / (128 + 10)), rel=0.1)
    assert not model.head.bias.any()
    assert abs(conv.weight.abs().max().item() * math.sqrt(0.5 * 9 * 128)) > 3.5  # normal, not truncated at 2 sigma
    a, b = create_model("wrnmm10-1", 10), create_model("wrnmm10-1", 10)
    a.init_weights(generator=torch.Generator().manual_seed(3))
    b.init_weights(generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_works_inside_the_mimo_wrapper():
    torch.manual_seed(4)
    mimo = MultiHeadMIMO(create_model("wrnmm10-1", 10), 2, generator=torch.Generator().manual_seed(5))
    assert mimo(torch.randn(2, 3, 16, 16)).shape == (2, 2, 10)
    # The extra head got this family's Glorot init (zero bias), not the MixMo scheme.
    assert not mimo.heads[1].bias.any() and not torch.equal(mimo.heads[0].weight, mimo.heads[1].weight)
