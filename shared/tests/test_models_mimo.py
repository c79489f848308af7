"""MultiHeadMIMO against the spec (mixmo-mixshare §2.1, §5.3, Table 3.4; §10 invariants 11, 16-18, 34)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.models import (
    MultiHeadMIMO,
    SmallCNN,
    count_parameters,
    create_model,
    encoder_filter_norms,
    head_column_norms,
)


def _mimo(name: str = "wrn10-1", num_members: int = 2, seed: int = 0, num_classes: int = 10, **kwargs):
    torch.manual_seed(seed)
    return MultiHeadMIMO(create_model(name, num_classes), num_members, **kwargs)


@pytest.mark.parametrize("train", [False, True])
def test_m1_reduces_exactly_to_backbone_invariant_16(train):
    torch.manual_seed(0)
    backbone = create_model("wrn10-1", 10)
    reference = copy.deepcopy(backbone)
    model = MultiHeadMIMO(backbone, 1)
    model.train(train)
    reference.train(train)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        expected = reference(x)
        assert out.shape == (4, 1, 10)
        assert torch.equal(out[:, 0], expected)
        # The training path with one input is the same network: encode -> (no mixing) -> features -> heads.
        lat = model.encode(x.unsqueeze(1))
        assert torch.equal(model.classify(model.pool(model.features(lat[:, 0])))[:, 0], reference(x))
    assert count_parameters(model) == count_parameters(reference)


def test_wrapper_moves_stem_and_head_out_of_the_core():
    torch.manual_seed(0)
    backbone = create_model("wrn10-1", 10)
    stem, head = backbone.stem, backbone.head
    model = MultiHeadMIMO(backbone, 3)
    assert model.encoders[0] is stem and model.heads[0] is head
    assert isinstance(model.core.stem, torch.nn.Identity) and isinstance(model.core.head, torch.nn.Identity)
    assert not any(k.startswith(("core.stem", "core.head")) for k in model.state_dict())
    with pytest.raises(ConfigError, match="already"):
        MultiHeadMIMO(backbone, 2)


def test_sum_of_encoders_is_one_six_channel_conv_invariant_11():
    model = _mimo(num_members=2)
    x0, x1 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        lat = model.encode(torch.stack([x0, x1], dim=1))
        weight = torch.cat([model.encoders[0].weight, model.encoders[1].weight], dim=1)  # (16, 6, 3, 3)
        mimo_conv = F.conv2d(torch.cat([x0, x1], dim=1), weight, padding=1)
    assert torch.allclose(lat.sum(1), mimo_conv, atol=1e-5)
    assert torch.allclose(lat[:, 0], model.encoders[0](x0)) and torch.allclose(lat[:, 1], model.encoders[1](x1))


def test_forward_is_the_test_path_sum_of_encodings():
    model = _mimo(num_members=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        z = sum(encoder(x) for encoder in model.encoders)
        expected = torch.stack([h(model.pool(model.features(z))) for h in model.heads], dim=1)
        out = model(x)
        assert out.shape == (2, 3, 10)
        assert torch.allclose(out, expected, atol=1e-5)
        # Same image on every input through the training pieces, summed (linear mixing at 1/M times M).
        lat = model.encode(x.unsqueeze(1).expand(-1, 3, -1, -1, -1))
        assert torch.allclose(model.encode_sum(x), lat.sum(1), atol=1e-6)


def test_independent_init_gives_distinct_encoders_and_heads():
    model = _mimo(num_members=3)
    enc = [e.weight for e in model.encoders]
    heads = [h.weight for h in model.heads]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(enc[i], enc[j])
            assert not torch.allclose(heads[i], heads[j])
    # Same seed, same model.
    again = _mimo(num_members=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_identical_encoder_init_invariant_34():
    model = _mimo(num_members=3, encoder_init="identical")
    c0, c1, c2 = model.encoders
    assert torch.equal(c0.weight, c1.weight) and torch.equal(c0.weight, c2.weight)
    assert c0.weight is not c1.weight and c0.weight.data_ptr() != c1.weight.data_ptr()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(c0(x), c1(x))
        c1.weight.add_(1.0)  # training can separate them
    assert not torch.equal(c0.weight, c1.weight)
    # Heads stay independent (Alg. A.7).
    assert not torch.allclose(model.heads[0].weight, model.heads[1].weight)


def test_colinear_encoder_init_invariant_34():
    gen = torch.Generator().manual_seed(7)
    model = _mimo(num_members=3, encoder_init="colinear", generator=gen)
    w0 = model.encoders[0].weight.flatten(1)
    for encoder in model.encoders[1:]:
        wi = encoder.weight.flatten(1)
        cosine = F.cosine_similarity(w0, wi, dim=1)
        assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-5)
        scales = wi.norm(dim=1) / w0.norm(dim=1)
        assert bool(((scales >= 0.5 - 1e-5) & (scales <= 1.5 + 1e-5)).all())
        assert scales.std() > 0.05  # per-filter scales, not one global factor, not identity
    s1 = model.encoders[1].weight.flatten(1).norm(dim=1) / w0.norm(dim=1)
    s2 = model.encoders[2].weight.flatten(1).norm(dim=1) / w0.norm(dim=1)
    assert not torch.allclose(s1, s2)
    # The scales come from the given generator: same seed, same model.
    again = _mimo(num_members=3, encoder_init="colinear", generator=torch.Generator().manual_seed(7))
    assert torch.equal(again.encoders[2].weight, model.encoders[2].weight)


def test_copied_heads_and_identical_encoders_agree_invariant_17():
    model = _mimo(num_members=3, encoder_init="identical").eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        independent = model(x)
        assert not torch.allclose(independent[:, 0], independent[:, 1])
        for head in model.heads[1:]:
            head.load_state_dict(model.heads[0].state_dict())
        logits = model(x)
    assert torch.allclose(logits[:, 0], logits[:, 1]) and torch.allclose(logits[:, 0], logits[:, 2])
    ensemble = logits.mean(dim=1)
    assert torch.allclose(ensemble, logits[:, 0], atol=1e-6)
    assert torch.equal(ensemble.argmax(-1), logits[:, 1].argmax(-1))


def test_classify_per_member_features_routes_slice_i_to_head_i():
    model = _mimo(num_members=2)
    f = torch.randn(5, 2, model.num_features)
    with torch.no_grad():
        out = model.classify(f)
        assert torch.allclose(out[:, 0], model.heads[0](f[:, 0])) and torch.allclose(out[:, 1], model.heads[1](f[:, 1]))
        shared = model.classify(f[:, 0])
        assert torch.allclose(shared[:, 1], model.heads[1](f[:, 0]))
    with pytest.raises(ValueError):
        model.classify(torch.randn(5, 3, model.num_features))


def test_single_shared_head_table_3_4():
    model = _mimo(num_members=2, num_heads=1)
    assert len(model.heads) == 1 and model.num_heads == 1 and model.num_members == 2
    assert _mimo(num_members=2, num_heads=2).num_heads == 2
    with torch.device("meta"):
        per_member = count_parameters(MultiHeadMIMO(create_model("wrn10-1", 10), 2))
    assert count_parameters(model) == per_member - (64 * 10 + 10)
    f = torch.randn(3, model.num_features)
    with torch.no_grad():
        out = model.classify(f)
        assert out.shape == (3, 2, 10) and torch.equal(out[:, 0], out[:, 1])
        fm = torch.randn(3, 2, model.num_features)
        out_m = model.classify(fm)
        assert torch.allclose(out_m[:, 1], model.heads[0](fm[:, 1]))
    assert torch.equal(head_column_norms(model)[0], head_column_norms(model)[1])


def test_shared_encoder_table_3_4():
    model = _mimo(num_members=2, shared_encoder=True).eval()
    assert len(model.encoders) == 1 and len(model.heads) == 2
    with torch.device("meta"):
        separate = count_parameters(MultiHeadMIMO(create_model("wrn10-1", 10), 2))
    assert count_parameters(model) == separate - 16 * 3 * 3 * 3
    xs = torch.randn(2, 2, 3, 32, 32)
    x = xs[:, 0]
    with torch.no_grad():
        lat = model.encode(xs)
        c = model.encoders[0]
        assert torch.allclose(lat[:, 0], c(xs[:, 0]), atol=1e-6) and torch.allclose(lat[:, 1], c(xs[:, 1]), atol=1e-6)
        z = model.encode_sum(x)
        assert torch.allclose(z, 2 * c(x), atol=1e-6)  # sum over M inputs of the same encoder
        expected = torch.stack([h(model.pool(model.features(2 * c(x)))) for h in model.heads], dim=1)
        assert torch.allclose(model(x), expected, atol=1e-5)
    norms = encoder_filter_norms(model)
    assert norms.shape == (2, 16) and torch.equal(norms[0], norms[1])


def test_filter_and_column_norms_are_l1_norms():
    model = _mimo(num_members=3)
    enc = encoder_filter_norms(model)
    heads = head_column_norms(model)
    assert enc.shape == (3, 16) and heads.shape == (3, 64)
    for i in range(3):
        w = model.encoders[i].weight
        assert torch.allclose(enc[i], w.abs().sum(dim=(1, 2, 3)))
        assert torch.allclose(heads[i], model.heads[i].weight.abs().sum(dim=0))
    assert not torch.allclose(enc[0], enc[1])
    aligned = _mimo(num_members=2, encoder_init="identical")
    assert torch.equal(encoder_filter_norms(aligned)[0], encoder_filter_norms(aligned)[1])


def test_channels_last_gives_the_same_outputs():
    model = _mimo("wrn16-1", num_members=2).eval()
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    xs = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(cl(x.to(memory_format=torch.channels_last)), model(x), atol=1e-5)
        l_cl, lat = cl.encode(xs), model.encode(xs)
        assert torch.allclose(l_cl, lat, atol=1e-5)
        fmap = cl.features(l_cl.sum(1).contiguous(memory_format=torch.channels_last))
        assert torch.allclose(
            cl.classify(cl.pool(fmap)), model.classify(model.pool(model.features(lat.sum(1)))), atol=1e-5
        )


def test_eval_forward_deterministic_invariant_18():
    model = _mimo(num_members=2).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


class _NormalHeadCNN(SmallCNN):
    """A backbone whose family initialises dense layers N(0, 0.01), like PreActResNet."""

    linear_init = "normal"


def test_extra_members_use_the_family_initialisation():
    torch.manual_seed(0)
    model = MultiHeadMIMO(_NormalHeadCNN(10, width=8), 3)  # D = 256
    for head in model.heads[1:]:
        # N(0, 0.01); the He init of WRN-style heads would give sqrt(2/256) = 0.088.
        assert abs(head.weight.std().item() - 0.01) < 0.001
        assert torch.count_nonzero(head.bias) == 0
    he = (2 / 27) ** 0.5
    bound = 2 * he / 0.87962566
    for encoder in model.encoders[1:]:
        assert encoder.weight.abs().max() < bound and encoder.weight.abs().max() > 0.8 * bound


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_members": 0},
        {"num_members": 2, "encoder_init": "random"},
        {"num_members": 2, "num_heads": 3},
        {"num_members": 2, "encoder_init": "colinear", "shared_encoder": True},
        {"num_members": 2, "encoder_init": "colinear", "colinear_scale_range": (0.0, 1.0)},
    ],
)
def test_impossible_options_raise_config_error(kwargs):
    with torch.device("meta"):
        backbone = create_model("wrn10-1", 10)
    with pytest.raises(ConfigError):
        MultiHeadMIMO(backbone, **kwargs)


def test_wrong_input_shapes_are_rejected():
    model = _mimo(num_members=2)
    with pytest.raises(ValueError, match="encode expects"):
        model.encode(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="forward expects"):
        model(torch.randn(2, 2, 3, 32, 32))


def test_pool_fn_replaces_the_pooling_of_the_final_map():
    """The hook MixShare's unmixing uses: custom pooling inside forward (one call, so DDP sees it)."""
    from mixlab.mixing import sample_mixing

    model = _mimo(num_members=2).eval()
    xs = torch.randn(3, 2, 3, 32, 32)
    masks = sample_mixing(3, 2, 32, 32, alpha=2.0, binary_prob=1.0, generator=torch.Generator().manual_seed(0)).masks
    seen = []

    def per_head(feature_map):
        seen.append(feature_map.shape)
        gap = model.pool(feature_map)
        return torch.stack([gap, 2 * gap], dim=1)  # (B, M, D): one feature vector per head

    with torch.no_grad():
        torch.testing.assert_close(model(xs, masks, pool_fn=model.pool), model(xs, masks))
        out = model(xs, masks, pool_fn=per_head)
        feature_map = model.features(model.encode(xs).mul(masks).sum(1) * 2)
        expected = model.classify(torch.stack([model.pool(feature_map), 2 * model.pool(feature_map)], dim=1))
        torch.testing.assert_close(out, expected)
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model(x, pool_fn=model.pool), model(x))
    assert seen == [torch.Size([3, 64, 8, 8])]
