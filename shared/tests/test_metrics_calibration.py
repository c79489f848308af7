"""Temperature scaling and the cross-halves protocol (spec §10 invariant 26)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mixlab.metrics import (
    OFFICIAL_TS_LRS,
    cross_halves_calibrated,
    ece,
    fit_temperature,
    split_halves,
    topk_accuracy,
)

FAST = {"lrs": (0.5,), "max_iter": 200}  # converges on these toy problems; the official grid is tested apart


def _problem(n: int = 400, K: int = 10, scale: float = 3.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(K, (n,), generator=g)
    logits = torch.randn(n, K, generator=g)
    logits[torch.arange(n), targets] += 1.5
    return logits * scale, targets


def _nll(z: torch.Tensor, t: torch.Tensor, temperature: float = 1.0) -> float:
    return F.cross_entropy(z.double() / temperature, t).item()


def test_official_grid_never_increases_the_calibration_nll():
    for scale in (0.3, 4.0):  # under-confident, over-confident
        z, t = _problem(n=200, scale=scale)
        temperature = fit_temperature(z, t, lrs=OFFICIAL_TS_LRS, max_iter=40)
        assert _nll(z, t, temperature) < _nll(z, t)
        assert (temperature > 1.0) == (scale > 1.0)  # moves the right way even with a small budget


def test_fitted_temperature_is_the_nll_minimiser_and_scales_with_the_logits():
    z, t = _problem(scale=3.0)
    t0 = fit_temperature(z, t, **FAST)
    best = _nll(z, t, t0)
    assert best <= _nll(z, t, t0 * 1.01) and best <= _nll(z, t, t0 * 0.99)
    for c in (0.5, 2.0, 7.0):
        assert fit_temperature(c * z, t, **FAST) == pytest.approx(c * t0, rel=1e-3)


def test_temperature_stays_one_when_nothing_improves():
    z = torch.zeros(50, 4)  # NLL = log 4 for every T
    t = torch.randint(4, (50,), generator=torch.Generator().manual_seed(1))
    assert fit_temperature(z, t, max_iter=20) == 1.0


def test_split_halves_is_a_fixed_partition():
    a, b = split_halves(11)
    assert a.numel() == 5 and b.numel() == 6
    assert torch.equal(torch.sort(torch.cat([a, b])).values, torch.arange(11))
    a2, b2 = split_halves(11)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(split_halves(11, seed=32)[0], a)


def test_cross_halves_averages_the_two_half_set_metrics():
    z, t = _problem(n=300, scale=4.0, seed=2)
    out = cross_halves_calibrated(z, t, **FAST)
    a, b = split_halves(300, 31)
    temp_a = fit_temperature(z[a], t[a], **FAST)
    temp_b = fit_temperature(z[b], t[b], **FAST)
    assert out["temperature_a"] == pytest.approx(temp_a) and out["temperature_b"] == pytest.approx(temp_b)
    expected_nll = (_nll(z[b], t[b], temp_a) + _nll(z[a], t[a], temp_b)) / 2
    zd = z.double()
    expected_ece = (ece(zd[b] / temp_a, t[b]) + ece(zd[a] / temp_b, t[a])) / 2
    assert out["nll_c"] == pytest.approx(expected_nll, rel=1e-9)
    assert out["ece_c"] == pytest.approx(expected_ece, rel=1e-9)
    # TS keeps the argmax and the halves are equal, so top1_c is the full-set accuracy.
    assert out["top1_c"] == pytest.approx(topk_accuracy(z, t, ks=(1,))["top1"])
    assert out["nll_c"] < _nll(z, t)  # over-confident logits: calibration helps on held-out halves
