"""build_ssl_data on miniature STL-10 and SVHN trees in the official formats: the extra unlabeled splits.

STL-10 adds its ``unlabeled`` split (no label file) to the unlabeled set; SVHN's ``extra`` split (``use_extra``)
is added to the unlabeled set only: the labeled images are drawn from ``train`` (RealMix spec §8 uses train only,
and the option's contract is "append to the unlabeled set"). The configs are the data fields of the RealMix SVHN
recipe (proportional balance, no flip); there is no STL-10 recipe, so STL-10 uses the class-balanced default.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch
from mixlab.data import ssl_split
from mixlab.errors import ConfigError, DatasetError
from mixlab.ssl import SSLConfig, build_ssl_data
from mixlab.testing import write_stl10, write_svhn

RNG = np.random.default_rng(0)


def _images(n, side):
    return RNG.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)


def _labels(counts):
    """SVHN's release labels 1..10 with ``counts[c]`` images of digit c (the digit 0 is label 10), shuffled."""
    labels = np.concatenate([np.full(n, 10 if c == 0 else c) for c, n in enumerate(counts)])
    return RNG.permutation(labels).astype(np.uint8)


def _stl_labels(counts):
    """STL-10's release labels 1..10 with ``counts[c]`` images of class c (label c + 1), shuffled."""
    return RNG.permutation(np.repeat(np.arange(1, 11), counts)).astype(np.uint8)


# --- STL-10 -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stl10_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("stl10")
    train_y, test_y = _stl_labels([4] * 10), _stl_labels([2] * 10)
    files = {
        "train": (_images(40, 96), train_y),
        "test": (_images(20, 96), test_y),
        "unlabeled": (_images(7, 96), None),
    }
    for split, (images, labels) in files.items():
        write_stl10(root, split, images, labels)
    return root, {
        split: (torch.from_numpy(x), None if y is None else torch.from_numpy(y.astype(np.int64) - 1))
        for split, (x, y) in files.items()
    }


STL10 = SSLConfig(dataset="stl10", num_labeled=20)


def test_stl10_unlabeled_split_joins_the_unlabeled_set(stl10_root):
    root, files = stl10_root
    assert not (root / "stl10_binary" / "unlabeled_y.bin").exists()  # the release has no labels for it
    data = build_ssl_data(STL10, root)
    train_x, train_y = files["train"]
    pool = files["unlabeled"][0]
    # The unlabeled set: the training images left out of the labeled set, then every image of the unlabeled split.
    assert data.unlabeled_images.shape == (20 + 7, 3, 96, 96)
    assert torch.equal(data.unlabeled_images, torch.cat([train_x[data.split.unlabeled], pool]))
    assert torch.equal(data.unlabeled_targets[20:], torch.full((7,), -1))
    assert torch.equal(data.unlabeled_targets[:20], train_y[data.split.unlabeled])  # audit only
    assert data.split_dict()["num_unlabeled_total"] == 27
    json.dumps(data.split_dict())


def test_stl10_labeled_split_is_class_balanced_from_train(stl10_root):
    root, files = stl10_root
    data = build_ssl_data(STL10, root)
    train_x, train_y = files["train"]
    split = data.split
    assert len(data.labeled) == 20 and data.labeled.split == "train"
    assert data.labeled.class_counts().tolist() == [2] * 10
    assert torch.equal(data.labeled.images, train_x[split.labeled])
    assert torch.equal(data.labeled.targets, train_y[split.labeled])
    assert set(split.labeled.tolist()).isdisjoint(split.unlabeled.tolist())
    assert sorted(split.labeled.tolist() + split.unlabeled.tolist()) == list(range(40))
    assert data.num_classes == 10 and data.eval_classes is None


def test_stl10_every_training_image_may_be_labeled(stl10_root):
    """MixMatch's STL-10 protocol: all 5,000 training images labeled, the unlabeled split as the unlabeled set.

    (This was refused: the split's "class c has no unlabeled image left" check did not know about the split.)
    """
    root, files = stl10_root
    data = build_ssl_data(dataclasses.replace(STL10, num_labeled=40), root)
    assert len(data.labeled) == 40 and data.labeled.class_counts().tolist() == [4] * 10
    assert data.split.unlabeled.numel() == 0 and data.split.params["unlabeled_includes_labeled"] is False
    assert torch.equal(data.unlabeled_images, files["unlabeled"][0])
    assert torch.equal(data.unlabeled_targets, torch.full((7,), -1))


def test_stl10_split_is_the_plain_seeded_split(stl10_root):
    root, files = stl10_root
    data = build_ssl_data(STL10, root)
    assert data.split.to_json() == ssl_split(files["train"][1], 20, 10, STL10.split_seed).to_json()
    fixmatch = build_ssl_data(dataclasses.replace(STL10, unlabeled_includes_labeled=True), root)
    assert fixmatch.split.unlabeled.tolist() == list(range(40)) and fixmatch.unlabeled_images.shape[0] == 47


def test_stl10_split_is_seeded(stl10_root):
    root, _ = stl10_root
    first, again = build_ssl_data(STL10, root), build_ssl_data(STL10, root)
    assert first.split.to_json() == again.split.to_json()
    assert torch.equal(first.unlabeled_images, again.unlabeled_images)
    other = build_ssl_data(dataclasses.replace(STL10, split_seed=2), root)
    assert other.split.labeled.tolist() != first.split.labeled.tolist()
    assert other.labeled.class_counts().tolist() == [2] * 10


