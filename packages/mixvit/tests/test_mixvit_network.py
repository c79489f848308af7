"""The MixViT network (spec §3, §12 invariants 5-11, 17) and the naive multi-encoder baselines (§3.6)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.mixing import weighted_head_loss
from mixvit.attribution import SourceEmbedding, SourceEncoding
from mixvit.baselines import MultiEncoderViT
from mixvit.loss import head_weights
from mixvit.masks import binarized_cutmix, whole_input
from mixvit.network import MixViT


def _images(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _whole(k, batch=3, M=2):
    masks = torch.zeros(batch, M, 4, 4, dtype=torch.float64)
    masks[:, k] = 1
    return masks


def test_source_embedding_is_source_encoding_with_zero_weights():
    torch.manual_seed(0)
    emb, enc = SourceEmbedding(3, 8).double(), SourceEncoding(3, 8).double()
    with torch.no_grad():
        enc.weight.zero_()
        enc.bias.copy_(emb.embedding)
    t = _images(2, 5, 8)
    masks = F.one_hot(torch.randint(3, (2, 5)), 3).transpose(1, 2).double()
    assert torch.allclose(emb(t, masks), enc(t, masks), atol=1e-12)
    assert torch.allclose(emb.tiled(t), enc.tiled(t), atol=1e-12)


def test_attribution_reaches_only_its_own_inputs_tokens():
    torch.manual_seed(0)
    emb = SourceEmbedding(2, 8).double()
    t = _images(1, 6, 8)
    owner = torch.tensor([[0, 1, 1, 0, 0, 1]])
    masks = F.one_hot(owner, 2).transpose(1, 2).double()
    out = emb(t, masks)
    assert torch.allclose(out - t, emb.embedding[owner[0]].unsqueeze(0), atol=1e-12)  # token n gets b_{i(n)}
    # Input 1 owns no token: its embedding receives no gradient at all, input 0's does.
    emb(t, torch.stack([torch.ones(6), torch.zeros(6)]).unsqueeze(0).double()).sum().backward()
    assert torch.equal(emb.embedding.grad[1], torch.zeros(8)) and bool(emb.embedding.grad[0].abs().sum() > 0)
    enc = SourceEncoding(2, 8).double()
    enc(t, torch.stack([torch.ones(6), torch.zeros(6)]).unsqueeze(0).double()).sum().backward()
    assert torch.equal(enc.weight.grad[1], torch.zeros(8, 8)) and torch.equal(enc.bias.grad[1], torch.zeros(8))


@pytest.mark.parametrize("attribution", ["embedding", "encoding"])
@pytest.mark.parametrize("layer", ["late", "early", 1])
def test_cheap_separate_inference_equals_m_full_passes(tiny_vit, attribution, layer):
    """Invariant 6: head k of the training forward on whole-input masks k is head k of the tiled inference, and
    does not depend on the other input; the trunk before the split runs once at inference."""
    net = MixViT(tiny_vit(), 2, attribution=attribution, attribution_layer=layer).double().eval()
    x, other = _images(3, 3, 16, 16), _images(3, 3, 16, 16, seed=1)
    infer = net(x)
    assert infer.shape == (3, 2, 5)
    for k in range(2):
        pair = torch.stack([x, other] if k == 0 else [other, x], dim=1)
        full = net(pair, _whole(k))
        assert torch.allclose(full[:, k], infer[:, k], atol=1e-10)


def test_trunk_runs_once_and_the_head_blocks_once_on_m_times_the_batch(tiny_vit):
    net = MixViT(tiny_vit(depth=3), 2).double().eval()
    calls: list[tuple[str, int]] = []
    for i, block in enumerate(net.vit.blocks):
        block.register_forward_hook(lambda m, args, out, i=i: calls.append((f"sa{i}", args[0].shape[0])))
    for i, block in enumerate(net.vit.head_blocks):
        block.register_forward_hook(lambda m, args, out, i=i: calls.append((f"ca{i}", args[0].shape[0])))
    net(_images(4, 3, 16, 16))
    assert calls == [("sa0", 4), ("sa1", 4), ("sa2", 4), ("ca0", 8), ("ca1", 8)]


def test_without_attribution_every_subnetwork_sees_the_same_class_feature(tiny_vit):
    net = MixViT(tiny_vit(), 2, attribution="none").double().eval()
    x = _images(3, 3, 16, 16)
    features = net.after_split(net.tiled(net.trunk(x)).flatten(0, 1)).unflatten(0, (2, 3))
    assert torch.allclose(features[0], features[1], atol=1e-12, rtol=0)
    logits = net(x)
    assert torch.allclose(logits[:, 1], net.heads[1](features[0]), atol=1e-12)
    assert not torch.allclose(logits[:, 0], logits[:, 1])  # the heads differ


def test_sum_inference_matches_the_mean_up_to_layernorm_eps(tiny_vit):
    """Invariant 9: CA normalises each token, so sum_i (t + s_i(t)) and t + mean_i s_i(t) give one feature."""
    net = MixViT(tiny_vit(), 2, attribution="encoding").double().eval()
    x = _images(3, 3, 16, 16)
    t = net.trunk(x)
    summed = net.vit.forward_head(net.tiled(t).sum(0))
    mean = net.vit.forward_head(t + (net.tiled(t) - t).mean(0))
    assert torch.allclose(summed, mean, atol=1e-4)
    assert not torch.allclose(summed, net.vit.forward_head(t), atol=1e-4)  # the attribution does matter
    assert torch.allclose(net.forward_infer(x, "sum"), net.all_heads(summed), atol=1e-12)


def test_single_and_alternating_inference(tiny_vit):
    net = MixViT(tiny_vit(), 2, single_index=1).double().eval()
    x = _images(3, 3, 16, 16)
    single = net.forward_infer(x, "single")
    assert single.shape == (3, 1, 5)
    assert torch.allclose(single[:, 0], net.forward_infer(x, "separate")[:, 1], atol=1e-10)
    a, b = net.forward_infer(x, "alternating"), net.forward_infer(x, "alternating")
    assert torch.equal(a, b) and a.shape == (3, 2, 5)  # seeded: evaluation is deterministic
    masks = net.alternating_masks(3, 16, x)
    assert torch.equal(masks.sum(1), torch.ones(3, 16, dtype=torch.float64)) and 0 < float(masks[:, 0].mean()) < 1
    net.alternating_pattern = "checkerboard"
    board = net.alternating_masks(1, 16, x)[0, 0].view(4, 4)
    assert board.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]


def test_one_subnetwork_without_mixing_is_the_plain_vit(tiny_vit):
    backbone = tiny_vit().eval()
    net = MixViT(copy.deepcopy(backbone), 1, attribution="none").eval()
    x = _images(3, 3, 16, 16)
    assert net(x).shape == (3, 1, 5)
    assert torch.allclose(net(x)[:, 0], backbone(x), atol=1e-12)
    assert torch.allclose(
        net(x.unsqueeze(1), torch.ones(3, 1, 4, 4, dtype=torch.float64))[:, 0], backbone(x), atol=1e-12
    )
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in backbone.parameters())


def test_the_loss_of_a_whole_input_batch_trains_only_its_head(tiny_vit):
    """Invariant 11: lambda = (1, 0) gives CE of head 0 alone, and head 1 gets exactly zero gradient."""
    net = MixViT(tiny_vit(), 2).double()
    x = _images(3, 2, 3, 16, 16)
    targets = F.one_hot(torch.tensor([[1, 2], [0, 4], [3, 3]]), 5).double()
    mixing = whole_input(3, 2, (4, 4), generator=torch.Generator().manual_seed(0))
    k = int(mixing.lam[0].argmax())
    logits = net(x, mixing.masks.double())
    weights = head_weights(mixing.lam.double(), whole=True)
    loss = weighted_head_loss(logits, targets, weights)
    assert torch.allclose(loss, F.cross_entropy(logits[:, k], targets[:, k].argmax(1)))
    loss.backward()
    assert torch.equal(net.heads[1 - k].weight.grad, torch.zeros_like(net.heads[1 - k].weight))
    assert bool(net.heads[k].weight.grad.abs().sum() > 0)


def test_loss_weights():
    lam = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    assert torch.equal(head_weights(lam), lam) and torch.equal(head_weights(lam, total="M"), 2 * lam)
    assert torch.allclose(head_weights(lam, weighting="uniform"), torch.full((2, 2), 0.5))
    rooted = head_weights(lam, weighting="mixmo_root", root=3.0)
    assert torch.allclose(rooted.sum(1), torch.ones(2)) and float(rooted[0, 0]) < 0.75  # w_r flattens towards 1/M
    assert torch.allclose(head_weights(lam, weighting="mixmo_root", root=1.0), lam)
    assert torch.equal(
        head_weights(torch.tensor([[0.0, 1.0]]), weighting="uniform", whole=True), torch.tensor([[0.0, 1.0]])
    )


def test_training_forward_shapes_and_all_tokens(tiny_vit):
    net = MixViT(tiny_vit(), 2).double()
    x = _images(3, 2, 3, 16, 16)
    masks = binarized_cutmix(3, 2, (16, 16), 4, 0.5).masks.double()
    assert net(x, masks).shape == (3, 2, 5)
    calls = []
    net.vit.blocks[0].register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    concat = net(x, torch.ones_like(masks), concat=True)
    assert concat.shape == (3, 2, 5) and calls[-1] == (3, 32, 32)  # 2 x 16 tokens side by side
    # In the concatenated forward set i is attributed to source i: swapping the inputs swaps nothing else.
    net.eval()
    swapped = net(x.flip(1), torch.ones_like(masks), concat=True)
    assert not torch.allclose(swapped, net(x, torch.ones_like(masks), concat=True))


def test_split_point_bounds_and_bad_options(tiny_vit):
    with pytest.raises(ConfigError, match="0..2"):
        MixViT(tiny_vit(), 2, attribution_layer=3).double()
    with pytest.raises(ConfigError, match="inference"):
        MixViT(tiny_vit(), 2, inference="vote").double()
    with pytest.raises(ConfigError, match="single_index"):
        MixViT(tiny_vit(), 2, single_index=2).double()
    assert MixViT(tiny_vit(), 2, attribution_layer="early").double().split == 0
    assert MixViT(tiny_vit(), 2).double().split == 2


def test_multi_encoder_baseline_sum_and_separate_inference(tiny_vit):
    sum_net = MultiEncoderViT(tiny_vit(), 2, inference="sum").double().eval()
    sep_net = copy.deepcopy(sum_net)
    sep_net.inference = "separate"
    x = _images(3, 3, 16, 16)
    core = sum_net
    expected_sum = core.classify(core.pool(core.features(core.encoders[0](x) + core.encoders[1](x))))
    assert torch.allclose(sum_net(x), expected_sum, atol=1e-12)
    separate = sep_net(x)
    for i in range(2):  # pass i sees only 2 * e_i(x) and keeps head i
        alone = core.classify(core.pool(core.features(2 * core.encoders[i](x))))[:, i]
        assert torch.allclose(separate[:, i], alone, atol=1e-10)
    same = MultiEncoderViT(tiny_vit(), 2, encoder_init="identical").double()
    assert torch.equal(same.encoders[0].proj.weight, same.encoders[1].proj.weight)
    with pytest.raises(ConfigError, match="sum or separate"):
        MultiEncoderViT(tiny_vit(), 2, inference="single").double()


@pytest.mark.parametrize(
    ("attribution", "expected"), [("embedding", 12_535_796), ("encoding", 12_830_708), ("none", 12_535_028)]
)
def test_parameter_counts_of_the_thesis_model(attribution, expected):
    """Spec §3.7: MixViT-embedding on the CIFAR-100 ConViT adds one head and 2 x 384 source vectors to
    12,496,528; encoding adds 2 x (384^2 + 384) = 295,680 instead (counted on the meta device)."""
    from mixlab.models import count_parameters, create_model

    with torch.device("meta"):
        net = MixViT(create_model("convit5-384", 100), 2, attribution=attribution)
    assert count_parameters(net) == expected
