"""MNIST-M-style data (``mnistm``) on miniature MNIST idx files and a few small random JPEGs in BSDS500's release
layout: the composition x = |b - d| and mask m = 1[d < 0.5] recomputed exactly, determinism, disjoint background
pools per split, the ``size``/``seed`` options, and the missing-data errors. Nothing touches the network."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from mixlab import testing
from mixlab.data import build_dataset, dataset_info, mnist, mnistm
from mixlab.data import download as dl
from mixlab.data.dataset import ImageDataset
from mixlab.errors import DatasetError
from PIL import Image

N_TRAIN, N_TEST = 24, 12
BSDS = Path("BSR/BSDS500/data/images")
PHOTOS = {"train": 3, "val": 2, "test": 2}


def write_mnist(folder: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return testing.write_mnist(folder, split, n, seed)


def write_bsds(images: Path, seed: int = 1) -> None:
    testing.write_bsds500(images, PHOTOS, seed)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_mnist(tmp_path / "mnist", "train", N_TRAIN, seed=2)
    write_mnist(tmp_path / "mnist", "test", N_TEST, seed=3)
    write_bsds(tmp_path / BSDS)
    return tmp_path


def padded_digits(root: Path, split: str) -> torch.Tensor:
    """The split's MNIST digits as the ``uint8 (N, 1, 32, 32)`` the composition uses, read independently."""
    stem = mnist.FILES[split][0]
    raw = np.frombuffer(gzip.decompress((root / "mnist" / f"{stem}.gz").read_bytes()), np.uint8, offset=16)
    out = torch.zeros((raw.size // 784, 1, 32, 32), dtype=torch.uint8)
    out[:, 0, 2:30, 2:30] = torch.from_numpy(raw.reshape(-1, 28, 28).copy())
    return out


def photos(root: Path, parts: tuple[str, ...]) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(path).convert("RGB"))
        for part in parts
        for path in sorted((root / BSDS / part).glob("*.jpg"))
    ]


def source_of(crop: torch.Tensor, pool: list[np.ndarray]) -> list[tuple[int, int, int]]:
    """Every (photo, top, left) of ``pool`` whose 32x32 window equals ``crop`` (``uint8 (3, 32, 32)``)."""
    target = crop.permute(1, 2, 0).numpy()
    return [
        (k, top, left)
        for k, photo in enumerate(pool)
        for top in range(photo.shape[0] - 31)
        for left in range(photo.shape[1] - 31)
        if np.array_equal(photo[top : top + 32, left : left + 32], target)
    ]