def test_stl10_evaluation_is_the_test_split(stl10_root):
    root, files = stl10_root
    data = build_ssl_data(STL10, root)
    assert data.evaluation.split == "test" and len(data.evaluation) == 20
    assert torch.equal(data.evaluation.images, files["test"][0])
    assert torch.equal(data.evaluation.targets, files["test"][1])


def test_stl10_without_its_unlabeled_file_is_a_clear_error(tmp_path):
    write_stl10(tmp_path, "train", _images(20, 96), _stl_labels([2] * 10))
    write_stl10(tmp_path, "test", _images(10, 96), _stl_labels([1] * 10))
    with pytest.raises(DatasetError, match="unlabeled_X.bin"):
        build_ssl_data(dataclasses.replace(STL10, num_labeled=10), tmp_path)
    with pytest.raises(ConfigError, match="use_extra"):
        build_ssl_data(dataclasses.replace(STL10, use_extra=True), tmp_path)


# --- SVHN + extra -------------------------------------------------------------------------------------------------

# The RealMix SVHN recipe's data fields (realmix.recipes.SVHN): labels in proportion to the class frequencies.
SVHN = SSLConfig(dataset="svhn", num_labeled=14, balance="proportional", hflip=False)
TRAIN_COUNTS = [4, 2, 2, 4, 2, 2, 4, 2, 2, 4]  # 28 images; 14 labels take exactly half of every class


@pytest.fixture(scope="module")
def svhn_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("svhn")
    files = {
        "train": (_images(28, 32), _labels(TRAIN_COUNTS)),
        "test": (_images(10, 32), _labels([1] * 10)),
        "extra": (_images(9, 32), _labels([1] * 9 + [0])),
    }
    for split, (images, labels) in files.items():
        write_svhn(root, split, images, labels)
    return root, {split: (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))) for split, (x, y) in files.items()}


def test_svhn_labels_ten_are_the_digit_zero(svhn_root):
    root, files = svhn_root
    data = build_ssl_data(SVHN, root)
    raw = files["train"][1]
    assert (raw == 10).sum() == 4 and (raw == 0).sum() == 0
    assert data.labeled.targets.max() <= 9 and data.evaluation.targets.max() <= 9
    # Proportional: half of each class, and class 0 (the four images labeled 10) gives two.
    assert data.labeled.class_counts().tolist() == [n // 2 for n in TRAIN_COUNTS]
    assert torch.equal(data.labeled.targets, raw[data.split.labeled] % 10)
    assert torch.equal(data.evaluation.targets, files["test"][1] % 10)
    assert torch.equal(data.evaluation.images, files["test"][0]) and data.evaluation.split == "test"


def test_svhn_extra_joins_the_unlabeled_set_only(svhn_root):
    root, files = svhn_root
    train_x, _ = files["train"]
    plain, extra = build_ssl_data(SVHN, root), build_ssl_data(dataclasses.replace(SVHN, use_extra=True), root)
    # The extra images change neither the split nor the labeled set (labels are drawn from train alone) ...
    assert extra.split.to_json() == plain.split.to_json()
    assert torch.equal(extra.labeled.images, plain.labeled.images)
    assert torch.equal(extra.labeled.images, train_x[extra.split.labeled])
    # ... and are appended, unlabeled, to the train images left over.
    assert plain.unlabeled_images.shape[0] == 14 and extra.unlabeled_images.shape[0] == 14 + 9
    assert torch.equal(extra.unlabeled_images, torch.cat([plain.unlabeled_images, files["extra"][0]]))
    assert torch.equal(extra.unlabeled_targets[14:], torch.full((9,), -1))
    assert extra.split_dict()["num_unlabeled_total"] == 23
    assert torch.equal(extra.evaluation.images, plain.evaluation.images)


def test_svhn_every_train_image_labeled_with_extra_unlabeled(svhn_root):
    root, files = svhn_root
    data = build_ssl_data(dataclasses.replace(SVHN, num_labeled=28, use_extra=True), root)
    assert data.labeled.class_counts().tolist() == TRAIN_COUNTS
    assert torch.equal(data.unlabeled_images, files["extra"][0])
    with pytest.raises(ConfigError, match="no unlabeled image left"):  # without extra, nothing would be unlabeled
        build_ssl_data(dataclasses.replace(SVHN, num_labeled=28), root)


def test_svhn_split_is_seeded(svhn_root):
    root, _ = svhn_root
    config = dataclasses.replace(SVHN, use_extra=True)
    first, again = build_ssl_data(config, root), build_ssl_data(config, root)
    assert first.split.to_json() == again.split.to_json()
    assert torch.equal(first.unlabeled_images, again.unlabeled_images)
    other = build_ssl_data(dataclasses.replace(config, split_seed=7), root)
    assert other.split.labeled.tolist() != first.split.labeled.tolist()
    assert other.labeled.class_counts().tolist() == first.labeled.class_counts().tolist()


def test_svhn_use_extra_without_the_file_is_a_clear_error(tmp_path):
    write_svhn(tmp_path, "train", _images(20, 32), _labels([2] * 10))
    write_svhn(tmp_path, "test", _images(10, 32), _labels([1] * 10))
    assert len(build_ssl_data(dataclasses.replace(SVHN, num_labeled=10), tmp_path).labeled) == 10
    with pytest.raises(DatasetError, match="extra_32x32.mat"):
        build_ssl_data(dataclasses.replace(SVHN, num_labeled=10, use_extra=True), tmp_path)
