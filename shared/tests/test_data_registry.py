"""Registry, data-root resolution, ImageDataset, and the built-in digits dataset."""

from pathlib import Path

import pytest
import torch
from mixlab.data import ImageDataset, available_datasets, build_dataset, dataset_info, resolve_data_root
from mixlab.data.digits import DIGITS_MEAN, DIGITS_STD, MIN_CONTRAST, _all_digits, _raw_digits, digits_statistics
from mixlab.errors import DatasetError

CONTRACT_NAMES = [
    "digits",
    "cifar10",
    "cifar100",
    "svhn",
    "stl10",
    "tinyimagenet",
    "cifar100c",
    "imagenet100",
    "mnist",
    "fashion-mnist",
    "mnistm",
    "cub200",
]


def test_registered_names_and_infos():
    assert available_datasets() == CONTRACT_NAMES
    expected = {
        "digits": (10, 32),
        "cifar10": (10, 32),
        "cifar100": (100, 32),
        "svhn": (10, 32),
        "stl10": (10, 96),
        "tinyimagenet": (200, 64),
        "cifar100c": (100, 32),
        "mnist": (10, 32),
        "fashion-mnist": (10, 32),
        "cub200": (200, 64),
    }
    for name, (classes, side) in expected.items():
        info = dataset_info(name)
        assert (info.name, info.num_classes, info.image_size) == (name, classes, side)
        assert info.has_download == (name not in ("digits", "cub200")) and info.layout and info.description
    assert dataset_info("cifar10").mean == (0.4914, 0.4824, 0.4467)  # MixMo official normalization (§6.1)
    assert dataset_info("cifar10").std == (0.2023, 0.1994, 0.2010)
    assert dataset_info("tinyimagenet").mean == (0.5, 0.5, 0.5) == dataset_info("tinyimagenet").std
    assert dataset_info("stl10").splits == ("train", "test", "unlabeled")
    assert dataset_info("cub200").splits == ("train", "test")  # the release's lists/train.txt, lists/test.txt
    assert dataset_info("cub200").mean == (0.485, 0.456, 0.406) and dataset_info("cub200").std == (0.229, 0.224, 0.225)
    assert dataset_info("CIFAR-100-C").name == "cifar100c" and dataset_info("tiny_imagenet").name == "tinyimagenet"


def test_unknown_names_splits_and_options_are_dataset_errors():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        build_dataset("imagenet")
    with pytest.raises(DatasetError) as error:
        dataset_info("kmnist")
    assert all(name in str(error.value) for name in CONTRACT_NAMES)
    with pytest.raises(DatasetError, match="no split 'val'.*train, test"):
        build_dataset("digits", "val")
    with pytest.raises(DatasetError, match="does not take the option"):
        build_dataset("digits", colour=False)


def test_resolve_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXLAB_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.setenv("MIXLAB_DATA", "")
    assert resolve_data_root(None) == Path("~/.cache/mixlab/data").expanduser()
    assert resolve_data_root("~/x") == Path.home() / "x"


def test_image_dataset_validates_and_subsets():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    data = ImageDataset(images, torch.tensor([0, 1, 2, -1]), 3, (0.5,) * 3, (0.5,) * 3, "t", "train")
    sub = data.subset(torch.tensor([3, 1]))
    assert len(sub) == 2 and sub.targets.tolist() == [-1, 1] and sub.num_classes == 3
    assert data.class_counts().tolist() == [1, 1, 1] and not data.is_labeled
    with pytest.raises(DatasetError, match="uint8"):
        ImageDataset(images.float(), torch.zeros(4, dtype=torch.long), 3, (0.5,) * 3, (0.5,) * 3, "t", "train")
    with pytest.raises(DatasetError, match="outside"):
        ImageDataset(images, torch.tensor([0, 1, 2, 3]), 3, (0.5,) * 3, (0.5,) * 3, "t", "train")
    with pytest.raises(DatasetError, match="targets"):
        ImageDataset(images, torch.zeros(3, dtype=torch.long), 3, (0.5,) * 3, (0.5,) * 3, "t", "train")


# --- digits -----------------------------------------------------------------------------------------------------


def test_digits_shapes_splits_and_balance():
    train, test = build_dataset("digits", "train"), build_dataset("digits", "test", data_root="/nonexistent")
    assert train.images.shape == (1437, 3, 32, 32) and test.images.shape == (360, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.targets.dtype == torch.int64
    assert (train.mean, train.std, train.num_classes) == (DIGITS_MEAN, DIGITS_STD, 10)
    counts_train, counts_test = train.class_counts(), test.class_counts()
    assert int(counts_train.min()) >= 139 and int(counts_train.max()) <= 146  # stratified: 80% of 174..183
    assert int(counts_test.min()) >= 34 and int(counts_test.max()) <= 37
    _, targets, train_index, test_index = _all_digits()
    assert not set(train_index.tolist()) & set(test_index.tolist())
    assert sorted(train_index.tolist() + test_index.tolist()) == list(range(1797))


def test_digits_are_the_real_sklearn_digits():
    raw, labels = _raw_digits()
    assert raw.shape == (1797, 8, 8) and raw.min() == 0 and raw.max() == 16
    assert (raw == raw.round()).all()  # integer intensities 0..16
    assert torch.bincount(torch.from_numpy(labels)).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_are_deterministic():
    a, b = build_dataset("digits"), build_dataset("digits")
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    a.images[0] = 0  # a caller mutating its copy does not change the next build
    assert not torch.equal(a.images[0], build_dataset("digits").images[0])


def test_digits_colour_varies_independently_of_class_with_contrast():
    data = build_dataset("digits")
    x = data.images.double()
    corner = x[:, :, 0, 0]  # the 8x8 digits have blank corners: the background colour
    assert len({tuple(c) for c in corner.tolist()}) > 1000
    luma = (x * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)).sum(1)
    spread = luma.flatten(1).max(1).values - luma.flatten(1).min(1).values
    assert float(spread.min()) >= 0.5 * MIN_CONTRAST  # every digit is legible
    # colour carries no class information: per-class mean background colours agree within noise
    per_class = torch.stack([corner[data.targets == c].mean(0) for c in range(10)])
    assert float((per_class - corner.mean(0)).abs().max()) < 30


def test_digits_statistics_match_the_hard_coded_constants():
    mean, std = digits_statistics()
    assert mean == pytest.approx(DIGITS_MEAN, abs=6e-5) and std == pytest.approx(DIGITS_STD, abs=6e-5)


def test_digits_at_another_image_size_keep_split_labels_and_their_own_statistics():
    small = build_dataset("digits", "train", image_size=16)
    full = build_dataset("digits", "train")
    assert small.images.shape[1:] == (3, 16, 16) and small.images.dtype == torch.uint8
    assert torch.equal(small.targets, full.targets)  # the same images, in the same order, only resampled
    assert (small.mean, small.std) == digits_statistics(16) != (full.mean, full.std)
    with pytest.raises(DatasetError, match="image_size"):
        build_dataset("digits", "test", image_size=4)
    with pytest.raises(DatasetError, match="does not take"):
        build_dataset("digits", "test", size=16)
