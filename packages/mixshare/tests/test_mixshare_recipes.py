import dataclasses

import pytest
from mixlab.config import resolve_config
from mixlab.data import dataset_info
from mixlab.errors import ConfigError
from mixlab.models import create_model
from mixlab.testing import record_trainings
from mixshare.config import MixShareConfig
from mixshare.recipes import BOOK, DEFAULT_RECIPE, RECIPES, ROWS, get_recipe


def test_every_table_3_6_row_is_a_recipe_with_the_paper_numbers():
    for model in ("wrn28-2", "wrn28-5"):
        for row in ROWS:
            r = get_recipe(f"cifar100-{model}-{row}")
            assert r.config.model == model and r.config.dataset == "cifar100"
            m = r.results[0].metrics
            assert {
                "top1",
                "top1_std",
                "top1_individual",
                "top1_individual_std",
                "share_rate",
                "share_rate_std",
            } <= set(m)
    fadeout = get_recipe("cifar100-wrn28-2-mixshare-fadeout").results[0].metrics
    assert (fadeout["top1"], fadeout["top1_std"], fadeout["top1_individual"], fadeout["share_rate"]) == (
        79.0,
        0.1,
        76.7,
        64.4,
    )
    unmix = get_recipe("cifar100-wrn28-5-unmix").results[0].metrics
    assert (unmix["top1"], unmix["top1_std"], unmix["share_rate"], unmix["share_rate_std"]) == (79.4, 2.7, 98.8, 0.7)
    assert get_recipe("cifar100-wrn28-2-mixmo").results[0].metrics["share_rate"] == 4.9
    assert get_recipe("cifar100-wrn28-5-mixshare-partial").results[0].metrics["top1"] == 79.9


def test_rows_map_to_the_spec_configurations():  # spec §5.7, §6.4
    mixmo = get_recipe("cifar100-wrn28-2-mixmo").config
    assert (mixmo.encoder_init, mixmo.unmix, mixmo.binary_prob, mixmo.input_repetition, mixmo.weight_root) == (
        "independent",
        "none",
        0.5,
        0.0,
        3.0,
    )
    assert mixmo.binary_prob_decay_start == pytest.approx(11 / 12)
    expected = {
        "unmix": ("independent", "full"),
        "unmix-kernel-init": ("identical", "full"),
        "mixshare-partial": ("identical", "partial"),
        "mixshare-fadeout": ("identical", "fadeout"),
    }
    for row, (init, unmix) in expected.items():
        c = get_recipe(f"cifar100-wrn28-2-{row}").config
        assert (c.encoder_init, c.unmix, c.binary_prob, c.binary_prob_decay_start) == (init, unmix, 1.0, 1.0)
        assert (c.input_repetition, c.weight_root) == (0.1, 1.0)
    assert get_recipe("cifar100-wrn28-2-mixshare-partial").config.unmix_fraction == 0.25
    assert get_recipe("cifar100-wrn28-2-mixshare-fadeout").config.fadeout_epochs == 100
    for r in RECIPES.values():
        c = r.config
        assert (c.batch_repetitions, c.alpha, c.num_members, c.block) == (2, 2.0, 2, "cutmix")
        if c.dataset == "cifar100":
            assert (c.batch_size, c.epochs, c.milestones, c.l2, c.nesterov) == (64, 300, (75, 150, 225), 3e-4, True)
            assert c.lr == pytest.approx(0.025) and c.optimizer_weight_decay == pytest.approx(6e-4)
    assert set(DEFAULT_RECIPE) == {"cifar100", "digits", "fashion-mnist"}
    assert all(f"digits-wrn16-1-{row}" in RECIPES for row in ROWS)


