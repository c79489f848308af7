"""DeiT's repeated augmentation (timm RepeatAugSampler semantics) and the per-item seeds of file-backed streams."""

from collections import Counter

import pytest
import torch
from mixlab.data import BatchRepetitionSampler, RepeatAugSampler, SeededBatchSampler
from mixlab.errors import ConfigError


def union_counts(n: int, bs: int, b: int, world: int, epoch: int = 0, seed: int = 0) -> tuple[Counter, list]:
    """How often each index appears in one epoch over all ranks, and each rank's sampler."""
    samplers = [RepeatAugSampler(n, bs, repetitions=b, seed=seed, rank=r, world_size=world) for r in range(world)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return Counter(i for sampler in samplers for batch in sampler for i in batch), samplers


@pytest.mark.parametrize(("n", "world"), [(1000, 1), (1000, 2), (1000, 4), (300, 3), (100, 1), (100, 2)])
@pytest.mark.parametrize("epoch", [0, 3])
def test_streams_equal_timms_repeat_aug_sampler(n, world, epoch):
    timm = pytest.importorskip("timm.data.distributed_sampler")
    for rank in range(world):
        reference = timm.RepeatAugSampler(range(n), num_replicas=world, rank=rank, num_repeats=3)
        reference.set_epoch(epoch)  # timm seeds the permutation with the epoch alone: our seed + epoch at seed 0
        ours = RepeatAugSampler(n, 8, repetitions=3, seed=0, rank=rank, world_size=world)
        assert ours.epoch_indices(epoch).tolist() == list(reference) and ours.stream_length == len(reference)


@pytest.mark.parametrize(("n", "world", "b"), [(1000, 1, 3), (1000, 4, 3), (1000, 2, 2), (777, 3, 4)])
def test_each_index_about_b_times_over_the_ranks_with_constant_epoch_length(n, world, b):
    bs = 10
    counts, samplers = union_counts(n, bs, b, world)
    used = world * samplers[0].num_batches * bs
    assert sum(counts.values()) == used
    assert sum(1 for c in counts.values() if c != b) <= 1  # only the group cut by the end of the epoch
    assert len(counts) == -(-used // b)
    # samples per epoch stay N (rounded down to 256, split over ranks) whatever b is, unlike batch repetition
    expected = n // 256 * 256 // world
    assert all(s.stream_length == expected and len(s) == expected // bs for s in samplers)
    assert {RepeatAugSampler(n, bs, repetitions=k, world_size=world).num_batches for k in (1, 2, 3, 5)} == {
        expected // bs
    }
    assert BatchRepetitionSampler(n, 12, repetitions=3).num_batches == n * 3 // 12  # x b steps there


def test_copies_of_an_image_go_to_different_ranks():
    world, b = 4, 3
    samplers = [RepeatAugSampler(1000, 16, repetitions=b, seed=2, rank=r, world_size=world) for r in range(world)]
    owners: dict[int, list[int]] = {}
    for rank, sampler in enumerate(samplers):
        for i in sampler.epoch_indices().tolist():
            owners.setdefault(i, []).append(rank)
    complete = [ranks for ranks in owners.values() if len(ranks) == b]
    assert len(complete) >= len(owners) - 1 and all(len(set(ranks)) == b for ranks in complete)


def test_one_rank_keeps_the_copies_next_to_each_other():
    stream = RepeatAugSampler(600, 30, repetitions=3, seed=1).epoch_indices().tolist()
    assert len(stream) == 512 and all(stream[k] == stream[k + 1] == stream[k + 2] for k in range(0, 510, 3))


def test_deterministic_given_seed_and_epoch():
    a, b = RepeatAugSampler(500, 20, seed=7), RepeatAugSampler(500, 20, seed=7)
    a.set_epoch(5)
    b.set_epoch(5)
    assert list(a) == list(b) == list(a)
    b.set_epoch(6)
    assert list(a) != list(b)
    assert list(RepeatAugSampler(500, 20, seed=8)) != list(RepeatAugSampler(500, 20, seed=7))


def test_resume_skips_exactly_the_consumed_batches():
    full_sampler = RepeatAugSampler(700, 16, repetitions=3, seed=3)
    full_sampler.set_epoch(1)
    full = list(full_sampler)
    interrupted = RepeatAugSampler(700, 16, repetitions=3, seed=3)
    interrupted.set_epoch(1)
    iterator = iter(interrupted)
    consumed = [next(iterator) for _ in range(9)]
    state = interrupted.state_dict()
    assert (state["kind"], state["epoch"], state["batches_done"]) == ("RepeatAugSampler", 1, 9)
    resumed = RepeatAugSampler(700, 16, repetitions=3, seed=3)
    resumed.load_state_dict(state)
    assert consumed + list(resumed) == full
    with pytest.raises(ConfigError, match="is a RepeatAugSampler"):
        BatchRepetitionSampler(700, 15, repetitions=3, seed=3).load_state_dict(state)


def test_options_and_small_datasets():
    assert RepeatAugSampler(100, 7, repetitions=3).stream_length == 100  # N < 256: ceil(N / W), timm's fallback
    assert RepeatAugSampler(1000, 128, repetitions=3).num_batches == 768 // 128  # batch need not be a multiple of b
    with pytest.raises(ConfigError, match="cannot fill"):
        RepeatAugSampler(10, 16)
    with pytest.raises(ConfigError):
        RepeatAugSampler(100, 8, rank=2, world_size=2)


def pair_rows(index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.stack([index, index[torch.randperm(len(index), generator=generator)]], dim=1).reshape(-1)


def test_seeded_batches_are_a_function_of_seed_rank_epoch_and_batch():
    def keys(epoch: int, start: int = 0, rank: int = 0, seed: int = 0):
        sampler = RepeatAugSampler(600, 12, seed=seed, rank=rank, world_size=2)
        sampler.set_epoch(epoch, start)
        return list(SeededBatchSampler(sampler, seed, arrange=pair_rows))

    full = keys(2)
    assert len(full) == 256 // 12 and all(len(batch) == 24 for batch in full)  # arrange doubled every batch
    sampler = RepeatAugSampler(600, 12, seed=0, rank=0, world_size=2)
    sampler.set_epoch(2)
    assert [k for k, _ in full[0][::2]] == next(iter(sampler))  # rows keep the sampler's order on input 0
    assert keys(2) == full and keys(2, start=7) == full[7:]  # resume
    seeds = [s for batch in full for _, s in batch]
    assert len(set(seeds)) == len(seeds)  # every copy draws its own augmentation
    for other in (keys(3), keys(2, rank=1), keys(2, seed=1)):
        assert [s for _, s in other[0]] != [s for _, s in full[0]]
