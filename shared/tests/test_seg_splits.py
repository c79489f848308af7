"""Semi-supervised segmentation splits (spec guidedmix §4.4, §8 item 18): ceil counts, seeded draws, the named
settings, the list files and the checks."""

import random
import re
import subprocess
import sys
from fractions import Fraction

import mixlab.seg.data.voc as voc
import pytest
import torch
from mixlab.errors import ConfigError, DatasetError
from mixlab.seg import testing as seg_testing
from mixlab.seg.data import SegDataset, build_seg_dataset
from mixlab.seg.splits import (
    SPLIT_SETTINGS,
    SegSplit,
    labeled_count,
    random_split,
    read_id_list,
    resolve_split,
    split_from_lists,
    split_setting,
    write_split,
)


def ids_of(count: int, prefix: str = "2008") -> list[str]:
    return [f"{prefix}_{i:06d}" for i in range(count)]


def train_set(ids: list[str], name: str = "voc-aug", split: str = "train") -> SegDataset:
    def never(index: int):
        raise AssertionError("a split must not decode samples")

    return SegDataset(name, split, 21, voc.VOC_CLASSES, ids, loader=never)


@pytest.mark.parametrize(
    ("total", "fraction", "count"),
    [
        (10_582, "1/16", 662),
        (10_582, "1/8", 1323),
        (10_582, "1/4", 2646),
        (10_582, "1/2", 5291),
        (10_582, "1/100", 106),
        (10_582, "1/50", 212),
        (10_582, "1/20", 530),
        (2_975, "1/8", 372),
        (2_975, "1/4", 744),
        (2_975, "1/2", 1488),
        (4_998, "1/8", 625),
        (4_998, "1/4", 1250),
    ],
)
def test_labeled_counts_of_the_spec(total, fraction, count):
    assert labeled_count(total, fraction=fraction) == count
    assert labeled_count(total, fraction=float(Fraction(fraction))) == count
    assert labeled_count(total, fraction=Fraction(fraction)) == count


def test_labeled_count_is_exact_and_checked():
    assert labeled_count(11, fraction=1 / 11) == 1  # the float 1/11 is slightly above 1/11: read as 1/11
    assert labeled_count(100, fraction=0.07) == 7 and labeled_count(100, fraction="0.07") == 7
    assert labeled_count(10_582, n_labeled=500) == 500
    for kwargs in ({}, {"n_labeled": 5, "fraction": "1/8"}):
        with pytest.raises(ConfigError, match="exactly one"):
            labeled_count(100, **kwargs)
    for fraction in (0, 1, 1.5, -0.1, "abc", "1/0", float("nan"), True):
        with pytest.raises(ConfigError, match="fraction"):
            labeled_count(100, fraction=fraction)
    for n in (0, 100, 101, -3):
        with pytest.raises(ConfigError, match="at least 1 and below 100"):
            labeled_count(100, n_labeled=n)
    for n in (True, 2.5, "7"):
        with pytest.raises(ConfigError, match="whole number"):
            labeled_count(100, n_labeled=n)


def test_named_settings():
    published = {
        "voc-aug-500": (500, 10_082),
        "voc-aug-1000": (1000, 9582),
        "voc-aug-1464": (1464, 9118),
        "voc-aug-1-16": (662, 9920),
        "voc-aug-1-8": (1323, 9259),
        "voc-aug-1-4": (2646, 7936),
        "voc-aug-1-2": (5291, 5291),
        "voc-aug-1-100": (106, 10_476),
        "voc-aug-1-50": (212, 10_370),
        "voc-aug-1-20": (530, 10_052),
        "cityscapes-100": (100, 2875),
        "cityscapes-1-8": (372, 2603),
        "cityscapes-1-4": (744, 2231),
        "cityscapes-1-2": (1488, 1487),
        "pascal-context-1-8": (625, 4373),
        "pascal-context-1-4": (1250, 3748),
    }
    assert set(SPLIT_SETTINGS) == set(published)
    for name, counts in published.items():
        assert re.fullmatch(r"[a-z0-9-]+", name) and SPLIT_SETTINGS[name].counts() == counts, name
    assert [name for name, s in SPLIT_SETTINGS.items() if not s.reported_by_paper] == [
        "voc-aug-1-100",
        "voc-aug-1-50",
        "voc-aug-1-20",
    ]
    assert [name for name, s in SPLIT_SETTINGS.items() if s.official_train_list] == ["voc-aug-1464"]
    assert split_setting("VOC-Aug-1/8") is SPLIT_SETTINGS["voc-aug-1-8"]
    with pytest.raises(ConfigError, match="unknown split setting 'voc-aug-1-3'.*voc-aug-1-8"):
        split_setting("voc-aug-1-3")


