"""The training recipe's pieces (spec §5-§7, §12 invariants 12, 14, 16): MSDA, RandErase, AdamW groups, the
schedule, the analytic FLOPs, the recipes and config validation."""

import dataclasses
import math

import mixvit.method as method_module
import pytest
import torch
from mixlab.engine import TrainProgress
from mixlab.errors import ConfigError
from mixlab.testing import build_on_cpu
from mixvit.attribution import SourceEmbedding, SourceEncoding
from mixvit.augment import apply_msda, msda_mask, random_erasing, smooth_labels, soft_box_mask
from mixvit.config import MixViTConfig
from mixvit.flops import ca_sa_ratio, inference_cost_ratio, overhead
from mixvit.method import MixViTMethod
from mixvit.optim import param_groups, warmup_step_factor
from mixvit.recipes import BOOK, PAPER


def test_soft_mask_is_cutmix_at_lambda_one_and_mixup_without_a_box():
    box = torch.zeros(2, 1, 4, 4)
    box[:, :, :2, :2] = 1
    assert torch.equal(soft_box_mask(box, torch.ones(2, 1, 1, 1)), 1 - box)  # binary CutMix
    lam = torch.tensor([0.3, 0.9]).view(2, 1, 1, 1)
    assert torch.equal(soft_box_mask(torch.zeros_like(box), lam), lam.expand(2, 1, 4, 4))  # plain MixUp
    both = soft_box_mask(box, lam)
    assert torch.allclose(both[0, 0, 0, 0], torch.tensor(0.7)) and torch.allclose(both[0, 0, 3, 3], torch.tensor(0.3))
    only = soft_box_mask(box, lam, "box_only")
    assert float(only[0, 0, 3, 3]) == 1.0 and torch.allclose(only[0, 0, 0, 0], torch.tensor(0.7))


def test_sampled_masks_stay_in_the_unit_interval():
    torch.manual_seed(0)
    for kind in ("simultaneous", "alternate"):
        m = msda_mask(64, 16, 16, kind=kind, cutmix_alpha=1.0, mixup_alpha=0.8)
        assert m.shape == (64, 1, 16, 16) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert torch.equal(msda_mask(3, 8, 8, kind="none", cutmix_alpha=1.0, mixup_alpha=0.8), torch.ones(3, 1, 8, 8))
    with pytest.raises(ConfigError):
        msda_mask(3, 8, 8, kind="sometimes", cutmix_alpha=1.0, mixup_alpha=0.8)


