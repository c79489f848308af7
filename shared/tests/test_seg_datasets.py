"""The real segmentation datasets (PASCAL VOC 2012, VOC + SBD train_aug, Cityscapes, PASCAL-Context) read from
miniature releases written in their real formats by :mod:`mixlab.seg.testing`: values read back, layouts accepted,
the converted-mask caches and the errors."""

import os
import re
import warnings
from pathlib import Path

import mixlab.seg.data.cityscapes as cityscapes
import mixlab.seg.data.context as context
import mixlab.seg.data.voc as voc
import numpy as np
import pytest
import scipy.io
import torch
from mixlab.errors import DatasetError
from mixlab.seg import testing as seg_testing
from mixlab.seg.data import IGNORE_INDEX, build_seg_dataset, seg_dataset_info
from PIL import Image

VOC_TRAIN = ["2007_000032", "2007_000039", "2007_000063"]
VOC_VAL = ["2007_000033", "2007_000042"]
SBD_TRAIN = ["2007_000039", "2008_000002", "2007_000042", "2008_000008"]  # one VOC train id, one VOC val id
SBD_VAL = ["2008_000003", "2007_000063", "2008_000009"]
SBD_ONLY = ["2008_000002", "2008_000003", "2008_000008", "2008_000009"]
TRAIN_AUG = sorted({*SBD_TRAIN, *SBD_VAL, *VOC_TRAIN} - set(VOC_VAL))
CITY_TRAIN = ["bochum_000000_000313", "aachen_000001_000019", "aachen_000000_000019"]
CONTEXT_TRAIN = ["2008_000002", "2008_000003", "2008_000007"]
CONTEXT_VAL = ["2008_000010", "2008_000011"]