def test_random_split_is_seeded_disjoint_covering_and_order_free(tmp_path):
    ids = ids_of(10_582)
    split = random_split(ids, labeled_count(len(ids), fraction="1/8"), seed=3)
    assert (len(split.labeled), len(split.unlabeled)) == (1323, 9259)
    assert not set(split.labeled) & set(split.unlabeled) and set(split.labeled) | set(split.unlabeled) == set(ids)
    assert split.labeled == sorted(split.labeled) and split.unlabeled == sorted(split.unlabeled)
    shuffled = ids.copy()
    random.Random(0).shuffle(shuffled)
    assert random_split(shuffled, 1323, seed=3) == split
    assert random_split(ids, 1323, seed=4) != split
    # the same seed gives identical files
    a = write_split(tmp_path / "a", split)
    b = write_split(tmp_path / "b", random_split(shuffled, 1323, seed=3))
    assert [p.name for p in a] == ["labeled.txt", "unlabeled.txt"]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    with pytest.raises(DatasetError, match="twice"):
        random_split([*ids[:5], ids[0]], 2, seed=0)


def test_written_and_published_lists_read_back(tmp_path):
    ids = ids_of(40)
    split = random_split(ids, 10, seed=0)
    labeled_path, unlabeled_path = write_split(tmp_path / "run", split)
    assert read_id_list(labeled_path) == split.labeled
    assert split_from_lists(ids, labeled_path, unlabeled_path) == split
    assert split_from_lists(ids, labeled_path) == split  # unlabeled = the complement
    published = tmp_path / "1464_train_supervised.txt"  # DeepLab/CPS style, with blank lines and spaces
    published.write_text(
        f"/JPEGImages/{ids[3]}.jpg /SegmentationClassAug/{ids[3]}.png\n\n  {ids[7]}  \r\n"
        f"leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png gtFine/train/aachen/x.png\n"
    )
    assert read_id_list(published) == [ids[3], ids[7], "aachen_000000_000019"]


def test_split_lists_are_checked(tmp_path):
    ids = ids_of(20)
    labeled, unlabeled = tmp_path / "labeled.txt", tmp_path / "unlabeled.txt"
    labeled.write_text(f"{ids[0]}\n2012_999999\n")
    with pytest.raises(DatasetError, match=r"1 id\(s\) are not in the train set \(2012_999999\)"):
        split_from_lists(ids, labeled)
    labeled.write_text(f"{ids[0]}\n{ids[1]}\n")
    unlabeled.write_text("".join(f"{key}\n" for key in ids[1:]))
    with pytest.raises(DatasetError, match=r"1 id\(s\) are both labeled and unlabeled \(2008_000001\)"):
        split_from_lists(ids, labeled, unlabeled)
    unlabeled.write_text("".join(f"{key}\n" for key in ids[2:-1]))
    with pytest.raises(
        DatasetError, match=r"2 labeled, 17 unlabeled, a train set of 20.*1 train id\(s\) are in neither"
    ):
        split_from_lists(ids, labeled, unlabeled)
    labeled.write_text(f"{ids[0]}\n{ids[0]}\n{ids[1]}\n")
    with pytest.raises(DatasetError, match="appear twice in the labeled list"):
        split_from_lists(ids, labeled)
    with pytest.raises(DatasetError, match="labeled list is empty"):
        SegSplit([], ids).check(ids)
    with pytest.raises(DatasetError) as error:
        read_id_list(tmp_path / "nowhere.txt")
    assert str(tmp_path / "nowhere.txt") in str(error.value) and "\n" not in str(error.value)


