"""The one Beta/Dirichlet sampler (mixlab.rng.dirichlet): exact for a tiny alpha, unchanged streams above."""

import pytest
import torch
from mixlab import rng as _rng
from mixlab.data import _random
from mixlab.mixing import sample_lambda, sample_ratios
from mixlab.ssl import biased_mixup


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _near_an_end(draws):
    return ((draws < 1e-3) | (draws > 1 - 1e-3)).double().mean().item()


def test_torch_gamma_alone_is_wrong_for_a_tiny_alpha():
    """The flaw being fixed: both clamped Gamma draws make the ratio exactly 0.5."""
    gammas = torch._standard_gamma(torch.full((10_000, 2), 1e-4, dtype=torch.float64), generator=_gen(0))
    assert ((gammas[:, 0] / gammas.sum(-1)) == 0.5).double().mean() > 0.5


@pytest.mark.parametrize("sampler", ["sample_lambda", "sample_ratios", "augmix_beta", "augmix_dirichlet"])
def test_tiny_alpha_beta_draws_sit_at_the_ends(sampler):
    n, alpha = 10_000, 1e-4
    if sampler == "sample_lambda":
        draws = sample_lambda(n, alpha, generator=_gen(1))
    elif sampler == "sample_ratios":
        kappa = sample_ratios(n, 2, alpha, generator=_gen(2))
        assert torch.equal(kappa.sum(1), torch.ones(n))
        draws = kappa[:, 0]
    elif sampler == "augmix_beta":
        draws = _random.beta(alpha, alpha, (n,), _gen(3), torch.device("cpu"))
    else:
        draws = _random.dirichlet(torch.full((n, 2), alpha), _gen(4))[:, 0]
    assert draws.dtype == torch.float32 and draws.shape == (n,)
    assert _near_an_end(draws) > 0.95
    assert abs(draws.double().mean().item() - 0.5) < 0.03  # symmetric: half the mass at each end (sd 0.005)


def test_tiny_alpha_dirichlet_rows_sit_at_a_vertex():
    kappa = sample_ratios(10_000, 4, 1e-4, generator=_gen(5))
    assert torch.allclose(kappa.sum(1), torch.ones(10_000), atol=1e-6)
    assert (kappa.max(1).values > 1 - 1e-3).double().mean() > 0.95
    assert (kappa.argmax(1).bincount(minlength=4).double() / 10_000 - 0.25).abs().max() < 0.03
    rows = _random.dirichlet(torch.full((10_000, 3), 1e-4), _gen(6))
    assert (rows.max(1).values > 1 - 1e-3).double().mean() > 0.95


def test_log_space_draws_follow_the_beta_law_below_the_threshold():
    """Just below the threshold the log-space draws follow Beta(alpha, alpha): compare with scipy."""
    stats = pytest.importorskip("scipy.stats")
    alpha = _rng.LOG_SPACE_BELOW / 2
    draws = _rng.symmetric_dirichlet(alpha, (20_000, 2), None, _gen(7))[:, 0]
    # Near 1 a float64 rounds ~8% of them to exactly 1.0; the lower half is resolved, with CDF 2 F(t) on [0, 0.5].
    lower = draws[draws <= 0.5].numpy()
    assert abs(len(lower) / 20_000 - 0.5) < 0.02
    assert stats.kstest(lower, lambda t: 2 * stats.beta.cdf(t, alpha, alpha)).pvalue > 1e-3
    assert stats.kstest(lower, lambda t: 2 * stats.beta.cdf(t, 2 * alpha, 2 * alpha)).pvalue < 1e-6


@pytest.mark.parametrize("alpha", [1.0, 2.0, _rng.LOG_SPACE_BELOW])
def test_the_stream_is_the_plain_torch_gamma_one_at_and_above_the_threshold(alpha):
    """For alpha >= LOG_SPACE_BELOW every sampler gives bit for bit what G0 / (G0 + G1) of torch's Gamma gave."""

    def plain(shape, generator):
        gammas = torch._standard_gamma(torch.full(shape, alpha, dtype=torch.float64), generator=generator)
        return gammas / gammas.sum(-1, keepdim=True)

    assert torch.equal(sample_ratios(256, 2, alpha, generator=_gen(8))[:, 0], plain((256, 2), _gen(8))[:, 0].float())
    assert torch.equal(sample_ratios(64, 3, alpha, generator=_gen(9)), plain((64, 3), _gen(9)).float())
    assert torch.equal(sample_lambda(256, alpha, generator=_gen(10)), plain((256, 2), _gen(10))[:, 0].float())
    torch.manual_seed(11)  # the global RNG path, as an unseeded training step uses it
    unseeded = sample_ratios(32, 2, alpha)
    torch.manual_seed(11)
    assert torch.equal(unseeded[:, 0], plain((32, 2), None)[:, 0].float())
    # AugMix's Beta: the CPU global RNG seeded from the generator.
    with _random.seeded_global_rng(_gen(12)):
        reference = plain((100, 2), None)[:, 0].float()
    assert torch.equal(_random.beta(alpha, alpha, (100,), _gen(12), torch.device("cpu")), reference)


@pytest.mark.parametrize("alpha", [1e-4, 0.75])
def test_mixmatch_mixup_keeps_its_log_space_stream(alpha):
    """biased_mixup always drew in log space; routing it through the shared sampler changes none of its draws."""
    generator = _gen(13)
    boosted = torch._standard_gamma(torch.full((64, 2), alpha + 1.0, dtype=torch.float64), generator=generator)
    uniform = torch.rand((64, 2), generator=generator, dtype=torch.float64)
    log_gamma = boosted.log() + uniform.clamp_min(torch.finfo(torch.float64).tiny).log() / alpha
    lam = torch.sigmoid(log_gamma[:, 0] - log_gamma[:, 1])
    expected = torch.maximum(lam, 1.0 - lam).float()
    out = biased_mixup(torch.zeros(64, 1), torch.zeros(64, 2), alpha, generator=_gen(13))
    assert torch.equal(out.lam, expected)


def test_unresolvable_rows_fall_back_to_the_centre():
    rows = _rng.dirichlet(torch.full((5, 3), 1e-310, dtype=torch.float64), _gen(14))
    assert torch.isfinite(rows).all() and torch.allclose(rows.sum(-1), torch.ones(5, dtype=torch.float64))
