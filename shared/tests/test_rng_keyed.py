"""mixlab.rng.keyed_uniform: a counter-based generator whose draws are a pure function of (seed, keys, slot)."""

import pytest
import torch
from mixlab.rng import keyed_uniform

_M = (1 << 64) - 1


def _splitmix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


def _reference(seed: int, keys: tuple[int, ...], slot: int) -> float:
    state = _splitmix(seed & _M)
    for key in keys:
        state = _splitmix(state ^ (key & _M))
    return (_splitmix(state ^ slot) >> 11) * 2.0**-53


def test_keyed_uniform_equals_the_uint64_splitmix_reference():
    images, copies = torch.tensor([0, 5, 123_456, 999_999]), torch.tensor([0, 3, 49, 7])
    u = keyed_uniform(-3, images, copies, count=5, offset=2)
    assert u.dtype == torch.float64 and u.shape == (4, 5)
    for row, (i, j) in enumerate(zip(images.tolist(), copies.tolist())):
        assert u[row].tolist() == [_reference(-3, (i, j), slot) for slot in range(2, 7)]


def test_keyed_uniform_is_independent_of_the_batch_and_spread_uniformly():
    images = torch.arange(50_000)
    u = keyed_uniform(1, images, torch.zeros(1, dtype=torch.long), count=4)
    assert torch.equal(u[[7, 3]], keyed_uniform(1, images[[7, 3]], torch.zeros(1, dtype=torch.long), count=4))
    assert torch.equal(u[:, 2:], keyed_uniform(1, images, torch.zeros(1, dtype=torch.long), count=2, offset=2))
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.std()) - 12**-0.5) < 0.005
    counts = torch.histc(u.flatten().float(), bins=10, min=0, max=1)
    assert (counts / u.numel() - 0.1).abs().max() < 0.005
    assert abs(float(torch.corrcoef(torch.stack([u[:, 0], u[:, 1]]))[0, 1])) < 0.02  # slots are not correlated
    other = keyed_uniform(2, images, torch.zeros(1, dtype=torch.long), count=4)
    assert (u != other).float().mean() > 0.999  # another seed: other draws


def test_keyed_uniform_rejects_negative_counts():
    with pytest.raises(ValueError):
        keyed_uniform(0, torch.tensor([1]), count=-1)