def test_defaults_are_the_mixshare_framework():  # spec §5.5
    c = MixShareConfig()
    assert (c.binary_prob, c.binary_prob_decay_start, c.input_repetition, c.weight_root, c.batch_repetitions) == (
        1.0,
        1.0,
        0.1,
        1.0,
        2,
    )
    assert (c.alpha, c.encoder_init, c.model, c.dataset, c.milestones) == (
        2.0,
        "identical",
        "wrn28-2",
        "cifar100",
        (75, 150, 225),
    )
    assert (c.mask_downsample, c.unmix_normalize, c.fadeout_granularity) == ("area", False, "epoch")


def test_invalid_configs():
    with pytest.raises(ConfigError, match="binary_prob=1"):
        MixShareConfig(unmix="full", binary_prob=0.5).validate()
    with pytest.raises(ConfigError, match="unmix must be"):
        MixShareConfig(unmix="half").validate()
    with pytest.raises(ConfigError, match="unmix_fraction"):
        MixShareConfig(unmix="partial", unmix_fraction=1.5).validate()
    with pytest.raises(ConfigError, match="unknown recipe"):
        get_recipe("cifar100-wrn28-10-mixshare")


FASHION_MODELS = ("wrn28-2", "wrn28-4")


def test_fashion_mnist_family_is_every_table_3_6_row_at_two_widths():
    names = {f"fashion-mnist-{model}-{row}" for model in FASHION_MODELS for row in ROWS}
    assert {n for n in RECIPES if n.startswith("fashion-mnist-")} == names
    info = dataset_info("fashion-mnist")  # built into mixlab: 10 classes at 32x32
    assert (info.num_classes, info.image_size) == (10, 32)
    for model in FASHION_MODELS:
        assert sum(p.numel() for p in create_model(model, num_classes=10).parameters()) > 0


def test_fashion_mnist_recipes_are_the_cifar_ones_over_60_epochs():
    for model in FASHION_MODELS:
        for row in ROWS:
            r = get_recipe(f"fashion-mnist-{model}-{row}")
            c = r.config
            assert c.validate() is c and r.results == ()  # chosen before the runs: no number attached
            assert (c.dataset, c.model, c.epochs, c.milestones) == ("fashion-mnist", model, 60, (15, 30, 45))
            assert c.fadeout_epochs == 20  # the thesis's 100 of 300 epochs
            assert c.lr == pytest.approx(0.025) and (c.hflip, c.crop_padding, c.warmup_epochs) == (True, 4, 1.0)
            # Everything else (LR rule, b, p, r, input repetition, kernel alignment, unmixing) is the CIFAR row's.
            cifar = get_recipe(f"cifar100-wrn28-2-{row}").config
            back = dataclasses.replace(
                c, dataset="cifar100", model="wrn28-2", epochs=300, milestones=(75, 150, 225), fadeout_epochs=100.0
            )
            assert back == cifar, row
    mixmo = get_recipe("fashion-mnist-wrn28-4-mixmo").config
    assert (mixmo.encoder_init, mixmo.unmix, mixmo.binary_prob, mixmo.input_repetition, mixmo.weight_root) == (
        "independent",
        "none",
        0.5,
        0.0,
        3.0,
    )
    fadeout = get_recipe("fashion-mnist-wrn28-2-mixshare-fadeout").config
    assert (fadeout.encoder_init, fadeout.unmix, fadeout.binary_prob, fadeout.input_repetition) == (
        "identical",
        "fadeout",
        1.0,
        0.1,
    )
    assert (fadeout.weight_root, fadeout.batch_repetitions) == (1.0, 2)


def test_train_on_fashion_mnist_without_recipe_runs_the_fadeout_wrn28_2(run_cli, monkeypatch):
    default = BOOK.default("fashion-mnist")
    assert default.name == DEFAULT_RECIPE["fashion-mnist"] == "fashion-mnist-wrn28-2-mixshare-fadeout"
    assert resolve_config(BOOK, None, {"dataset": "fashion-mnist"}) == default.config
    seen = record_trainings(monkeypatch)  # what `train` would train, without loading the data
    result = run_cli("train", "--dataset", "fashion-mnist", "--no-progress", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert seen == [(default.config, "fashion-mnist")]