def test_resolve_split_from_each_source(tmp_path):
    ids = ids_of(64)
    dataset = train_set(ids)
    by_setting = resolve_split(dataset, setting="voc-aug-1-8", seed=5)
    assert by_setting == random_split(ids, 8, 5) and len(by_setting.unlabeled) == 56
    assert resolve_split(dataset, fraction="1/8", seed=5) == by_setting
    assert resolve_split(dataset, n_labeled=8, seed=5) == by_setting
    assert resolve_split(dataset, setting="voc-aug-1-4", seed=5) != by_setting
    labeled, _ = write_split(tmp_path, by_setting)
    assert resolve_split(dataset, labeled_list=labeled) == by_setting
    official = ids[10:20]
    split = resolve_split(dataset, setting="voc-aug-1464", official_train_ids=official)
    assert split.labeled == official and split.unlabeled == ids[:10] + ids[20:]
    (tmp_path / "train.txt").write_text("".join(f"{key}\n" for key in official))
    assert resolve_split(dataset, setting="voc-aug-1464", official_train_ids=tmp_path / "train.txt") == split


def test_resolve_split_refuses_impossible_requests(tmp_path):
    dataset = train_set(ids_of(64))
    with pytest.raises(ConfigError, match="exactly one way.*got setting, n_labeled/fraction"):
        resolve_split(dataset, setting="voc-aug-1-8", fraction="1/8")
    with pytest.raises(ConfigError, match="got none"):
        resolve_split(dataset)
    with pytest.raises(ConfigError, match="needs a labeled list"):
        resolve_split(dataset, n_labeled=4, unlabeled_list=tmp_path / "u.txt")
    with pytest.raises(ConfigError, match="is for cityscapes, not voc-aug"):
        resolve_split(dataset, setting="cityscapes-1-8")
    with pytest.raises(ConfigError, match="official_train_ids"):
        resolve_split(dataset, setting="voc-aug-1464")
    with pytest.raises(DatasetError, match="not in the train set"):
        resolve_split(dataset, setting="voc-aug-1464", official_train_ids=["2012_000001"])
    with pytest.raises(ConfigError, match="divides the train set"):
        resolve_split(train_set(ids_of(64), split="val"), n_labeled=4)
    with pytest.raises(ConfigError, match="at least 1"):
        resolve_split(train_set(ids_of(4)), setting="voc-aug-500")


def test_resolve_split_on_a_miniature_voc_aug(tmp_path):
    train, val = ["2007_000032", "2007_000039", "2007_000063"], ["2007_000033"]
    sbd_only = ["2008_000002", "2008_000003", "2008_000008", "2008_000009", "2008_000010"]
    seg_testing.write_voc(tmp_path, train, val, image_ids=sbd_only)
    seg_testing.write_sbd(tmp_path, sbd_only[:3], sbd_only[3:])
    dataset = build_seg_dataset("voc-aug", "train", tmp_path)
    official = resolve_split(dataset, setting="voc-aug-1464")  # VOC's train.txt found through the dataset's files
    assert official == SegSplit(train, sbd_only)
    assert (
        resolve_split(dataset, setting="voc-aug-1464", official_train_ids=voc.official_train_ids(tmp_path)) == official
    )
    with pytest.raises(ConfigError, match="official_train_ids"):  # a subset's loader no longer knows the files
        resolve_split(dataset.subset(range(len(dataset))), setting="voc-aug-1464")
    drawn = resolve_split(dataset, setting="voc-aug-1-2", seed=0)
    assert len(drawn.labeled) == 4 and len(drawn.unlabeled) == 4
    labeled = dataset.subset(dataset.index_of(drawn.labeled))
    assert labeled.ids == drawn.labeled and labeled[0][1].dtype == torch.uint8


def test_splits_import_no_loader():
    """The loaders import mixlab.seg.splits (read_id_list): it must not import them back (an import cycle)."""
    code = "import sys, mixlab.seg.splits; assert not [m for m in sys.modules if m.startswith('mixlab.seg.data')]"
    subprocess.run([sys.executable, "-c", code], check=True)
