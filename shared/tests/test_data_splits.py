"""SSL splits: balance, determinism, disjointness, impossible counts, and the RealMix class-mismatch protocol."""

import json

import pytest
import torch
from mixlab.data import SplitIndices, mismatch_unlabeled_classes, ssl_split
from mixlab.errors import ConfigError, DatasetError


def balanced_targets(per_class=50, classes=10, seed=0):
    targets = torch.arange(classes).repeat_interleave(per_class)
    return targets[torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))]


def test_labeled_set_is_class_balanced_and_disjoint():
    targets = balanced_targets()
    split = ssl_split(targets, num_labeled=40, num_classes=10, seed=1, num_validation=30)
    assert torch.bincount(targets[split.labeled], minlength=10).tolist() == [4] * 10
    assert torch.bincount(targets[split.validation], minlength=10).tolist() == [3] * 10
    parts = [set(split.labeled.tolist()), set(split.unlabeled.tolist()), set(split.validation.tolist())]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert parts[0] | parts[1] | parts[2] == set(range(500))
    assert all(torch.equal(t, t.sort().values) for t in (split.labeled, split.unlabeled, split.validation))


def test_split_is_seed_deterministic():
    targets = balanced_targets()
    a, b = ssl_split(targets, 20, 10, seed=7), ssl_split(targets, 20, 10, seed=7)
    assert torch.equal(a.labeled, b.labeled) and torch.equal(a.unlabeled, b.unlabeled)
    assert not torch.equal(a.labeled, ssl_split(targets, 20, 10, seed=8).labeled)


def test_fixmatch_style_unlabeled_includes_labeled():
    targets = balanced_targets()
    split = ssl_split(targets, 20, 10, seed=0, num_validation=10, unlabeled_includes_labeled=True)
    assert set(split.labeled.tolist()) <= set(split.unlabeled.tolist())
    assert len(split.unlabeled) == 500 - 10


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_labeled=45), "evenly"),  # 45 labels over 10 classes
        (dict(num_labeled=510), "fewer than"),  # 51 per class, classes have 50
        (dict(num_labeled=500), "no unlabeled"),  # nothing left to be unlabeled
        (dict(num_labeled=40, num_validation=15), "evenly"),
        (dict(num_labeled=0), ">= 1"),
        (dict(num_labeled=40, labeled_classes=[0, 0, 1]), "distinct"),
    ],
)
def test_impossible_counts_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ssl_split(balanced_targets(), num_classes=10, seed=0, **kwargs)


def test_unlabeled_targets_cannot_be_split():
    with pytest.raises(DatasetError):
        ssl_split(torch.full((10,), -1), 10, 10, seed=0)


# RealMix §5.2: labeled classes = the 6 CIFAR-10 animals, unlabeled = 4 classes chosen by the mismatch level.
REALMIX_TABLE = {0.0: [4, 5, 6, 7], 0.25: [0, 5, 6, 7], 0.5: [0, 1, 6, 7], 0.75: [0, 1, 7, 8], 1.0: [0, 1, 8, 9]}
ANIMALS = [2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("mismatch", sorted(REALMIX_TABLE))
def test_mismatch_protocol_matches_the_realmix_table(mismatch):
    assert mismatch_unlabeled_classes(ANIMALS, 10, mismatch) == REALMIX_TABLE[mismatch]
    targets = balanced_targets(per_class=50)
    split = ssl_split(targets, num_labeled=24, num_classes=10, seed=0, labeled_classes=ANIMALS, mismatch=mismatch)
    assert torch.bincount(targets[split.labeled], minlength=10).tolist() == [0, 0, 4, 4, 4, 4, 4, 4, 0, 0]
    unlabeled_classes = targets[split.unlabeled]
    assert sorted(set(unlabeled_classes.tolist())) == REALMIX_TABLE[mismatch]
    # every unlabeled class gave up the same 4 "labeled" draws (the 4,000-label split, filtered): 4 x 46 images
    assert len(split.unlabeled) == 4 * 46
    outside = ~torch.isin(unlabeled_classes, torch.tensor(ANIMALS))
    assert float(outside.float().mean()) == mismatch
    assert split.params["unlabeled_classes"] == REALMIX_TABLE[mismatch]


def test_mismatch_protocol_at_cifar10_scale():
    targets = balanced_targets(per_class=5000)
    split = ssl_split(targets, num_labeled=2400, num_classes=10, seed=1, labeled_classes=ANIMALS, mismatch=0.5)
    assert len(split.labeled) == 2400 and len(split.unlabeled) == 18_400  # RealMix's 4 x (5000 - 400)


def test_mismatch_rejects_unreachable_levels():
    with pytest.raises(ConfigError, match="multiple of 1/4"):
        mismatch_unlabeled_classes(ANIMALS, 10, 0.3)
    with pytest.raises(ConfigError):
        ssl_split(balanced_targets(), 24, 10, seed=0, mismatch=0.5)  # needs labeled_classes
    with pytest.raises(ConfigError):
        ssl_split(balanced_targets(), 24, 10, seed=0, labeled_classes=ANIMALS, mismatch=0.5, unlabeled_classes=[0])


def test_explicit_class_subsets():
    targets = balanced_targets()
    split = ssl_split(targets, 6, 10, seed=0, labeled_classes=[1, 2], unlabeled_classes=[2, 3])
    assert sorted(set(targets[split.labeled].tolist())) == [1, 2]
    assert sorted(set(targets[split.unlabeled].tolist())) == [2, 3]
    assert len(split.unlabeled) == 2 * (50 - 3)


def test_proportional_balance_follows_class_frequencies():
    targets = torch.cat([torch.full((n,), c) for c, n in enumerate([300, 100, 100, 500])])
    split = ssl_split(targets, 40, 4, seed=0, balance="proportional")
    assert torch.bincount(targets[split.labeled], minlength=4).tolist() == [12, 4, 4, 20]
    with pytest.raises(ConfigError):
        ssl_split(targets, 40, 4, seed=0, balance="proportional", labeled_classes=[0, 1])


def test_json_round_trip(tmp_path):
    split = ssl_split(balanced_targets(), 20, 10, seed=3, num_validation=10)
    data = json.loads(json.dumps(split.to_json()))
    assert data["labeled"] == split.labeled.tolist() and data["seed"] == 3
    back = SplitIndices.from_json(data)
    assert torch.equal(back.labeled, split.labeled) and torch.equal(back.validation, split.validation)
    assert back.params == split.params
    split.save(tmp_path / "split.json")
    assert torch.equal(SplitIndices.load(tmp_path / "split.json").unlabeled, split.unlabeled)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DatasetError):
        SplitIndices.load(tmp_path / "bad.json")
