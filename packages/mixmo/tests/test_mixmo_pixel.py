import torch
import torch.nn.functional as F
from mixmo.pixel_msda import pixel_msda


def _inputs(B=64, M=2, K=4, H=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, M, 3, H, H, generator=g)
    px = torch.randn(B, M, 3, H, H, generator=g)
    t = F.one_hot(torch.randint(K, (B, M), generator=g), K).float()
    pt = F.one_hot(torch.randint(K, (B, M), generator=g), K).float()
    return x, t, px, pt


def test_linear_mixmo_masks_leave_lambda_uncorrected_and_batch_image_dominant():
    torch.manual_seed(1)
    x, t, px, pt = _inputs()
    masks = torch.full((64, 2, 1, 1, 1), 0.5)
    masks[:, 1] = 0.5
    _, new_t, lam = pixel_msda(x, t, px, pt, masks, kind="cutmix", prob=1.0, alpha=1.0, swap_if_minor=True)
    assert torch.all(lam >= 0.5)
    assert torch.allclose(new_t.sum(-1), torch.ones(64, 2))


def test_lambda_star_is_measured_inside_the_mixmo_mask():
    torch.manual_seed(2)
    x, t, px, pt = _inputs(B=32, M=2, H=8)
    fmask = torch.zeros(32, 2, 1, 8, 8)
    fmask[:, 0, :, :, :4] = 1  # input 0 keeps the left half
    fmask[:, 1] = 1 - fmask[:, 0]
    mixed, _, lam = pixel_msda(x, t, px, pt, fmask, kind="cutmix", prob=1.0, alpha=1.0, swap_if_minor=True)
    # recover the pixel mask of input 0 from the images and recompute lambda* by hand
    own = (mixed[:, 0] == x[:, 0]).all(1).float()  # (B, H, W): 1 where the batch image survived
    expected = (own * fmask[:, 0, 0]).sum((1, 2)) / fmask[:, 0, 0].sum((1, 2))
    assert torch.allclose(lam[:, 0], expected, atol=1e-6)


def test_probability_zero_is_the_identity_and_one_hot_targets_stay():
    x, t, px, pt = _inputs()
    masks = torch.full((64, 2, 1, 1, 1), 0.5)
    out, new_t, lam = pixel_msda(x, t, px, pt, masks, kind="mixup", prob=0.0, alpha=1.0, swap_if_minor=True)
    assert torch.equal(out, x) and torch.equal(new_t, t) and torch.all(lam == 1)


def test_lambda_star_keeps_the_batch_image_dominant_after_the_swap():
    torch.manual_seed(5)
    x, t, px, pt = _inputs(B=256, M=2, H=8)
    fmask = torch.zeros(256, 2, 1, 8, 8)
    fmask[:, 0, :, :, :4] = 1
    fmask[:, 1] = 1 - fmask[:, 0]
    _, new_t, lam = pixel_msda(x, t, px, pt, fmask, kind="cutmix", prob=1.0, alpha=1.0, swap_if_minor=True)
    assert torch.all(lam >= 0.5)
    assert torch.allclose(new_t, lam[..., None] * t + (1 - lam[..., None]) * pt)


def test_mixup_targets_follow_the_image_weights():
    torch.manual_seed(3)
    x, t, px, pt = _inputs(B=16, M=1)
    masks = torch.ones(16, 1, 1, 1, 1)
    out, new_t, lam = pixel_msda(x, t, px, pt, masks, kind="mixup", prob=1.0, alpha=1.0, swap_if_minor=True)
    expected = lam[:, 0, None, None, None] * x[:, 0] + (1 - lam[:, 0, None, None, None]) * px[:, 0]
    assert torch.allclose(out[:, 0], expected, atol=1e-5)
    assert torch.allclose(new_t[:, 0], lam[:, :1] * t[:, 0] + (1 - lam[:, :1]) * pt[:, 0])


def test_stride_two_pools_the_pixel_mask_to_the_mixing_grid():
    torch.manual_seed(4)
    x, t, px, pt = _inputs(B=32, M=2, H=8)
    fmask = torch.zeros(32, 2, 1, 4, 4)
    fmask[:, 0, :, :2] = 1
    fmask[:, 1] = 1 - fmask[:, 0]
    mixed, _, lam = pixel_msda(x, t, px, pt, fmask, kind="cutmix", prob=1.0, alpha=1.0, swap_if_minor=True)
    own = (mixed[:, 0] == x[:, 0]).all(1).float()
    pooled = F.avg_pool2d(own[:, None], 2)[:, 0]
    expected = (pooled * fmask[:, 0, 0]).sum((1, 2)) / fmask[:, 0, 0].sum((1, 2))
    assert torch.allclose(lam[:, 0], expected, atol=1e-6)
