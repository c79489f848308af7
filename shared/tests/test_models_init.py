"""Official MixMo initialisation (spec mixmo-mixshare §2.5): truncated He for convs, family-specific dense init."""

import math

import pytest
import torch
from mixlab.models import create_model, he_truncated_normal_, truncated_normal_
from mixlab.models.init import TRUNCATED_NORMAL_STD, init_weights


def test_truncation_constant_is_the_std_of_a_two_sigma_truncated_normal():
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    assert math.isclose(math.sqrt(1 - 4 * phi2 / mass), TRUNCATED_NORMAL_STD, rel_tol=1e-9)


def test_big_layer_has_he_std_and_two_sigma_bound():
    weight = torch.empty(640, 640, 3, 3)  # WRN-28-10 group-3 conv, 3.7M values
    torch.manual_seed(0)
    he_truncated_normal_(weight)
    target = math.sqrt(2.0 / (640 * 9))
    sigma = target / TRUNCATED_NORMAL_STD  # scale of the normal before truncation
    assert abs(weight.std().item() / target - 1) < 0.005
    assert abs(weight.mean().item()) < 0.01 * target
    assert weight.abs().max().item() < 2 * sigma
    assert weight.abs().max().item() > 1.99 * sigma  # truncated at 2 sigma, not tighter
    # The density is a truncated normal, not e.g. a uniform of the same std: about 68.3/95.4 of the mass of
    # N(0, sigma) inside one sigma, i.e. P(|v| < 1) / P(|v| < 2) = 0.7152.
    inside_one_sigma = (weight.abs() < sigma).float().mean().item()
    assert abs(inside_one_sigma - 0.7152) < 0.003


def test_every_conv_of_a_backbone_is_within_two_sigma():
    torch.manual_seed(1)
    model = create_model("wrn16-2", 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 3 * 2 * 2 + 3  # stem, 2 convs per block, 1x1 shortcuts of the 3 group entries
    for conv in convs:
        fan_in = conv.weight[0].numel()
        bound = 2 * math.sqrt(2.0 / fan_in) / TRUNCATED_NORMAL_STD
        assert conv.weight.abs().max().item() < bound
    # WRN heads use the same truncated He init (fan_in = D), biases 0, BN gamma 1 beta 0.
    head_bound = 2 * math.sqrt(2.0 / model.num_features) / TRUNCATED_NORMAL_STD
    assert model.head.weight.abs().max().item() < head_bound
    assert model.head.weight.std().item() > 0.5 * math.sqrt(2.0 / model.num_features)
    assert torch.count_nonzero(model.head.bias) == 0
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_preactresnet_dense_layer_is_normal_001():
    torch.manual_seed(2)
    model = create_model("preactresnet18-1", 200)
    w = model.head.weight
    assert abs(w.std().item() - 0.01) < 0.0003
    assert w.abs().max().item() > 3 * 0.01  # untruncated Gaussian tails
    assert torch.count_nonzero(model.head.bias) == 0


def test_initialisation_follows_the_global_seed_or_a_generator():
    torch.manual_seed(5)
    a = create_model("wrn10-1", 10)
    torch.manual_seed(5)
    b = create_model("wrn10-1", 10)
    torch.manual_seed(6)
    c = create_model("wrn10-1", 10)
    assert torch.equal(a.layer2[0].conv1.weight, b.layer2[0].conv1.weight)
    assert not torch.equal(a.layer2[0].conv1.weight, c.layer2[0].conv1.weight)
    x = torch.empty(1000)
    y = torch.empty(1000)
    truncated_normal_(x, 0.5, generator=torch.Generator().manual_seed(3))
    truncated_normal_(y, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, y) and x.abs().max() < 1.0


def test_init_weights_resets_norm_layers_and_rejects_unknown_scheme():
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.bias.fill_(2.0)
        bn.running_mean.fill_(5.0)
    init_weights(bn)
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0) and torch.all(bn.running_mean == 0)
    with pytest.raises(ValueError):
        init_weights(bn, linear_init="xavier")


def test_meta_tensors_are_left_alone():
    with torch.device("meta"):
        weight = torch.empty(8, 8, 3, 3)
    assert he_truncated_normal_(weight) is weight and weight.is_meta
