"""The Fashion-MNIST recipes: the CIFAR-10 protocol at 2^16 steps, chosen before the runs."""

import dataclasses

import pytest
from mixlab.config import resolve_config
from mixlab.data import dataset_info
from mixlab.testing import record_trainings
from realmix.config import VARIANTS
from realmix.recipes import BOOK, DEFAULTS, recipe_for

LABELS = (40, 250, 1000)


def test_fashion_mnist_family_has_every_label_count_and_variant():
    names = {f"fashion-mnist-{labels}-{variant}" for labels in LABELS for variant in VARIANTS}
    assert {r.name for r in BOOK if r.name.startswith("fashion-mnist-")} == names
    assert len(names) == 15
    info = dataset_info("fashion-mnist")  # built into mixlab: 10 classes at 32x32
    assert (info.num_classes, info.image_size) == (10, 32)


def test_fashion_mnist_recipes_are_the_cifar10_ones_at_an_eighth_of_the_budget():
    for labels in LABELS:
        for variant in VARIANTS:
            r = BOOK.get(f"fashion-mnist-{labels}-{variant}")
            c = r.config
            assert c.validate() is c and r.results == ()  # chosen before the runs: no number attached
            assert (c.dataset, c.num_labeled, c.variant, c.model) == ("fashion-mnist", labels, variant, "wrnmm28-2")
            assert (c.steps, c.eval_every, c.report_last) == (65_536, 128, 20)
            assert (c.ema_decay, c.bn_momentum, c.batch_size, c.hflip, c.balance) == (0.999, None, 64, True, "uniform")
            # The CIFAR-10 recipe of the same variant (40 labels: the 250-label one, TSA as at <= 250), with only the
            # data and the budget changed; Mean Teacher's ramp is 40% of the run, so it follows the budget.
            cifar = BOOK.get(f"cifar10-{250 if labels == 40 else labels}-{variant}").config
            expected = dataclasses.replace(
                cifar,
                dataset="fashion-mnist",
                num_labeled=labels,
                steps=2**16,
                eval_every=128,
                rampup_steps=int(0.4 * 2**16) if variant == "mean-teacher" else cifar.rampup_steps,
            )
            assert c == expected, (labels, variant)
    for labels, tsa in ((40, "linear"), (250, "linear"), (1000, "none")):
        assert BOOK.get(f"fashion-mnist-{labels}-realmix").config.tsa == tsa
    mixmatch = BOOK.get("fashion-mnist-250-mixmatch").config
    assert (mixmatch.lr, mixmatch.lambda_u, mixmatch.temperature, mixmatch.mixup_alpha, mixmatch.k_aug) == (
        0.002,
        75.0,
        0.5,
        0.75,
        2,
    )
    assert (mixmatch.weight_decay, mixmatch.rampup_steps) == (0.02, 16_384)
    realmix = BOOK.get("fashion-mnist-250-realmix").config
    assert (realmix.extend_aug, realmix.extend_copies, realmix.ood_gamma) == ("cutout", 50, 0.0)
    fixmatch = BOOK.get("fashion-mnist-250-fixmatch").config
    assert (fixmatch.optimizer, fixmatch.lr, fixmatch.unlabeled_ratio, fixmatch.threshold) == ("sgd", 0.03, 7, 0.95)
    assert fixmatch.lr_schedule == "cosine" and fixmatch.unlabeled_includes_labeled
    assert BOOK.get("fashion-mnist-250-mean-teacher").config.rampup_steps == 26_214


def test_train_on_fashion_mnist_without_recipe_runs_realmix_at_250_labels(run_cli, monkeypatch):
    default = BOOK.default("fashion-mnist")
    assert default.name == DEFAULTS["fashion-mnist"] == "fashion-mnist-250-realmix"
    assert resolve_config(BOOK, None, {"dataset": "fashion-mnist"}) == default.config
    assert [recipe_for("fashion-mnist", v) for v in VARIANTS] == [f"fashion-mnist-250-{v}" for v in VARIANTS]
    seen = record_trainings(monkeypatch)  # what `train` would train, without loading the data
    for extra, name in (([], "fashion-mnist-250-realmix"), (["--variant", "fixmatch"], "fashion-mnist-250-fixmatch")):
        result = run_cli("train", "--dataset", "fashion-mnist", *extra, "--no-progress", "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert seen.pop() == (BOOK.get(name).config, "fashion-mnist")


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "svhn"])
def test_the_other_defaults_are_unchanged(dataset):
    assert (
        BOOK.default(dataset).name
        == {
            "digits": "digits-100-realmix",
            "cifar10": "cifar10-250-realmix",
            "svhn": "svhn-250-realmix",
        }[dataset]
    )