def test_label_correction_counts_only_the_visible_tokens():
    x, partner = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    ya, yb = torch.tensor([[1.0, 0.0]]).expand(2, 2), torch.tensor([[0.0, 1.0]]).expand(2, 2)
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2] = 1.0  # the image keeps its left half, the partner fills the right half
    left = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # token grid 2x2 (patch 2): the left column is visible
    visible = torch.stack([left, 1 - left]).unsqueeze(1)  # sample 0 shows the left, sample 1 the right column
    mixed, targets, lam = apply_msda(x, ya, partner, yb, mask, visible=visible, primary_dominant=False)
    assert lam.tolist() == [1.0, 0.0]  # over the whole image both would be 0.5
    assert torch.equal(targets, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(mixed[0, 0, :, :2], torch.zeros(4, 2)) and torch.equal(mixed[0, 0, :, 2:], torch.ones(4, 2))
    # Primary dominance swaps the roles of sample 1, whose own image was invisible: it now shows in the right half.
    mixed, targets, lam = apply_msda(x, ya, partner, yb, mask, visible=visible, primary_dominant=True)
    assert lam.tolist() == [1.0, 1.0] and torch.equal(mixed[1, 0, :, 2:], torch.zeros(4, 2))
    assert torch.allclose(targets.sum(1), torch.ones(2))
    _, _, plain = apply_msda(x, ya, partner, yb, mask, visible=None, primary_dominant=False)
    assert plain.tolist() == [0.5, 0.5]


def test_each_heads_target_and_weight_match_the_pixels_it_sees(monkeypatch):
    """End to end through `MixViTMethod.train_step` (pairing, CutMix + MixUp, token masks, visible-token label
    correction, primary-dominance swap): on images whose pixels encode their label, every head's soft target is
    the label mix of the pixels its input shows in the mixed token set, and its loss weight is that input's token
    share (issue: MixViT stalling at chance with the thesis's augmentation was not a target defect)."""
    config = dataclasses.replace(
        BOOK.get("digits-convit-mixvit-embedding").config,
        msda="simultaneous",
        autoaugment="none",
        random_erasing=0.0,
        crop_padding=0,
        label_smoothing=0.0,
    )
    method = build_on_cpu(MixViTMethod(config))
    method.mean.zero_()
    method.std.fill_(1.0)
    codes = method.labels.double() + 1.0  # 1..K: channel 0 holds c / 255, channel 1 c^2 / 255 (uint8 exact)
    images = torch.zeros_like(method.images)
    images[:, 0] = codes.to(torch.uint8).view(-1, 1, 1)
    images[:, 1] = (codes**2).to(torch.uint8).view(-1, 1, 1)
    method.images = images
    seen = {}
    model = method.forward_module

    def forward(x, masks, **options):
        seen["x"], seen["masks"] = x, masks
        return model(x, masks, **options)

    def loss(logits, targets, weights):
        seen["targets"], seen["weights"] = targets, weights
        return logits.sum() * 0

    method.forward_module = forward
    monkeypatch.setattr(method_module, "weighted_head_loss", loss)
    batch = next(iter(method.train_batches(0, 0)))
    method.train_step(batch, TrainProgress(0, 0, config.epochs, method.steps_per_epoch))

    x, masks, targets, weights = (seen[k].double() for k in ("x", "masks", "targets", "weights"))
    patch = method.model.stem_stride
    visible = masks.repeat_interleave(patch, -2).repeat_interleave(patch, -1)  # (B, M, H, W)
    shown = visible.sum((-2, -1))
    assert torch.allclose(weights, masks.mean((-2, -1)))  # Eq. 4.4: lambda_i = the token share
    assert torch.allclose(targets.sum(-1), torch.ones_like(weights))
    k = torch.arange(1, method.num_classes + 1, dtype=torch.float64)
    for channel, code in ((0, k), (1, k**2)):
        pixels = (x[:, :, channel] * 255 * visible).sum((-2, -1)) / shown.clamp_min(1)
        expected = (targets * code).sum(-1)
        assert torch.allclose(pixels[shown > 0], expected[shown > 0], atol=1e-3)
    assert 0 < int((shown > 0).sum()) and bool((weights > 0).any(0).all())  # both heads were checked


def test_label_smoothing():
    smoothed = smooth_labels(torch.eye(4), 0.1)
    assert torch.allclose(smoothed.sum(1), torch.ones(4)) and float(smoothed[0, 0]) == pytest.approx(0.925)


def test_random_erasing_fills_one_box_with_noise():
    torch.manual_seed(0)
    x = torch.zeros(200, 3, 32, 32)
    out = random_erasing(x, prob=0.25)
    erased = (out != 0).flatten(1).any(1)
    assert 20 < int(erased.sum()) < 80  # about a quarter of the images
    areas = (out[erased, 0] != 0).flatten(1).float().mean(1)
    assert float(areas.min()) > 0.01 and float(areas.max()) < 0.36  # scale (0.02, 1/3) of the image, up to rounding
    assert torch.equal(random_erasing(x, prob=0.0), x)


def test_adamw_groups_keep_embeddings_positions_biases_and_norms_out_of_weight_decay(tiny_vit):
    from mixvit.network import MixViT

    for attribution, decayed_extra in (("embedding", set()), ("encoding", {"attribution.weight"})):
        net = MixViT(tiny_vit(), 2, attribution=attribution)
        decay, no_decay = param_groups(net, 0.05)
        names = {id(p): n for n, p in net.named_parameters()}
        decayed = {names[id(p)] for p in decay["params"]}
        kept = {names[id(p)] for p in no_decay["params"]}
        assert {"vit.pos_embed", "vit.cls_token", "heads.0.bias", "vit.norm.weight"} <= kept
        assert "attribution.embedding" in kept or attribution == "encoding"
        assert "attribution.bias" in kept or attribution == "embedding"
        assert decayed_extra <= decayed and "heads.1.weight" in decayed and "vit.blocks.0.attn.qk.weight" in decayed
        assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert isinstance(SourceEmbedding(2, 4).no_weight_decay(), set) and SourceEncoding(2, 4).no_weight_decay() == {
        "bias"
    }


def test_schedule_warms_up_from_1e6_and_decays_at_125_and_140():
    """Invariant 12 with 10 steps per epoch: 15 warm-up epochs from 1e-6 to 1e-3, x0.1 at 125, x0.01 at 140."""
    lr = 1e-3

    def at(step):
        return lr * warmup_step_factor(
            step, steps_per_epoch=10, warmup_epochs=15, milestones=(125, 140), gamma=0.1, start_factor=1e-6 / lr
        )

    assert at(0) == pytest.approx(1e-6)
    assert at(75) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5)
    assert at(150) == pytest.approx(1e-3) and at(1249) == pytest.approx(1e-3)
    assert at(1250) == pytest.approx(1e-4) and at(1400) == pytest.approx(1e-5) and at(1499) == pytest.approx(1e-5)


def test_lr_scales_with_the_square_root_of_the_global_batch():
    config = MixViTConfig()
    assert config.lr == pytest.approx(1e-3 * math.sqrt(129 / 128))
    assert config.lr_for(4) == pytest.approx(1e-3 * math.sqrt(4 * 129 / 128))
    assert config.warmup == pytest.approx(15.0)