def photo(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


@pytest.fixture
def voc_root(tmp_path):
    """VOC 2012 (train, val, and photographs of the SBD-only ids) plus SBD; returns (root, VOC masks, SBD masks)."""
    voc_masks = seg_testing.write_voc(tmp_path, VOC_TRAIN, VOC_VAL, image_ids=SBD_ONLY)
    sbd_masks = seg_testing.write_sbd(tmp_path, SBD_TRAIN, SBD_VAL)
    return tmp_path, voc_masks, sbd_masks


def cache_files(root: Path) -> dict[str, int]:
    folder = root / voc.AUG_CACHE
    return {path.name: path.stat().st_mtime_ns for path in folder.glob("*")}


# --- VOC ------------------------------------------------------------------------------------------------------------


def test_info():
    info = seg_dataset_info("voc")
    assert (info.num_classes, info.splits, info.image_size, info.has_download) == (21, ("train", "val"), 321, False)
    assert seg_dataset_info("voc-aug").num_classes == 21
    assert (seg_dataset_info("cityscapes").num_classes, seg_dataset_info("cityscapes").options) == (19, ("scale",))
    assert seg_dataset_info("pascal-context").num_classes == 60
    assert len(voc.VOC_CLASSES) == 21 and voc.VOC_CLASSES[11] == "diningtable"
    assert len(context.CONTEXT_CLASSES) == 59 and len(cityscapes.CITYSCAPES_CLASSES) == 19


def test_voc_reads_back_what_was_written(voc_root):
    root, masks, _ = voc_root
    folder = root / "VOCdevkit" / "VOC2012"
    for split, ids in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        dataset = build_seg_dataset("voc", split, root)
        assert dataset.ids == ids and dataset.class_names == voc.VOC_CLASSES and not dataset.in_memory
        for i, key in enumerate(ids):
            image, mask = dataset[i]
            assert image.dtype == torch.uint8 and mask.dtype == torch.uint8
            assert torch.equal(image, photo(folder / "JPEGImages" / f"{key}.jpg"))
            assert np.array_equal(mask.numpy(), masks[key])
            assert (mask[0] == IGNORE_INDEX).all()  # VOC's 255 stays 255
    with Image.open(folder / "SegmentationClass" / f"{VOC_TRAIN[0]}.png") as written:
        assert written.mode == "P"  # the writer used the real format


@pytest.mark.parametrize("below", ["VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_data_root_may_name_the_devkit_or_the_year_folder(voc_root, below):
    root, masks, _ = voc_root
    dataset = build_seg_dataset("voc", "val", root / below)
    assert dataset.ids == VOC_VAL and np.array_equal(dataset[1][1].numpy(), masks[VOC_VAL[1]])


def test_voc_accepts_grey_masks(voc_root):
    root, masks, _ = voc_root
    seg_testing.save_grey_png(root / "VOCdevkit/VOC2012/SegmentationClass" / f"{VOC_VAL[0]}.png", masks[VOC_VAL[0]])
    assert np.array_equal(build_seg_dataset("voc", "val", root)[0][1].numpy(), masks[VOC_VAL[0]])


def test_voc_refuses_an_rgb_coloured_mask(voc_root):
    root, masks, _ = voc_root
    folder = root / "VOCdevkit/VOC2012/SegmentationClass"
    colours = voc.voc_palette(256).numpy()
    Image.fromarray(colours[masks[VOC_VAL[1]]]).save(folder / f"{VOC_VAL[1]}.png")
    dataset = build_seg_dataset("voc", "val", root)  # the first mask is fine: the build succeeds
    with pytest.raises(DatasetError, match=r"'RGB'-mode image.*class indices"):
        dataset[1]
    Image.fromarray(colours[masks[VOC_VAL[0]]]).save(folder / f"{VOC_VAL[0]}.png")
    with pytest.raises(
        DatasetError, match=re.escape(str(folder / VOC_VAL[0]))
    ):  # the first mask is probed at build time
        build_seg_dataset("voc", "val", root)


def test_voc_missing_dataset_names_the_folders_looked_in(tmp_path):
    with pytest.raises(DatasetError) as error:
        build_seg_dataset("voc", "train", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "VOCdevkit" / "VOC2012") in message and "VOCtrainval_11-May-2012.tar" in message
    assert "\n" not in message


def test_voc_incomplete_and_partial_releases(voc_root):
    root, _, _ = voc_root
    folder = root / "VOCdevkit/VOC2012"
    (folder / "JPEGImages" / f"{VOC_TRAIN[1]}.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 of the 3 images .* missing .*2007_000039"):
        build_seg_dataset("voc", "train", root)
    (folder / "ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(DatasetError, match=r"incomplete in .*VOC2012.*ImageSets/Segmentation/val.txt"):
        build_seg_dataset("voc", "val", root)


def test_voc_refuses_masks_with_impossible_values_or_sizes(voc_root):
    root, masks, _ = voc_root
    folder = root / "VOCdevkit/VOC2012/SegmentationClass"
    bad = masks[VOC_TRAIN[1]].copy()
    bad[5, 5] = 30
    seg_testing.save_palette_png(folder / f"{VOC_TRAIN[1]}.png", bad)
    seg_testing.save_palette_png(folder / f"{VOC_TRAIN[2]}.png", masks[VOC_TRAIN[2]][:-1])
    dataset = build_seg_dataset("voc", "train", root)
    with pytest.raises(DatasetError, match="a mask value 30"):
        dataset[1]
    with pytest.raises(DatasetError, match="a mask of"):
        dataset[2]


def test_voc_official_train_ids(voc_root):
    root, _, _ = voc_root
    assert voc.official_train_ids(root) == VOC_TRAIN
    assert voc.official_train_ids(root / "VOCdevkit") == VOC_TRAIN


# --- VOC + SBD (train_aug) ------------------------------------------------------------------------------------------


def test_voc_aug_from_sbd_computes_the_ids_and_prefers_voc_masks(voc_root):
    root, voc_masks, sbd_masks = voc_root
    dataset = build_seg_dataset("voc-aug", "train", root)
    assert dataset.ids == TRAIN_AUG == sorted(set(VOC_TRAIN) | set(SBD_ONLY))
    for i, key in enumerate(dataset.ids):
        image, mask = dataset[i]
        expected = voc_masks[key] if key in VOC_TRAIN else sbd_masks[key]
        assert np.array_equal(mask.numpy(), expected), key
        assert torch.equal(image, photo(root / "VOCdevkit/VOC2012/JPEGImages" / f"{key}.jpg"))
    # the .mat content, read independently, is what the converted PNG holds; nothing was written into VOCdevkit
    for key in SBD_ONLY:
        content = scipy.io.loadmat(root / f"benchmark_RELEASE/dataset/cls/{key}.mat", struct_as_record=False)
        segmentation = content["GTcls"][0, 0].Segmentation
        assert np.array_equal(np.array(Image.open(root / voc.AUG_CACHE / f"{key}.png")), segmentation)
    assert sorted(cache_files(root)) == [f"{key}.png" for key in SBD_ONLY]
    assert not (root / "VOCdevkit/VOC2012/SegmentationClassAug").exists()
    val = build_seg_dataset("voc-aug", "val", root)
    assert val.ids == VOC_VAL and np.array_equal(val[0][1].numpy(), voc_masks[VOC_VAL[0]])


def test_sbd_masks_are_converted_once(voc_root, monkeypatch):
    root, _, sbd_masks = voc_root
    build_seg_dataset("voc-aug", "train", root)
    first = cache_files(root)

    def fail(path):
        raise AssertionError(f"{path} was converted again")

    with monkeypatch.context() as patch:
        patch.setattr(voc, "read_sbd_mat", fail)
        dataset = build_seg_dataset("voc-aug", "train", root)
        assert cache_files(root) == first  # same files, same mtimes
        assert np.array_equal(dataset[dataset.ids.index(SBD_ONLY[0])][1].numpy(), sbd_masks[SBD_ONLY[0]])
    # a .mat newer than its PNG (a replaced file) is converted again, and only that one
    mat = root / f"benchmark_RELEASE/dataset/cls/{SBD_ONLY[1]}.mat"
    future = first[f"{SBD_ONLY[1]}.png"] + 10**9
    os.utime(mat, ns=(future, future))
    build_seg_dataset("voc-aug", "train", root)
    again = cache_files(root)
    assert again[f"{SBD_ONLY[1]}.png"] > first[f"{SBD_ONLY[1]}.png"]
    assert {k: v for k, v in again.items() if k != f"{SBD_ONLY[1]}.png"} == {
        k: v for k, v in first.items() if k != f"{SBD_ONLY[1]}.png"
    }
    assert not [path for path in (root / voc.AUG_CACHE).iterdir() if ".tmp" in path.name]


def test_sbd_unwritable_cache_reads_the_mat_files(voc_root, monkeypatch):
    root, _, sbd_masks = voc_root

    def read_only(path, mask):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(voc, "write_png_atomic", read_only)
    with pytest.warns(UserWarning, match="could not write the converted masks"):
        dataset = build_seg_dataset("voc-aug", "train", root)
    for key in SBD_ONLY:
        assert np.array_equal(dataset[dataset.ids.index(key)][1].numpy(), sbd_masks[key])


def test_sbd_other_folders_and_data_root_at_the_devkit(tmp_path):
    seg_testing.write_voc(tmp_path, VOC_TRAIN, VOC_VAL, image_ids=SBD_ONLY)
    sbd_masks = seg_testing.write_sbd(tmp_path, SBD_TRAIN, SBD_VAL, folder="sbd/dataset")
    dataset = build_seg_dataset("voc-aug", "train", tmp_path / "VOCdevkit")  # SBD found beside VOCdevkit/
    assert dataset.ids == TRAIN_AUG
    assert np.array_equal(dataset[dataset.ids.index(SBD_ONLY[2])][1].numpy(), sbd_masks[SBD_ONLY[2]])
    assert (tmp_path / "VOCdevkit" / voc.AUG_CACHE).is_dir()  # the cache is below the data root given


def test_sbd_missing_mat_and_malformed_mat(voc_root):
    root, _, _ = voc_root
    cls = root / "benchmark_RELEASE/dataset/cls"
    scipy.io.savemat(cls / f"{SBD_ONLY[0]}.mat", {"Segmentation": np.zeros((3, 3), np.uint8)})
    with pytest.raises(DatasetError, match=r"GTcls"):
        build_seg_dataset("voc-aug", "train", root)
    (cls / f"{SBD_ONLY[0]}.mat").unlink()
    with pytest.raises(DatasetError, match=r"1 of the 4 SBD masks .* missing .*2008_000002"):
        build_seg_dataset("voc-aug", "train", root)


def test_voc_aug_from_segmentation_class_aug(tmp_path):
    voc_masks = seg_testing.write_voc(tmp_path, VOC_TRAIN, VOC_VAL, image_ids=SBD_ONLY)
    # DeepLab's zip holds train_aug and val masks; ids are computed from the file stems without a list
    aug = seg_testing.write_segmentation_class_aug(tmp_path, [*SBD_ONLY, *VOC_VAL, VOC_TRAIN[0]])
    dataset = build_seg_dataset("voc-aug", "train", tmp_path)
    assert dataset.ids == TRAIN_AUG
    for i, key in enumerate(dataset.ids):
        expected = voc_masks[key] if key in VOC_TRAIN else aug[key]
        assert np.array_equal(dataset[i][1].numpy(), expected), key
    # with train_aug.txt (DeepLab's two-column list), its ids in its order
    listed = [SBD_ONLY[1], VOC_TRAIN[2], SBD_ONLY[0]]
    seg_testing.write_segmentation_class_aug(tmp_path, [], list_ids=listed)
    dataset = build_seg_dataset("voc-aug", "train", tmp_path)
    assert dataset.ids == listed
    assert np.array_equal(dataset[0][1].numpy(), aug[SBD_ONLY[1]])
    assert not (tmp_path / voc.AUG_CACHE).exists()


def test_voc_aug_without_augmented_masks(tmp_path):
    seg_testing.write_voc(tmp_path, VOC_TRAIN, VOC_VAL)
    with pytest.raises(DatasetError) as error:
        build_seg_dataset("voc-aug", "train", tmp_path)
    message = str(error.value)
    assert "SegmentationClassAug" in message and str(tmp_path / "benchmark_RELEASE/dataset") in message
    assert build_seg_dataset("voc-aug", "val", tmp_path).ids == VOC_VAL  # val needs VOC only


def test_train_aug_id_formula(voc_root):
    root, _, _ = voc_root
    folder = root / "VOCdevkit/VOC2012"
    assert voc.train_aug_ids(folder, ["2007_000042", "2009_000001"]) == sorted([*VOC_TRAIN, "2009_000001"])


# --- Cityscapes -----------------------------------------------------------------------------------------------------


def test_cityscapes_label_mapping():
    table = cityscapes.CITYSCAPES_LABEL_TO_TRAIN
    assert table.shape == (256,) and table.dtype == np.uint8
    assert int((table != 255).sum()) == 19 and sorted(table[table != 255].tolist()) == list(range(19))
    ids = np.array([[7, 33, 0, 34], [8, 26, 255, 6]], dtype=np.uint8)
    assert cityscapes.cityscapes_train_ids(ids).tolist() == [[0, 18, 255, 255], [1, 13, 255, 255]]
    wide = np.array([-1, 7, 24, 300, 33], dtype=np.int64)  # -1: license plate; 300: unknown
    assert cityscapes.cityscapes_train_ids(wide).tolist() == [255, 0, 11, 255, 18]
    assert cityscapes.cityscapes_palette()[0].tolist() == [128, 64, 128]


def test_cityscapes_reads_back_what_was_written(tmp_path):
    labels = seg_testing.write_cityscapes(tmp_path, "train", CITY_TRAIN)
    seg_testing.write_cityscapes(tmp_path, "val", ["frankfurt_000000_000294"])
    for root in (tmp_path, tmp_path / "cityscapes"):
        dataset = build_seg_dataset("cityscapes", "train", root)
        assert dataset.ids == sorted(CITY_TRAIN) and dataset.num_classes == 19
        for i, key in enumerate(dataset.ids):
            image, mask = dataset[i]
            city = key.split("_")[0]
            assert torch.equal(image, photo(tmp_path / f"cityscapes/leftImg8bit/train/{city}/{key}_leftImg8bit.png"))
            assert np.array_equal(mask.numpy(), cityscapes.cityscapes_train_ids(labels[key]))
            assert mask[0, :4].tolist() == [0, 18, 255, 255]  # 7 -> 0, 33 -> 18, 0 -> 255, unknown 34 -> 255
    assert build_seg_dataset("cityscapes", "val", tmp_path).ids == ["frankfurt_000000_000294"]


def test_cityscapes_scale_resizes_image_and_mask(tmp_path):
    labels = seg_testing.write_cityscapes(tmp_path, "train", CITY_TRAIN[:1], size=(16, 32))
    image, mask = build_seg_dataset("cityscapes", "train", tmp_path, scale=0.5)[0]
    assert image.shape == (3, 8, 16) and mask.shape == (8, 16)
    expected = Image.fromarray(cityscapes.cityscapes_train_ids(labels[CITY_TRAIN[0]])).resize(
        (16, 8), Image.Resampling.NEAREST
    )
    assert np.array_equal(mask.numpy(), np.array(expected))
    for bad in (0, -1.0, True, "half"):
        with pytest.raises(DatasetError, match="scale must be"):
            build_seg_dataset("cityscapes", "train", tmp_path, scale=bad)


def test_cityscapes_missing_and_incomplete(tmp_path):
    with pytest.raises(DatasetError) as error:
        build_seg_dataset("cityscapes", "train", tmp_path)
    assert str(tmp_path / "cityscapes") in str(error.value) and "gtFine_trainvaltest.zip" in str(error.value)
    seg_testing.write_cityscapes(tmp_path, "train", CITY_TRAIN)
    (tmp_path / "cityscapes/gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError, match=r"1 of the 3 labelIds masks .*aachen_000001_000019"):
        build_seg_dataset("cityscapes", "train", tmp_path)
    with pytest.raises(DatasetError, match=r"incomplete .*leftImg8bit/val, gtFine/val"):
        build_seg_dataset("cityscapes", "val", tmp_path)


# --- PASCAL-Context -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["converted", "raw"])
def test_pascal_context_reads_back_what_was_written(tmp_path, layout):
    masks = seg_testing.write_pascal_context(tmp_path, CONTEXT_TRAIN, CONTEXT_VAL, layout=layout)
    for split, ids in (("train", CONTEXT_TRAIN), ("val", CONTEXT_VAL)):
        dataset = build_seg_dataset("pascal-context", split, tmp_path)
        assert dataset.ids == ids and dataset.num_classes == 60 and dataset.class_names[0] == "background"
        for i, key in enumerate(ids):
            image, mask = dataset[i]
            assert torch.equal(image, photo(tmp_path / "VOCdevkit/VOC2010/JPEGImages" / f"{key}.jpg"))
            assert np.array_equal(mask.numpy(), masks[key])
    cache = tmp_path / context.CONTEXT_CACHE
    assert sorted(path.stem for path in cache.glob("*.png")) == (
        sorted(CONTEXT_TRAIN + CONTEXT_VAL) if layout == "raw" else []
    )


def test_pascal_context_ignore_background_shifts_the_classes(tmp_path):
    masks = seg_testing.write_pascal_context(tmp_path, CONTEXT_TRAIN, CONTEXT_VAL)
    dataset = build_seg_dataset("pascal-context", "train", tmp_path, ignore_background=True)
    assert dataset.num_classes == 59 and dataset.class_names == context.CONTEXT_CLASSES
    mask, full = dataset[0][1].numpy(), masks[CONTEXT_TRAIN[0]]
    assert (mask[full == 0] == 255).all() and np.array_equal(mask[full > 0], full[full > 0] - 1)
    assert mask.max() == 255 and mask[mask != 255].max() == 58
    with pytest.raises(DatasetError, match="ignore_background must be"):
        build_seg_dataset("pascal-context", "train", tmp_path, ignore_background="yes")


def test_pascal_context_raw_labels_are_mapped_by_name_and_cached_once(tmp_path, monkeypatch):
    seg_testing.write_pascal_context(tmp_path, CONTEXT_TRAIN, CONTEXT_VAL, layout="raw")
    table = context.read_label_names(tmp_path / "pascal-context/labels.txt")
    assert table.shape == (460,) and table[2] == 1 and table[458] == 59 and table[1] == table[459] == table[0] == 0
    assert table[397] == context.CONTEXT_CLASSES.index("table") + 1
    build_seg_dataset("pascal-context", "train", tmp_path / "VOCdevkit/VOC2010")  # the data root at VOC2010 itself
    cache = tmp_path / "VOCdevkit/VOC2010" / context.CONTEXT_CACHE
    first = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    assert len(first) == len(CONTEXT_TRAIN)
    monkeypatch.setattr(context, "read_context_mat", lambda *a, **k: pytest.fail("converted again"))
    build_seg_dataset("pascal-context", "train", tmp_path / "VOCdevkit/VOC2010")
    assert {path.name: path.stat().st_mtime_ns for path in cache.iterdir()} == first


def test_pascal_context_errors(tmp_path):
    with pytest.raises(DatasetError) as error:
        build_seg_dataset("pascal-context", "train", tmp_path)
    assert str(tmp_path / "VOCdevkit" / "VOC2010") in str(error.value)
    seg_testing.write_voc(tmp_path, [], [], image_ids=CONTEXT_TRAIN, year="VOC2010")
    with pytest.raises(DatasetError, match=r"no masks.*SegmentationClassContext.*pascal-context"):
        build_seg_dataset("pascal-context", "train", tmp_path)
    seg_testing.write_pascal_context(tmp_path, CONTEXT_TRAIN, CONTEXT_VAL, layout="raw")
    labels = tmp_path / "pascal-context/labels.txt"
    labels.write_text(labels.read_text().replace(": sky\n", ": heaven\n"))
    with pytest.raises(DatasetError, match="lacks the class name"):
        build_seg_dataset("pascal-context", "train", tmp_path)


def test_datasets_refuse_unknown_options(voc_root):
    root, _, _ = voc_root
    with pytest.raises(DatasetError, match="does not take the option"):
        build_seg_dataset("voc", "train", root, scale=0.5)


def test_loader_pickles_for_worker_processes(voc_root):
    import pickle

    root, masks, _ = voc_root
    dataset = build_seg_dataset("voc-aug", "train", root)
    loader = pickle.loads(pickle.dumps(dataset.loader))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(loader(0)[1].numpy(), masks[TRAIN_AUG[0]])
