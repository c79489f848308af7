"""CUB-200 (the 2010 release) from a miniature release written in the real layout: images/<NNN.Name>/*.jpg and the
list files of lists.tgz; the split, labels, resize, cache and errors."""

import urllib.request
from pathlib import Path

import mixlab.data.cub200 as cub
import numpy as np
import pytest
import torch
from mixlab.data import build_dataset, dataset_info
from mixlab.errors import DatasetError
from PIL import Image

CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "200.Common_Yellowthroat")
#: (class folder, file stem, height, width, mode): varying sizes and aspect ratios, one greyscale JPEG.
IMAGES = (
    (CLASSES[0], "Black_footed_Albatross_0004_2731401028", 20, 30, "RGB"),
    (CLASSES[0], "Black_footed_Albatross_0012_46852255", 33, 17, "RGB"),
    (CLASSES[0], "Black_footed_Albatross_0016_2756723036", 12, 12, "L"),
    (CLASSES[1], "Laysan_Albatross_0011_2783435831", 40, 25, "RGB"),
    (CLASSES[1], "Laysan_Albatross_0012_23046782", 9, 70, "RGB"),
    (CLASSES[2], "Common_Yellowthroat_0007_2935302696", 24, 36, "RGB"),
    (CLASSES[2], "Common_Yellowthroat_0011_2559313259", 130, 100, "RGB"),
)
TRAIN = (0, 3, 5, 6)  # indices into IMAGES, in the list's order
TEST = (4, 1, 2)  # the real test.txt is not sorted either


def entry(index: int) -> str:
    folder, stem, *_ = IMAGES[index]
    return f"{folder}/{stem}.jpg"


def write_release(folder: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for class_folder, stem, height, width, mode in IMAGES:
        path = folder / "images" / class_folder / f"{stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode).save(path)
    (folder / "images" / CLASSES[0] / "._Black_footed_Albatross_0004_2731401028.jpg").write_bytes(b"\0\5\26\7")
    lists = folder / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(f"{entry(i)}\n" for i in TRAIN))
    (lists / "test.txt").write_text("".join(f"{entry(i)}\n" for i in TEST))
    (lists / "files.txt").write_text("".join(f"{entry(i)}\n" for i in range(len(IMAGES))))
    (lists / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    return folder


def resized(path: Path, side: int) -> torch.Tensor:
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(rgb).transpose(2, 0, 1).copy())


def test_info():
    info = dataset_info("CUB-200")
    assert (info.name, info.num_classes, info.image_size, info.splits) == ("cub200", 200, 64, ("train", "test"))
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert not info.has_download and set(info.options) == {"image_size", "cache", "workers"}
    assert "cub200/" in info.layout and "lists/train.txt" in info.layout and cub.URL in info.layout


def test_split_labels_and_images(tmp_path):
    folder = write_release(tmp_path / "cub200")
    train = build_dataset("cub200", "train", data_root=tmp_path, cache=False)
    test = build_dataset("cub200", "test", data_root=tmp_path, cache=False)
    assert train.images.shape == (4, 3, 64, 64) and test.images.shape == (3, 3, 64, 64)
    assert train.images.dtype == torch.uint8 and train.targets.dtype == torch.int64
    assert train.targets.tolist() == [0, 1, 199, 199] and test.targets.tolist() == [1, 0, 0]  # NNN - 1
    assert (train.num_classes, train.split, test.split, train.mean) == (200, "train", "test", cub.IMAGENET_MEAN)
    for data, order in ((train, TRAIN), (test, TEST)):  # the lists' order, each image resized directly
        for row, index in enumerate(order):
            assert torch.equal(data.images[row], resized(folder / "images" / entry(index), 64))
    grey = test.images[2]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    names = train.class_names
    assert len(names) == 200 and names[0] == "Black_footed_Albatross" and names[199] == "Common_Yellowthroat"
    assert names[2] == "003"  # not in this miniature classes.txt nor in the lists


def test_image_size_option_and_folder_names(tmp_path):
    folder = write_release(tmp_path / "CUB_200_2010")
    big = build_dataset("cub200", "test", data_root=tmp_path, image_size=96, cache=False)
    assert big.images.shape == (3, 3, 96, 96) and big.image_size == (96, 96)
    assert torch.equal(big.images[0], resized(folder / "images" / entry(TEST[0]), 96))
    small = build_dataset("cub200", "test", data_root=folder, image_size=8, cache=False)  # the folder itself
    assert small.images.shape == (3, 3, 8, 8)
    for bad in (7, 0, "64", 64.0, True):
        with pytest.raises(DatasetError, match="image_size must be"):
            build_dataset("cub200", "test", data_root=tmp_path, image_size=bad)


