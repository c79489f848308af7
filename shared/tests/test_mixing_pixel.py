"""In-pixel MixUp / CutMix and spec §10 invariant 21 (the lambda* correction and the dominance swap)."""

from __future__ import annotations

import pytest
import torch
from mixlab.errors import ConfigError
from mixlab.mixing import (
    corrected_lambda,
    cutmix_box_mask,
    mix_soft_targets,
    pixel_cutmix,
    pixel_mixup,
    soft_targets,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _two_constant_batches(B: int, H: int = 16, W: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """x = 1 everywhere, partner = -1 everywhere, so every pixel tells where it came from."""
    return torch.ones(B, 3, H, W), -torch.ones(B, 3, H, W)


def test_mixup_interpolates_half_of_the_samples():
    x, partner = _two_constant_batches(2000)
    mixed, lam = pixel_mixup(x, partner, alpha=1.0, prob=0.5, generator=_gen(0))
    untouched = lam == 1
    assert abs(untouched.float().mean().item() - 0.5) < 0.05
    assert torch.equal(mixed[untouched], x[untouched])
    expected = (2 * lam - 1)[:, None, None, None].expand_as(mixed)  # lam * 1 + (1 - lam) * (-1)
    assert torch.allclose(mixed, expected, atol=1e-6)
    assert abs(lam[~untouched].mean().item() - 0.5) < 0.03  # Beta(1, 1)
    with pytest.raises(ConfigError):
        pixel_mixup(x.to(torch.uint8), partner.to(torch.uint8))


def test_cutmix_pastes_a_box_and_returns_the_kept_share():
    x, partner = _two_constant_batches(1000)
    mixed, lam = pixel_cutmix(x, partner, alpha=1.0, prob=0.5, generator=_gen(1))
    kept = (mixed[:, 0] == 1).float().mean(dim=(1, 2))
    assert torch.equal(kept, lam)  # lambda is the realised share of x (after clipping)
    untouched = lam == 1
    assert abs(untouched.float().mean().item() - 0.5) < 0.06
    for m in mixed[~untouched][:50, 0]:
        rows, cols = (m == 1).any(1), (m == 1).any(0)
        assert torch.equal(m == 1, rows[:, None] & cols[None, :])  # x is kept on one rectangle
    assert torch.equal(mixed[:, 0], mixed[:, 2])  # one mask for every channel


def test_partner_indices_equal_partner_images_and_uint8_cutmix_works():
    g = _gen(2)
    x = torch.randint(0, 256, (8, 3, 8, 8), generator=g, dtype=torch.uint8)
    perm = torch.randperm(8, generator=g)
    by_index, lam_i = pixel_cutmix(x, perm, prob=1.0, generator=_gen(3))
    by_image, lam_m = pixel_cutmix(x, x[perm], prob=1.0, generator=_gen(3))
    assert by_index.dtype == torch.uint8 and torch.equal(by_index, by_image) and torch.equal(lam_i, lam_m)
    with pytest.raises(ConfigError):
        pixel_cutmix(x, perm[:4])


def test_corrected_lambda_with_constant_box_and_strided_mixing_masks():
    g = _gen(4)
    pixel, lam = cutmix_box_mask(torch.rand(64, generator=g), 32, 32, generator=g)
    constant = torch.rand(64, 1, 1, 1, generator=g)
    assert torch.equal(corrected_lambda(pixel, constant), lam)  # a linear MixMo mask: lambda* == lambda
    mixing, _ = cutmix_box_mask(torch.rand(64, generator=g), 32, 32, generator=g)
    star = corrected_lambda(pixel, mixing)
    overlap = (pixel * mixing).sum(dim=(1, 2, 3))
    total = mixing.sum(dim=(1, 2, 3))
    expected = torch.where(total > 0, overlap / total.clamp_min(1), lam)
    assert torch.allclose(star, expected)
    # Stem stride 2: a 64x64 pixel mask is area-pooled onto the 32x32 mixing grid.
    fine = pixel.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.allclose(corrected_lambda(fine, mixing), star)
    with pytest.raises(ConfigError):
        corrected_lambda(torch.ones(2, 1, 30, 30), torch.ones(2, 1, 32, 32) / 2)


def test_cutmix_with_a_mixmo_mask_keeps_the_batch_image_dominant():
    x, partner = _two_constant_batches(400, 32, 32)
    mixing, _ = cutmix_box_mask(torch.rand(400, generator=_gen(5)), 32, 32, generator=_gen(6))
    mixed, lam = pixel_cutmix(x, partner, prob=1.0, generator=_gen(7), mixing_mask=mixing)
    assert bool((lam >= 0.5).all())
    from_x = (mixed[:, :1] == 1).float()
    # lambda* is the share of x inside this input's MixMo mask, measured on the output image itself.
    total = mixing.sum(dim=(1, 2, 3))
    measured = (from_x * mixing).sum(dim=(1, 2, 3)) / total.clamp_min(1)
    has_mask = total > 0
    assert torch.allclose(lam[has_mask], measured[has_mask], atol=1e-6)
    # Some samples were swapped: x then survives outside the pasted box, i.e. on less than half the image.
    assert bool((from_x.mean(dim=(1, 2, 3)) < 0.5).any())
    plain, lam_plain = pixel_cutmix(x, partner, prob=1.0, generator=_gen(7))
    assert bool((lam_plain < 0.5).any())  # without the MixMo mask nothing is swapped


def test_soft_target_mixing():
    a, b = soft_targets(torch.tensor([0, 1]), 3), soft_targets(torch.tensor([2, 1]), 3)
    mixed = mix_soft_targets(a, b, torch.tensor([0.25, 0.6]))
    assert torch.allclose(mixed, torch.tensor([[0.25, 0.0, 0.75], [0.0, 1.0, 0.0]]))


def test_fda_swaps_only_the_low_frequency_amplitude():
    from mixlab.mixing import fourier_amplitude_swap

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32, generator=g) * 255, torch.rand(2, 3, 32, 32, generator=g) * 255
    assert torch.equal(fourier_amplitude_swap(a, b, 0.0), a)  # an empty band
    assert torch.allclose(fourier_amplitude_swap(a, a, 0.1), a, atol=1e-3)
    h = fourier_amplitude_swap(a, b, 0.1)  # band half-side 3 around the centre (16, 16)

    def spectrum(x):
        return torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))

    low = (..., slice(13, 20), slice(13, 20))
    assert torch.allclose(spectrum(h).abs()[low], spectrum(b).abs()[low], rtol=1e-3, atol=0.5)
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[13:20, 13:20] = False
    assert torch.allclose(spectrum(h).abs()[..., outside], spectrum(a).abs()[..., outside], rtol=1e-3, atol=0.5)
    assert torch.allclose(spectrum(h).angle()[..., outside], spectrum(a).angle()[..., outside], atol=1e-3)