def one_paragraph(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# --- the composition ----------------------------------------------------------------------------------------------


def test_shapes_dtypes_labels_and_info(root):
    train = build_dataset("mnistm", "train", data_root=root)
    test = build_dataset("MNIST-M", "test", data_root=root)
    assert isinstance(train, mnistm.MnistMDataset) and isinstance(train, ImageDataset)
    for data, n in ((train, N_TRAIN), (test, N_TEST)):
        assert data.images.shape == data.backgrounds.shape == (n, 3, 32, 32) and data.masks.shape == (n, 1, 32, 32)
        assert data.images.dtype == data.backgrounds.dtype == torch.uint8 and data.masks.dtype == torch.bool
        assert data.targets.dtype == torch.int64 and data.targets.tolist() == [i % 10 for i in range(n)]
        assert data.mean == mnistm.MNISTM_MEAN and data.std == mnistm.MNISTM_STD and data.name == "mnistm"
        assert data.class_names == [str(d) for d in range(10)] and data.num_classes == 10
    assert (train.split, test.split) == ("train", "test") and "n=24" in repr(train)
    info = dataset_info("mnistm")
    assert (info.num_classes, info.image_size, info.splits, info.options) == (
        10,
        32,
        ("train", "test"),
        ("seed", "size"),
    )
    assert not info.has_download and "BSR/BSDS500/data/images" in info.layout and mnistm.BSDS_URL in info.layout


def test_images_are_the_absolute_difference_of_crop_and_digit(root):
    data = build_dataset("mnistm", "train", data_root=root)
    digits = padded_digits(root, "train")
    # x = |b - d| per channel with d in [0, 1], on the [0, 1] scale, then back to bytes: exact, no rounding needed
    x = (data.backgrounds.double() / 255 - digits.double() / 255).abs() * 255
    assert float((x - x.round()).abs().max()) < 1e-9 and torch.equal(data.images, x.round().to(torch.uint8))
    # a few pixels by hand, the 2-pixel padding (d = 0) included: there x is the crop itself
    for i, c, y, z in ((0, 0, 0, 0), (3, 1, 2, 2), (7, 2, 15, 20), (N_TRAIN - 1, 0, 29, 29)):
        b, d = int(data.backgrounds[i, c, y, z]), int(digits[i, 0, y, z])
        assert int(data.images[i, c, y, z]) == abs(b - d)
    assert torch.equal(data.images[:, :, :2], data.backgrounds[:, :, :2])


def test_mask_is_one_on_the_background(root):
    data = build_dataset("mnistm", "test", data_root=root)
    digits = padded_digits(root, "test")
    assert torch.equal(data.masks, digits.double() / 255 < 0.5)
    assert bool(data.masks[:, 0, 2, 2].all()) and not bool(data.masks[:, 0, 2, 3].any())  # bytes 127, 128
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert bool(data.masks[:, :, border].all())  # the padding is background
    # on the mask the image stays within 127 of its crop (d < 0.5), and equals it where d = 0
    gap = (data.images.int() - data.backgrounds.int()).abs()
    assert int(gap[data.masks.expand_as(gap)].max()) <= 127
    zero = (digits == 0).expand_as(gap)
    assert bool(zero.any()) and int(gap[zero].max()) == 0


def test_backgrounds_are_crops_of_the_split_pool_only(root):
    train = build_dataset("mnistm", "train", data_root=root)
    test = build_dataset("mnistm", "test", data_root=root)
    train_pool, test_pool = photos(root, ("train", "val")), photos(root, ("test",))
    used = set()
    for crop in train.backgrounds:
        found = source_of(crop, train_pool)
        assert len(found) == 1 and not source_of(crop, test_pool)
        used.add(found[0][0])
    assert len(used) > 1  # several photographs drawn
    for crop in test.backgrounds:
        assert len(source_of(crop, test_pool)) == 1 and not source_of(crop, train_pool)


def test_draws_follow_the_documented_generator(root):
    data = build_dataset("mnistm", "train", data_root=root, seed=5)
    pool = photos(root, ("train", "val"))
    rng = np.random.default_rng([5, 0])
    which = rng.integers(0, len(pool), size=N_TRAIN)
    heights = np.asarray([p.shape[0] for p in pool])[which]
    widths = np.asarray([p.shape[1] for p in pool])[which]
    tops, lefts = rng.integers(0, heights - 31), rng.integers(0, widths - 31)
    for i in range(N_TRAIN):
        crop = pool[which[i]][tops[i] : tops[i] + 32, lefts[i] : lefts[i] + 32]
        assert np.array_equal(data.backgrounds[i].permute(1, 2, 0).numpy(), crop)


def test_deterministic_given_the_seed(root):
    first = build_dataset("mnistm", "train", data_root=root)
    again = build_dataset("mnistm", "train", data_root=root, seed=mnistm.DEFAULT_SEED)
    other = build_dataset("mnistm", "train", data_root=root, seed=1)
    assert torch.equal(first.images, again.images) and torch.equal(first.backgrounds, again.backgrounds)
    assert not torch.equal(first.backgrounds, other.backgrounds)
    assert torch.equal(first.masks, other.masks) and torch.equal(first.targets, other.targets)  # same digits


def test_size_option_is_a_prefix_and_subset_keeps_alignment(root):
    full = build_dataset("mnistm", "train", data_root=root)
    small = build_dataset("mnistm", "train", data_root=root, size=5)
    assert len(small) == 5 and small.backgrounds.shape == (5, 3, 32, 32) and small.masks.shape == (5, 1, 32, 32)
    for field in ("images", "targets", "backgrounds", "masks"):
        assert torch.equal(getattr(small, field), getattr(full, field)[:5])
    assert len(build_dataset("mnistm", "test", data_root=root, size=N_TEST)) == N_TEST
    picked = full.subset([4, 1, 1])
    assert isinstance(picked, mnistm.MnistMDataset) and len(picked) == 3
    for field in ("images", "targets", "backgrounds", "masks"):
        assert torch.equal(getattr(picked, field), getattr(full, field)[[4, 1, 1]])


def test_default_train_size_is_the_first_50000(root, monkeypatch):
    monkeypatch.setattr(mnistm, "TRAIN_SIZE", 10)  # the miniature file has 24 digits
    data = build_dataset("mnistm", "train", data_root=root)
    assert len(data) == 10 and torch.equal(
        data.images, build_dataset("mnistm", "train", data_root=root, size=10).images
    )
    assert len(build_dataset("mnistm", "test", data_root=root)) == N_TEST  # the test split is all of MNIST's test


def test_bad_options(root):
    with pytest.raises(DatasetError, match="size=25 is more than the 24 MNIST train digits"):
        build_dataset("mnistm", "train", data_root=root, size=N_TRAIN + 1)
    for bad in (0, -1, 2.0, True, "5"):
        with pytest.raises(DatasetError, match="size must be a positive number"):
            build_dataset("mnistm", "train", data_root=root, size=bad)
    for bad in (-1, 1.5, None, False):
        with pytest.raises(DatasetError, match="seed must be a non-negative integer"):
            build_dataset("mnistm", "train", data_root=root, seed=bad)
    with pytest.raises(DatasetError, match="does not take the option"):
        build_dataset("mnistm", "train", data_root=root, channels=1)
    data = build_dataset("mnistm", "test", data_root=root)
    with pytest.raises(DatasetError, match="has masks that do not fit its images"):
        mnistm.MnistMDataset(
            data.images,
            data.targets,
            10,
            data.mean,
            data.std,
            "mnistm",
            "test",
            backgrounds=data.backgrounds,
            masks=data.masks.to(torch.uint8),
        )


# --- where the files are looked for, and the errors ---------------------------------------------------------------


def test_bsds500_without_the_bsr_level(tmp_path, root):
    other = tmp_path / "other"
    (other / "mnist").mkdir(parents=True)
    for path in (root / "mnist").iterdir():
        (other / "mnist" / path.name).write_bytes(path.read_bytes())
    write_bsds(other / "BSDS500" / "data" / "images")
    moved = build_dataset("mnistm", "test", data_root=other)
    assert torch.equal(moved.images, build_dataset("mnistm", "test", data_root=root).images)


def test_missing_bsds500(tmp_path):
    write_mnist(tmp_path / "mnist", "train", N_TRAIN, seed=2)
    with pytest.raises(DatasetError) as error:
        build_dataset("mnistm", "train", data_root=tmp_path)
    text = one_paragraph(error)
    assert text.startswith(f"MNIST-M needs BSDS500, which was not found under {tmp_path}.")
    assert str(tmp_path / BSDS) in text and str(tmp_path / "BSDS500/data/images") in text
    assert "train/*.jpg and val/*.jpg" in text and mnistm.BSDS_URL in text and "cannot fetch" in text
    assert "missing too" not in text and "--data-root" in text


def test_missing_both_and_no_download_attempted(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be downloaded while BSDS500 is missing")

    monkeypatch.setattr(mnist, "download_dataset", refuse)
    with pytest.raises(DatasetError) as error:
        build_dataset("mnistm", "test", data_root=tmp_path, download=True)
    text = one_paragraph(error)
    assert text.startswith("MNIST-M needs BSDS500") and "test/*.jpg" in text
    assert "MNIST's test idx files are missing too" in text and str(tmp_path / "mnist") in text


def test_missing_mnist(tmp_path):
    write_bsds(tmp_path / BSDS)
    with pytest.raises(DatasetError) as error:
        build_dataset("mnistm", "test", data_root=tmp_path)
    text = one_paragraph(error)
    assert text.startswith(f"MNIST-M needs MNIST, which was not found under {tmp_path}. Looked for t10k-images")
    assert str(tmp_path / "mnist") in text and "--download" in text and text.count("was not found") == 1


def test_incomplete_or_malformed_bsds500(tmp_path, root):
    for path in (root / BSDS / "val").iterdir():
        path.unlink()
    with pytest.raises(DatasetError) as error:
        build_dataset("mnistm", "train", data_root=root)
    text = one_paragraph(error)
    assert text.startswith(f"BSDS500 is incomplete in {root / BSDS}.") and str(root / BSDS / "val") in text
    assert len(build_dataset("mnistm", "test", data_root=root)) == N_TEST  # the test split needs only test/
    for path in (root / BSDS / "train").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match=r"incomplete in .*images/train, .*images/val holds no \.jpg"):
        build_dataset("mnistm", "train", data_root=root)
    Image.fromarray(np.zeros((20, 48, 3), np.uint8)).save(root / BSDS / "test" / "999.jpg")
    with pytest.raises(DatasetError, match="999.jpg could not be read.*48x20, smaller than the 32x32 crop"):
        build_dataset("mnistm", "test", data_root=root)
    (root / BSDS / "test" / "999.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="999.jpg could not be read"):
        build_dataset("mnistm", "test", data_root=root)


def test_download_fetches_only_mnist(tmp_path, monkeypatch):
    server = tmp_path / "server"
    write_mnist(server, "test", N_TEST, seed=3)
    table = {}
    for part, stem in zip(("images", "labels"), mnist.FILES["test"]):
        served = server / f"{stem}.gz"
        digest = hashlib.md5(served.read_bytes()).hexdigest()
        table[f"test/{part}"] = dl.Resource(served.as_uri(), served.name, digest, "1 KB", extract=False, subdir="mnist")
    monkeypatch.setitem(dl.SOURCES, "mnist", table)
    root = tmp_path / "root"
    write_bsds(root / BSDS)
    with pytest.raises(DatasetError, match="needs MNIST"):
        build_dataset("mnistm", "test", data_root=root)
    data = build_dataset("mnistm", "test", data_root=root, download=True)
    assert len(data) == N_TEST and sorted(p.name for p in (root / "mnist").iterdir()) == [
        f"{stem}.gz" for stem in mnist.FILES["test"]
    ]