def test_cache_per_image_size(tmp_path, monkeypatch):
    folder = write_release(tmp_path / "cub200")
    calls = []
    real_decode = cub.decode

    def counting(files, side, workers=None):
        calls.append(side)
        return real_decode(files, side, workers)

    monkeypatch.setattr(cub, "decode", counting)
    first = build_dataset("cub200", "train", data_root=tmp_path)
    assert calls == [64] and (folder / ".mixlab-cache" / "train-64px.json").is_file()
    again = build_dataset("cub200", "train", data_root=tmp_path)
    assert calls == [64]  # read from the cache
    assert torch.equal(again.images, first.images) and torch.equal(again.targets, first.targets)
    assert again.class_names == first.class_names
    big = build_dataset("cub200", "train", data_root=tmp_path, image_size=96)
    assert calls == [64, 96] and big.images.shape == (4, 3, 96, 96)
    assert (folder / ".mixlab-cache" / "train-96px-images.npy").is_file()
    build_dataset("cub200", "train", data_root=tmp_path)
    build_dataset("cub200", "train", data_root=tmp_path, image_size=96)
    assert calls == [64, 96]  # both caches kept
    # another list (here: reordered) or a changed image invalidates the cache
    (folder / "lists" / "train.txt").write_text("".join(f"{entry(i)}\n" for i in reversed(TRAIN)))
    reordered = build_dataset("cub200", "train", data_root=tmp_path)
    assert calls == [64, 96, 64] and torch.equal(reordered.images, first.images.flip(0))
    assert reordered.targets.tolist() == [199, 199, 1, 0]
    Image.new("RGB", (5, 5), (9, 9, 9)).save(folder / "images" / entry(TRAIN[0]))
    changed = build_dataset("cub200", "train", data_root=tmp_path)
    assert calls == [64, 96, 64, 64] and int(changed.images[3].max()) < 20


def test_missing_release_is_one_paragraph_with_the_url(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a loader touched the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    root = tmp_path / "empty"
    for download in (False, True):
        with pytest.raises(DatasetError) as error:
            build_dataset("cub200", "train", data_root=root, download=download)
        message = str(error.value)
        lead = message.split(". ")[0]
        assert lead == f"CUB-200-2010 was not found under {root}" and "\n" not in message
        assert str(root / "cub200") in message and "CUB_200_2010" in message and cub.URL in message
        assert "images.tgz" in message and "lists.tgz" in message and "no --download" in message


def test_partial_release_names_what_is_missing(tmp_path):
    folder = write_release(tmp_path / "cub200")
    (folder / "lists" / "test.txt").unlink()
    with pytest.raises(DatasetError) as error:
        build_dataset("cub200", "test", data_root=tmp_path)
    message = str(error.value)
    assert message.startswith(f"CUB-200-2010 is incomplete in {folder}.") and "lists/test.txt" in message
    assert "\n" not in message and cub.URL in message
    build_dataset("cub200", "train", data_root=tmp_path, cache=False)  # the other split still loads


@pytest.mark.parametrize(
    "line",
    [
        "Black_footed_Albatross_0004.jpg",  # no class folder
        "1.Black_footed_Albatross/x.jpg",  # not NNN
        "201.Extra_Bird/x.jpg",  # outside 001..200
        "000.Nothing/x.jpg",
        "001.Black_footed_Albatross/sub/x.jpg",  # one folder level only
        "001.Black_footed_Albatross/..",
        "001.Black_footed_Albatross/notes.txt",
        "001.Black_footed_Albatross/x.jpg 1",  # an extra field
    ],
)
def test_malformed_list_line(tmp_path, line):
    folder = write_release(tmp_path / "cub200")
    (folder / "lists" / "train.txt").write_text(f"{entry(0)}\n\n{line}\n")
    with pytest.raises(DatasetError) as error:
        build_dataset("cub200", "train", data_root=tmp_path)
    message = str(error.value)
    assert message.startswith("CUB-200-2010: ") and "train.txt could not be read" in message
    assert "line 3" in message and repr(line) in message and "\n" not in message


def test_missing_and_corrupt_images(tmp_path):
    folder = write_release(tmp_path / "cub200")
    (folder / "images" / entry(5)).unlink()
    with pytest.raises(DatasetError) as error:
        build_dataset("cub200", "train", data_root=tmp_path)
    message = str(error.value)
    assert message.startswith(f"CUB-200-2010 is missing images in {folder / 'images'}.") and entry(5) in message
    assert "1 of the 4 files that lists/train.txt lists" in message and "\n" not in message
    assert not (folder / ".mixlab-cache").exists()  # nothing was decoded or cached
    test = build_dataset("cub200", "test", data_root=tmp_path, cache=False)  # the test split does not need it
    assert len(test) == 3
    (folder / "images" / entry(TEST[0])).write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"could not be read.*official release") as error:
        build_dataset("cub200", "test", data_root=tmp_path)
    assert entry(TEST[0]).split("/")[1] in str(error.value) and "\n" not in str(error.value)
