"""ImageNet-100 (CMC class list) from miniature ImageFolder trees of real JPEGs, the file-backed dataset, its lazy
``images`` view and the worker loader."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from mixlab.data import (
    BatchRepetitionSampler,
    FileBatchLoader,
    SeededBatchSampler,
    build_dataset,
    dataset_info,
)
from mixlab.data.imagenet100 import CMC_WNIDS, IMAGENET_MEAN, IMAGENET_STD
from mixlab.errors import DatasetError
from PIL import Image

#: The first and last lines of HobbitLong/CMC imagenet100.txt (the file is not sorted).
CMC_FILE_FIRST, CMC_FILE_LAST = "n02869837", "n02090622"
DECOYS = ("n01440764", "n01443537")  # ImageNet-1k classes outside the CMC list (tench, goldfish)


def jpeg(path: Path, rng: np.random.Generator, height: int = 12, width: int = 16, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode).save(path)


def write_tree(folder: Path, *, extra_classes=(), per_class: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``folder/{train,val}/<wnid>/*.JPEG`` for every CMC class (1 image, or ``per_class[wnid]``) and ``extra``."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for wnid in (*CMC_WNIDS, *extra_classes):
            for k in range((per_class or {}).get(wnid, 1)):
                jpeg(folder / split / wnid / f"{wnid}_{k}.JPEG", rng)
    return folder


def test_cmc_class_list_is_the_100_sorted_wnids():
    assert len(CMC_WNIDS) == len(set(CMC_WNIDS)) == 100
    assert list(CMC_WNIDS) == sorted(CMC_WNIDS)  # class order = sorted wnids = ImageFolder's order
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in CMC_WNIDS)
    assert {CMC_FILE_FIRST, CMC_FILE_LAST} <= set(CMC_WNIDS) and not set(DECOYS) & set(CMC_WNIDS)
    # pins the list to the checked copy of imagenet100.txt, sorted, one wnid per line
    assert hashlib.md5("".join(w + "\n" for w in CMC_WNIDS).encode()).hexdigest() == "9d992254a6595741282afce949eed519"


def test_registry_entry():
    info = dataset_info("imagenet100")
    assert (info.num_classes, info.image_size, info.splits, info.has_download) == (100, 224, ("train", "test"), False)
    assert (info.mean, info.std) == (IMAGENET_MEAN, IMAGENET_STD) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert dataset_info("ImageNet-100").name == "imagenet100"


def test_subset_tree_labels_follow_imagefolder_order(tmp_path):
    from torchvision.datasets.folder import find_classes

    folder = write_tree(tmp_path / "imagenet100", per_class={CMC_WNIDS[0]: 3, CMC_WNIDS[99]: 2})
    train = build_dataset("imagenet100", "train", data_root=tmp_path, image_size=16)
    classes, class_to_idx = find_classes(str(folder / "train"))
    assert classes == list(CMC_WNIDS) == train.class_names
    assert len(train) == 103 and train.targets.tolist() == [0, 0, 0, *range(1, 99), 99, 99]
    assert all(class_to_idx[path.parent.name] == int(t) for path, t in zip(train.files, train.targets, strict=True))
    assert (train.num_classes, train.mean, train.std, train.split) == (100, IMAGENET_MEAN, IMAGENET_STD, "train")
    test = build_dataset("imagenet100", "test", data_root=tmp_path)
    assert test.split == "test" and test.files[0].parent.parent.name == "val" and test.image_size == (224, 224)


def test_full_imagenet_tree_selects_the_cmc_classes(tmp_path):
    write_tree(tmp_path / "imagenet", extra_classes=DECOYS)
    full = build_dataset("imagenet100", "test", data_root=tmp_path, image_size=16)
    write_tree(tmp_path / "subset")
    subset = build_dataset("imagenet100", "test", data_root=tmp_path / "subset", image_size=16)  # root = the tree
    assert [p.relative_to(tmp_path / "imagenet") for p in full.files] == [
        p.relative_to(tmp_path / "subset") for p in subset.files
    ]
    assert torch.equal(full.targets, subset.targets) and full.num_classes == 100
    assert not any(p.parent.name in DECOYS for p in full.files)


def test_random_resized_crop_is_seeded_per_item_and_test_view_is_the_centre(tmp_path):
    folder = write_tree(tmp_path / "imagenet100")
    train = build_dataset("imagenet100", "train", data_root=tmp_path, image_size=16)
    image, target = train[(5, 123)]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and target == 5
    assert torch.equal(image, train[(5, 123)][0]) and not torch.equal(image, train[(5, 124)][0])
    # test view: short side to round(16 / 0.875) = 18, centre 16x16; only the wide image's middle third is green
    stripes = np.zeros((20, 60, 3), dtype=np.uint8)
    stripes[:, :20, 0] = stripes[:, 40:, 0] = 255
    stripes[:, 20:40, 1] = 255
    Image.fromarray(stripes).save(folder / "val" / CMC_WNIDS[0] / "a.png")
    test = build_dataset("imagenet100", "test", data_root=tmp_path, image_size=16)
    assert test.files[0].name == "a.png"
    centre = test.images[0].int()
    assert centre.shape == (3, 16, 16) and bool((centre[1] > 200).all()) and bool((centre[0] < 50).all())


def test_lazy_images_view_decodes_like_load(tmp_path):
    write_tree(tmp_path / "imagenet100")
    test = build_dataset("imagenet100", "test", data_root=tmp_path, image_size=16, workers=2)
    assert test.images.shape == (100, 3, 16, 16) and len(test.images) == 100 and test.images.dtype == torch.uint8
    block = test.images[3:7]
    assert block.shape == (4, 3, 16, 16) and all(torch.equal(block[k], test.load(3 + k)) for k in range(4))
    assert torch.equal(test.images[[9, 2]], torch.stack([test.load(9), test.load(2)]))
    assert test.images[5:5].shape == (0, 3, 16, 16)
    sub = test.subset([7, 7, 1])
    assert sub.targets.tolist() == [7, 7, 1] and torch.equal(sub.images[0], test.load(7))


def test_missing_data_is_one_paragraph_without_download(tmp_path):
    with pytest.raises(DatasetError) as error:
        build_dataset("imagenet100", "train", data_root=tmp_path / "empty", download=True)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "empty" / "imagenet100") in message
    assert str(tmp_path / "empty" / "imagenet") in message and "cannot be downloaded" in message
    assert "Re-run with --download" not in message and "imagenet100.txt" in message


def test_missing_class_and_broken_file(tmp_path):
    folder = write_tree(tmp_path / "imagenet100")
    (folder / "val" / CMC_WNIDS[4] / f"{CMC_WNIDS[4]}_0.JPEG").write_bytes(b"not a jpeg")
    test = build_dataset("imagenet100", "test", data_root=tmp_path, image_size=16)
    with pytest.raises(DatasetError, match=f"{CMC_WNIDS[4]}_0.JPEG could not be read") as error:
        test.images[4]
    assert "--download" not in str(error.value)
    for path in (folder / "train" / CMC_WNIDS[7]).iterdir():
        path.unlink()
    (folder / "train" / CMC_WNIDS[7]).rmdir()
    with pytest.raises(DatasetError, match=f"lacks 1 of the 100 CMC class folders \\({CMC_WNIDS[7]}\\)"):
        build_dataset("imagenet100", "train", data_root=tmp_path)
    with pytest.raises(DatasetError, match="image_size must be"):
        build_dataset("imagenet100", "test", data_root=tmp_path, image_size=0)


def seeded_batches(epoch: int, start_batch: int = 0) -> SeededBatchSampler:
    sampler = BatchRepetitionSampler(100, 12, repetitions=3, seed=4)
    sampler.set_epoch(epoch, start_batch)
    return SeededBatchSampler(sampler, seed=4)


def test_worker_loader_is_deterministic_whatever_the_workers_and_resumable(tmp_path):
    write_tree(tmp_path / "imagenet100")
    train = build_dataset("imagenet100", "train", data_root=tmp_path, image_size=8)
    inline = list(FileBatchLoader(train, seeded_batches(2), workers=0))
    assert len(inline) == 100 * 3 // 12 and inline[0][0].shape == (12, 3, 8, 8)
    assert inline[0][1].tolist() == [k for k, _ in next(iter(seeded_batches(2)))]
    rng_before = torch.get_rng_state()
    workers = list(FileBatchLoader(train, seeded_batches(2), workers=2))
    assert torch.equal(rng_before, torch.get_rng_state())  # the loader never draws from the global RNG
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(inline, workers, strict=True))
    tail = list(FileBatchLoader(train, seeded_batches(2, start_batch=20), workers=0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(inline[20:], tail, strict=True)) and len(tail) == 5
    other_epoch = next(iter(FileBatchLoader(train, seeded_batches(3), workers=0)))
    assert not torch.equal(other_epoch[0], inline[0][0])


def test_a_broken_file_in_a_worker_is_the_one_paragraph_error(tmp_path):
    folder = write_tree(tmp_path / "imagenet100")
    train = build_dataset("imagenet100", "train", data_root=tmp_path, image_size=8)
    for wnid in CMC_WNIDS:
        (folder / "train" / wnid / f"{wnid}_0.JPEG").write_bytes(b"broken")
    with pytest.raises(DatasetError) as error:
        list(FileBatchLoader(train, seeded_batches(0), workers=1))
    message = str(error.value)
    assert message.startswith("ImageNet-100: ") and "could not be read" in message and "\n" not in message
    assert "Traceback" not in message