def test_flops_helpers_give_the_thesis_ratios():
    assert overhead(5, 2) == pytest.approx(6 / 5.5)  # 1.0909, the "x1.1" of Table 4.6
    assert overhead(5, 2, tight=False) == pytest.approx(9 / 7)
    assert ca_sa_ratio(64) == pytest.approx(201 / 832)
    assert overhead(24, 2) == pytest.approx(25 / 24.5)
    exact = inference_cost_ratio(5, 64, 384, 2)
    assert 1.05 < exact < overhead(5, 2)  # the op count sits below the CA = SA/4 bound
    assert inference_cost_ratio(5, 64, 384, 2, split=0) == pytest.approx(2.0)  # early attribution: M passes
    assert inference_cost_ratio(5, 64, 384, 2, encoding=True) > exact


def test_recipes_carry_every_table_and_defaults():
    tables = {table.split(" (")[0] for table, _, _ in PAPER}
    assert tables == {
        "Table 4.1",
        "Table 4.2a",
        "Table 4.2b",
        "Table 4.2c",
        "Table 4.2d",
        "Table 4.3",
        "Table 4.4",
        "Table 4.5",
        "Table 4.6",
        "Table A.18",
        "Table A.19",
    }
    default = BOOK.default("digits").config
    assert default.dataset == "digits" and default.source_attribution == "embedding" and default.num_members == 2
    cifar = BOOK.default("cifar100").config
    assert (cifar.model, cifar.patch_size, cifar.mix_alpha, cifar.batch_repetitions, cifar.weight_decay) == (
        "convit5-384",
        4,
        0.5,
        3,
        0.05,
    )
    tin = BOOK.get("tinyimagenet-cait-xs24-mixvit-encoding").config
    assert (tin.patch_size, tin.weight_decay, tin.drop_path_rate, tin.source_attribution) == (8, 0.1, 0.1, "encoding")
    mimo = BOOK.get("cifar100-convit-mimo-sum").config
    assert (mimo.network, mimo.alpha, mimo.binary_prob, mimo.inference) == ("multi_encoder", 0.0, 0.0, "sum")
    row5 = BOOK.get("cifar100-convit-cutmix-mixmo-separate").config
    assert (row5.binary_prob, row5.binary_prob_decay_start, row5.inference) == (1.0, 1.0, "separate")
    long = BOOK.get("cifar100-convit-mixvit-encoding-300ep-b4")
    assert long.config.epochs == 300 and long.config.batch_repetitions == 4
    assert long.results[0].metrics == {"top1": 83.2, "top1_std": 0.2}
    in100 = BOOK.default("imagenet100").config
    assert (in100.patch_size, in100.autoaugment, in100.weight_decay, in100.crop_padding, in100.image_size) == (
        16,
        "imagenet",
        0.1,
        0,
        0,
    )
    assert (in100.batch_size, in100.lr_reference_batch, in100.repetition_mode) == (255, 1024, "mixmo")
    flops = {r.name: res.metrics.get("flops_x") for r in BOOK for res in r.results if res.table.startswith("Table 4.6")}
    assert flops["cifar100-convit-mixvit-all-tokens"] == 2.0 and flops["cifar100-convit-mixvit-sum-inference"] == 1.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("source_attribution", "tokens", "source_attribution must be one of"),
        ("attribution_layer", -1, "attribution_layer"),
        ("inference", "single", "multi_encoder network infers by"),
        ("model", "wrn28-10", "vision transformer"),
        ("single_index", 2, "single_index"),
        ("mix_alpha", 0.0, "mix_alpha"),
        ("batch_size", 128, "not divisible"),
        ("repetition_mode", "ra", "repetition_mode must be one of mixmo, deit_ra"),
        ("data_workers", -1, "data_workers"),
        ("image_size", -32, "image_size"),
    ],
)
def test_config_validation(field, value, message):
    fields = {field: value}
    if field == "inference":
        fields["network"] = "multi_encoder"
    with pytest.raises(ConfigError, match=message):
        MixViTConfig(**fields).validate()


def test_deit_ra_takes_any_batch_size():
    """DeiT's repeated augmentation spreads the b copies over batches: batch 128 with b = 3 is valid there."""
    assert MixViTConfig(batch_size=128, repetition_mode="deit_ra").validate().batch_repetitions == 3
    with pytest.raises(ConfigError, match="batch repetitions b must be at least 1"):
        MixViTConfig(batch_repetitions=0, repetition_mode="deit_ra").validate()


def test_fashion_mnist_family_is_the_cifar_recipe_over_50_epochs():
    cifar = BOOK.get("cifar100-convit-mixvit-embedding").config
    for variant in ("single", "mixvit-embedding", "mixvit-encoding"):
        config = BOOK.get(f"fashion-mnist-convit-{variant}").config
        assert (config.dataset, config.epochs, config.milestones) == ("fashion-mnist", 50, (42, 47))
        same = dataclasses.replace(config, dataset="cifar100", epochs=150, milestones=(125, 140))
        assert same == BOOK.get(f"cifar100-convit-{variant}").config  # the thesis's augmentation and optimiser
    assert cifar.autoaugment == "cifar10" and cifar.msda == "simultaneous" and cifar.random_erasing == 0.25
    assert BOOK.default("fashion-mnist").name == "fashion-mnist-convit-mixvit-embedding"
