"""The built-in ``digit-scenes`` segmentation data and ``fashion-scenes`` (on miniature Fashion-MNIST idx files)."""

import pytest
import torch
from mixlab.data import mnist
from mixlab.errors import DatasetError
from mixlab.seg.data import IGNORE_INDEX, build_seg_dataset, seg_dataset_info
from mixlab.seg.data import digit_scenes as ds
from mixlab.testing import write_mnist


def assert_masks_match_objects(scenes, labels):
    """Every mask value is background, ignore, or the class (+1) of one of the canvas's objects."""
    for mask, objects in zip(scenes.masks, scenes.objects):
        present = objects[objects >= 0]
        allowed = {0, IGNORE_INDEX, *(labels[present] + 1).tolist()}
        assert set(mask.unique().tolist()) <= allowed
        assert 1 <= len(present) <= ds.MAX_OBJECTS


def test_digit_scenes_shapes_classes_and_registry():
    info = seg_dataset_info("digit-scenes")
    assert info.builtin and info.num_classes == 11 and info.splits == ("train", "val")
    train = build_seg_dataset("digit-scenes", "train")
    val = build_seg_dataset("Digit_Scenes", "val")
    assert len(train) == 2000 and len(val) == 500 and train.in_memory
    images, masks = train.tensors
    assert images.shape == (2000, 3, 64, 64) and masks.shape == (2000, 64, 64) and images.dtype == torch.uint8
    assert train.class_names == ("background", *(str(d) for d in range(10))) and train.num_classes == 11
    values = set(torch.cat([masks.unique(), val.tensors[1].unique()]).tolist())
    assert values == {*range(11), IGNORE_INDEX}
    assert len(set(train.ids)) == 2000 and train.mean == ds.DIGIT_SCENES_MEAN
    ignored = (masks == IGNORE_INDEX).float().mean()
    objects = ((masks > 0) & (masks < 11)).float().mean()
    assert 0.01 < ignored < objects and 0.05 < objects < 0.3
    _, classes, _, _ = ds.digit_sprites()
    assert_masks_match_objects(ds.digit_scenes("val"), classes)


def test_ignored_pixels_are_a_ring_around_the_objects():
    masks = build_seg_dataset("digit-scenes", "val").tensors[1].long()
    is_object = ((masks > 0) & (masks < 11)).float().unsqueeze(1)
    ignored = masks == IGNORE_INDEX
    within_one = torch.nn.functional.max_pool2d(is_object, 3, stride=1, padding=1)[:, 0] > 0
    within_two = torch.nn.functional.max_pool2d(is_object, 5, stride=1, padding=2)[:, 0] > 0
    assert within_one[ignored].float().mean() > 0.75 and within_two[ignored].float().mean() > 0.95


def test_backgrounds_are_textured_not_flat():
    images, masks = build_seg_dataset("digit-scenes", "val").tensors
    background = (masks == 0).unsqueeze(1).expand_as(images)
    spread = torch.stack([images[i][background[i]].float().std() for i in range(20)])
    assert spread.min() > 8


def test_deterministic_and_prefix_stable():
    first = ds.digit_scenes("val", 40, 300)
    ds._digit_scenes.cache_clear()
    again = ds.digit_scenes("val", 40, 300)
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    prefix = build_seg_dataset("digit-scenes", "val", val_count=260, size=40)
    assert torch.equal(prefix.tensors[0], first.images[:260]) and torch.equal(prefix.tensors[1], first.masks[:260])
    small = build_seg_dataset("digit-scenes", "train", count=100, size=32)
    assert small.tensors[0].shape == (100, 3, 32, 32)
    assert not torch.equal(small.tensors[1][:10], ds.digit_scenes("val", 32, 10).masks)


def test_val_digits_come_from_the_digits_test_split():
    _, _, train, test = ds.digit_sprites()
    val_objects = ds.digit_scenes("val").objects
    train_objects = ds.digit_scenes("train").objects
    used_val = set(val_objects[val_objects >= 0].tolist())
    used_train = set(train_objects[train_objects >= 0].tolist())
    assert used_val <= set(test.tolist()) and used_train <= set(train.tolist())
    assert not used_val & used_train and len(used_val) > 300


def test_statistics_match_the_hard_coded_ones():
    mean, std = ds.digit_scenes_statistics()
    assert mean == pytest.approx(ds.DIGIT_SCENES_MEAN, abs=1e-3)
    assert std == pytest.approx(ds.DIGIT_SCENES_STD, abs=1e-3)


@pytest.mark.parametrize("options", [{"count": 0}, {"val_count": -3}, {"size": 8}, {"size": 32.0}, {"colour": 1}])
def test_bad_options_are_dataset_errors(options):
    with pytest.raises(DatasetError):
        build_seg_dataset("digit-scenes", "val" if "val_count" in options else "train", **options)


def test_fashion_scenes_on_miniature_idx_files(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FALLBACKS", {})
    with pytest.raises(DatasetError, match="Fashion-MNIST"):
        build_seg_dataset("fashion-scenes", "train", tmp_path, count=4)
    write_mnist(tmp_path / "fashion-mnist", "train", 30, seed=0)
    _, test_labels = write_mnist(tmp_path / "fashion-mnist", "test", 12, seed=1)
    train = build_seg_dataset("fashion-scenes", "train", tmp_path, count=40, size=48)
    val = build_seg_dataset("fashion-scenes", "val", tmp_path, val_count=20, size=48)
    assert train.tensors[0].shape == (40, 3, 48, 48) and val.tensors[1].shape == (20, 48, 48)
    assert train.class_names == ("background", *mnist.FASHION_MNIST_CLASSES) and train.num_classes == 11
    assert set(train.tensors[1].unique().tolist()) <= {*range(11), IGNORE_INDEX}
    scenes = ds.fashion_scenes(tmp_path, "val", 48, 20)
    assert scenes.objects.max() < 12
    assert_masks_match_objects(scenes, torch.from_numpy(test_labels.astype("int64")))
    again = ds.compose_scenes(*ds.fashion_sprites(tmp_path, "val")[::2], 20, 48, (ds.FASHION_SCENES_SEED, 1))
    assert not torch.equal(again.images, scenes.images)  # the texture shades the colour
    assert torch.equal(again.objects, scenes.objects)
