import math

import pytest
from mixlab.errors import ConfigError
from mixmo.config import MixMoConfig
from mixmo.recipes import DEFAULT_RECIPE, RECIPES, get_recipe


def test_every_recipe_is_valid_and_unique():
    assert len(RECIPES) == len(set(RECIPES))
    for recipe in RECIPES.values():
        recipe.config.validate()


def test_main_cifar_recipe_matches_the_paper():
    c = get_recipe(DEFAULT_RECIPE["cifar100"]).config
    assert (c.model, c.num_members, c.alpha, c.weight_root, c.binary_prob, c.batch_repetitions) == (
        "wrn28-10",
        2,
        2.0,
        3.0,
        0.5,
        4,
    )
    assert c.lr == pytest.approx(0.0125) and c.batch_size == 64 and c.epochs == 300
    assert c.milestones == (100, 200, 225) and c.nesterov and c.momentum == 0.9
    assert c.optimizer_weight_decay == pytest.approx(6e-4)  # the official 3e-4 L2 loss term
    assert c.binary_prob_decay_start == pytest.approx(11 / 12)


def test_tiny_imagenet_recipe():
    for b in (2, 4):
        c = get_recipe(f"tinyimagenet-preactresnet18-2-cut-mixmo-b{b}").config
        assert c.lr == pytest.approx(0.2 / b) and c.batch_size == 100 and c.epochs == 1200
        assert c.l2 == 0 and c.weight_decay == 1e-4


def test_mimo_is_linear_mixing_with_fixed_ratios_and_unit_weights():
    c = get_recipe("cifar100-wrn28-10-mimo-b2").config
    assert c.alpha <= 0 and c.binary_prob == 0 and c.weight_root == 1.0


def test_every_row_of_tables_3_1_and_3_5_is_a_recipe_with_its_numbers():
    t31 = [r for r in RECIPES.values() if any(x.table.startswith("Table 3.1") for x in r.results)]
    assert len(t31) == 2 * 15  # 15 re-implemented rows, CIFAR-100 and CIFAR-10
    t35 = [r for r in RECIPES.values() if any(x.table.startswith("Table 3.5") for x in r.results)]
    assert len(t35) == 10 * 3  # 10 rows x widths 1, 2, 3
    best = get_recipe("cifar100-wrn28-10-cut-mixmo-cutmix-b4")
    t = next(x for x in best.results if x.table.startswith("Table 3.1")).metrics
    assert t == {"top1": 85.77, "top5": 97.42, "nll_c": pytest.approx(0.524)}
    assert get_recipe("tinyimagenet-preactresnet18-1-de4").ensemble_runs == 4


def test_ablation_blocks_and_classifier_variants_are_recipes():
    for block in ("hconcat", "vconcat", "patchup2d", "fmix", "cowmask"):
        assert get_recipe(f"cifar100-wrn28-10-{block}-mixmo-b2").config.block == block
    assert get_recipe("cifar100-wrn28-10-cut-mixmo-1enc-1clf-b2").config.shared_encoder


def test_impossible_values_are_refused():
    with pytest.raises(ConfigError, match="divisible"):
        MixMoConfig(batch_size=30, batch_repetitions=4).validate()
    with pytest.raises(ConfigError, match="binary_prob"):
        MixMoConfig(binary_prob=1.5).validate()
    with pytest.raises(ConfigError, match="block"):
        MixMoConfig(block="stripes").validate()
    with pytest.raises(ConfigError, match="unknown recipe"):
        get_recipe("cifar100-resnet-nope")
    assert math.isinf(MixMoConfig(weight_root=math.inf).validate().weight_root)


def test_quick_start_and_fashion_mnist_families():
    quick = get_recipe(DEFAULT_RECIPE["digits"]).config  # what `mixmo train` runs with no option
    assert (quick.dataset, quick.image_size, quick.batch_size, quick.num_members, quick.epochs) == (
        "digits",
        16,
        32,
        2,
        20,
    )
    vanilla = get_recipe("digits16-wrn16-1-vanilla").config
    assert vanilla.num_members == 1 and vanilla.image_size == 16 and vanilla.milestones == quick.milestones
    cifar = get_recipe("cifar100-wrn28-10-cut-mixmo-b4").config
    for width in (2, 4):
        names = [f"fashion-mnist-wrn28-{width}-{v}" for v in ("vanilla", "cutmix", "mimo-b2", "linear-mixmo-b2",
                                                           "cut-mixmo-b2", "cut-mixmo-b4", "de2")]  # fmt: skip
        configs = [get_recipe(n).config for n in names]
        assert all(c.dataset == "fashion-mnist" and c.model == f"wrn28-{width}" for c in configs)
        c = get_recipe(f"fashion-mnist-wrn28-{width}-cut-mixmo-b4").config
        assert (c.epochs, c.milestones) == (60, (20, 40, 45))  # 300 -> 60 epochs, decays at 1/3, 2/3, 3/4
        assert (c.lr, c.l2, c.batch_size, c.hflip, c.crop_padding) == (cifar.lr, cifar.l2, 64, True, 4)
    assert get_recipe("fashion-mnist-wrn28-4-de2").ensemble_runs == 2
    assert DEFAULT_RECIPE["fashion-mnist"] == "fashion-mnist-wrn28-4-cut-mixmo-b2"
