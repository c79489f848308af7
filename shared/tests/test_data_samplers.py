"""Batch repetition sampler (spec mixmo-mixshare §3.8 / invariant 22), resume, sharding, and the tensor loader."""

from collections import Counter

import pytest
import torch
from mixlab.data import (
    BatchRepetitionSampler,
    ImageDataset,
    SequentialBatchSampler,
    TensorBatchLoader,
    eval_loader,
)
from mixlab.errors import ConfigError


@pytest.mark.parametrize("n,bs,b", [(103, 12, 3), (64, 16, 4), (50, 10, 1), (37, 8, 2)])
def test_each_batch_has_bs_over_b_indices_each_b_times_in_a_row(n, bs, b):
    sampler = BatchRepetitionSampler(n, bs, repetitions=b, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (n * b) // bs
    for batch in batches:
        assert len(batch) == bs
        counts = Counter(batch)
        assert len(counts) == bs // b and set(counts.values()) == {b}
        assert all(batch[k * b : (k + 1) * b] == [batch[k * b]] * b for k in range(bs // b))  # b in a row
    seen = Counter(i for batch in batches for i in batch)
    assert set(seen.values()) == {b}  # every used index appears exactly b times in the epoch...
    assert len(seen) == (n * b // bs) * bs // b  # ...and only the drop_last tail is missing
    assert all(0 <= i < n for i in seen)


def test_b1_is_a_plain_shuffled_batch_sampler():
    batches = list(BatchRepetitionSampler(40, 8, repetitions=1, seed=3))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(40)) and flat != list(range(40))


def test_drop_last_false_keeps_the_tail():
    sampler = BatchRepetitionSampler(10, 4, repetitions=2, drop_last=False)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5 and [len(b) for b in batches] == [4, 4, 4, 4, 4]
    assert Counter(i for b in batches for i in b) == Counter({i: 2 for i in range(10)})


def test_epochs_are_deterministic_and_different():
    s1, s2 = BatchRepetitionSampler(100, 10, 2, seed=5), BatchRepetitionSampler(100, 10, 2, seed=5)
    s1.set_epoch(3)
    s2.set_epoch(3)
    assert list(s1) == list(s2)
    s2.set_epoch(4)
    assert list(s1) != list(s2)
    assert list(BatchRepetitionSampler(100, 10, 2, seed=6)) != list(BatchRepetitionSampler(100, 10, 2, seed=5))
    assert list(s1) == list(s1)  # iterating twice in the same epoch gives the same batches


def test_resume_skips_exactly_the_consumed_batches():
    full_sampler = BatchRepetitionSampler(90, 12, repetitions=3, seed=1)
    full_sampler.set_epoch(2)
    full = list(full_sampler)
    interrupted = BatchRepetitionSampler(90, 12, repetitions=3, seed=1)
    interrupted.set_epoch(2)
    iterator = iter(interrupted)
    consumed = [next(iterator) for _ in range(7)]
    state = interrupted.state_dict()
    assert state["epoch"] == 2 and state["batches_done"] == 7
    resumed = BatchRepetitionSampler(90, 12, repetitions=3, seed=1)
    resumed.load_state_dict(state)
    assert len(resumed) == len(full) - 7
    rest = list(resumed)
    assert consumed + rest == full
    assert len(resumed) == len(full)  # the skip applied to one iteration only
    # the argument form does the same
    assert (
        list(BatchRepetitionSampler(90, 12, 3, seed=1, start_batch=4))
        == list(BatchRepetitionSampler(90, 12, 3, seed=1))[4:]
    )


def test_resume_after_a_complete_epoch_moves_to_the_next():
    sampler = BatchRepetitionSampler(30, 6, 2, seed=0)
    list(sampler)
    resumed = BatchRepetitionSampler(30, 6, 2, seed=0)
    resumed.load_state_dict(sampler.state_dict())
    fresh = BatchRepetitionSampler(30, 6, 2, seed=0)
    fresh.set_epoch(1)
    assert resumed.epoch == 1 and list(resumed) == list(fresh)
    with pytest.raises(ConfigError):
        BatchRepetitionSampler(30, 6, 3, seed=0).load_state_dict(sampler.state_dict())


def test_ranks_take_disjoint_shards_with_equal_batch_counts():
    world = 3
    samplers = [BatchRepetitionSampler(101, 8, repetitions=2, seed=4, rank=r, world_size=world) for r in range(world)]
    for s in samplers:
        s.set_epoch(1)
    sets = [set(i for batch in s for i in batch) for s in samplers]
    assert len({len(s) for s in samplers}) == 1 and len(samplers[0]) == (101 // 3) * 2 // 8
    for a in range(world):
        for b in range(a + 1, world):
            assert not sets[a] & sets[b]
    # the shards are cut from the same epoch permutation
    whole = set(torch.randperm(101, generator=torch.Generator().manual_seed(5))[: 33 * 3].tolist())
    assert set().union(*sets) <= whole


def test_invalid_sampler_options():
    with pytest.raises(ConfigError, match="not divisible"):
        BatchRepetitionSampler(100, 10, repetitions=4)
    with pytest.raises(ConfigError):
        BatchRepetitionSampler(100, 8, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="cannot fill"):
        BatchRepetitionSampler(3, 8, repetitions=2)


def test_sequential_batch_sampler():
    s = SequentialBatchSampler(10, 4)
    assert list(s) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(s) == 3
    shards = [list(SequentialBatchSampler(10, 3, rank=r, world_size=3)) for r in range(3)]
    flat = sorted(i for shard in shards for batch in shard for i in batch)
    assert flat == list(range(10))


def tiny_dataset(n=20):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ImageDataset(images, torch.arange(n) % 5, 5, (0.5,) * 3, (0.5,) * 3, "tiny", "train")


def test_tensor_batch_loader_yields_the_indexed_rows():
    data = tiny_dataset()
    sampler = BatchRepetitionSampler(20, 6, repetitions=2, seed=0)
    loader = TensorBatchLoader(data, sampler, device="cpu")
    batches = list(loader)
    assert len(batches) == len(loader) == len(sampler)
    for (x, y), index in zip(batches, list(sampler), strict=True):
        assert x.dtype == torch.uint8 and x.shape == (6, 3, 4, 4) and y.dtype == torch.int64
        assert x[:, 0, 0, 0].tolist() == index and y.tolist() == [i % 5 for i in index]


def test_eval_loader_covers_the_dataset_in_order():
    data = tiny_dataset(11)
    xs, ys = zip(*eval_loader(data, batch_size=4), strict=True)
    assert [len(y) for y in ys] == [4, 4, 3]
    assert torch.equal(torch.cat(xs), data.images) and torch.equal(torch.cat(ys), data.targets)
