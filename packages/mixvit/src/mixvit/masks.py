"""MixViT's token masks: which input each patch-token position comes from (thesis A.1.5; spec §4.2-4.4).

A transformer handles a token that encodes several images badly (Table 4.1), so MixViT never interpolates: every
token position takes the patch of exactly one input. The masks ``M_i`` are binary on the patch grid and partition
it, ``sum_i M_i = 1``; the token shares ``lambda_i = mean(M_i)`` weight the heads' losses (Eq. 4.4).

"Corrected" CutMix: a CutMix box is drawn on the **pixel** grid (the MixMo box: side ``floor(H sqrt(kappa))``,
centre uniform, clipped at the border), then each patch goes to the box owner by majority vote over its pixels;
ties (exactly half) are broken by one coin per mixed sample, so all tied patches of a sample go the same way.
For M > 2 (an extension; the thesis always uses M = 2) a uniformly drawn owner k takes the box of area kappa_k,
kappa ~ Dir_M(alpha), and every other token draws its input among the rest with probabilities
kappa_i / (1 - kappa_k). For M = 2 this is exactly the Beta(alpha, alpha) box with a random owner.

Towards the end of training some batches are "whole-input": all tokens come from one input k (the test-time
situation), so only head k learns from that batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.mixing import cutmix_box_mask, sample_ratios
from mixlab.transfer import to_device

BOX_OWNER_LEVELS: tuple[str, ...] = ("per_batch", "per_sample")
TIE_BREAKS: tuple[str, ...] = ("per_sample_coin", "per_patch_coin")


@dataclass
class TokenMasks:
    """Masks (B, M, h, w) in {0, 1} partitioning the patch grid, and the token shares lam (B, M) = their means."""

    masks: torch.Tensor
    lam: torch.Tensor
    whole: bool = False  # every sample takes all its tokens from one input (the end-of-training phase)
    owner: torch.Tensor | None = None  # (B,) the input that received the CutMix box, when there is one

    @property
    def num_members(self) -> int:
        return self.masks.shape[1]


def _coin(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    where = generator.device if generator is not None else device
    return to_device(torch.rand(shape, generator=generator, device=where) < 0.5, device)


def snap_to_patches(box: torch.Tensor, patch: int, tie_to_box: torch.Tensor) -> torch.Tensor:
    """Majority vote of a pixel mask (B, 1, H, W) per ``patch x patch`` patch -> token mask (B, h, w) bool.

    A patch belongs to the box when more than half its pixels are in it; at exactly half it follows
    ``tie_to_box`` (broadcastable to (B, h, w): one coin per sample, or one per patch). The fraction is a sum of
    0/1 over patch^2 pixels divided by a power of two for the usual patch sizes, so the tie test is exact.
    """
    share = F.avg_pool2d(box.float(), patch)[:, 0]
    return (share > 0.5) | ((share == 0.5) & tie_to_box)


def binarized_cutmix(
    batch: int,
    num_members: int,
    image_size: tuple[int, int],
    patch: int,
    alpha: float,
    *,
    box_owner: str = "per_batch",
    tie_break: str = "per_sample_coin",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TokenMasks:
    """Patch-snapped CutMix token masks for ``batch`` mixed samples of ``num_members`` inputs.

    ``box_owner``: which input gets the box is drawn once per batch (the MixMo code's role swap) or per sample;
    ``tie_break``: one coin per sample for all its tied patches (the thesis) or one per patch.
    """
    if box_owner not in BOX_OWNER_LEVELS:
        raise ConfigError(f"box_owner must be one of {', '.join(BOX_OWNER_LEVELS)}, got {box_owner!r}")
    if tie_break not in TIE_BREAKS:
        raise ConfigError(f"tie_break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
    if not alpha > 0:
        raise ConfigError(f"the token-mask concentration alpha must be positive (the thesis uses 0.5), got {alpha}")
    height, width = image_size
    if height % patch or width % patch:
        raise ConfigError(f"images of {height}x{width} do not split into {patch}x{patch} patches")
    device = torch.device(device) if device is not None else torch.device("cpu")
    M, h, w = num_members, height // patch, width // patch
    if M == 1:
        return TokenMasks(torch.ones(batch, 1, h, w, device=device), torch.ones(batch, 1, device=device))

    kappa = sample_ratios(batch, M, alpha, generator, device)  # (B, M), Dir_M(alpha); Beta for M = 2
    owner_shape = (1,) if box_owner == "per_batch" else (batch,)
    where = generator.device if generator is not None else device
    owner = to_device(torch.randint(M, owner_shape, generator=generator, device=where), device).expand(batch)
    rows = torch.arange(batch, device=device)
    box, _ = cutmix_box_mask(kappa[rows, owner], height, width, box="clip", generator=generator)
    tie_shape = (batch, 1, 1) if tie_break == "per_sample_coin" else (batch, h, w)
    in_box = snap_to_patches(to_device(box, device), patch, _coin(tie_shape, device, generator))  # (B, h, w)

    source = torch.where(
        in_box, owner.view(batch, 1, 1), _other_inputs(kappa, owner, h * w, generator).view(batch, h, w)
    )
    masks = F.one_hot(source, M).permute(0, 3, 1, 2).float()
    return TokenMasks(masks, masks.mean(dim=(2, 3)), owner=owner.clone())


def _other_inputs(
    kappa: torch.Tensor, owner: torch.Tensor, num_tokens: int, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, n) input of every token outside the box: the other input when M = 2; for M > 2 input i != owner with
    probability kappa_i / (1 - kappa_owner) (multinomial never picks the zero-probability owner)."""
    batch, M = kappa.shape
    if M == 2:
        return (1 - owner).view(batch, 1).expand(batch, num_tokens)
    not_owner = torch.ones_like(kappa)
    not_owner[torch.arange(batch, device=kappa.device), owner] = 0.0
    rest = kappa * not_owner
    rest = torch.where(rest.sum(1, keepdim=True) > 0, rest, not_owner)  # kappa_owner rounded to 1: share evenly
    where = generator.device if generator is not None else kappa.device
    return torch.multinomial(rest.to(where), num_tokens, replacement=True, generator=generator).to(kappa.device)


def whole_input(
    batch: int,
    num_members: int,
    grid: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TokenMasks:
    """Every token of every sample from one input k, k uniform (drawn once for the batch): lam_k = 1."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    where = generator.device if generator is not None else device
    k = int(torch.randint(num_members, (1,), generator=generator, device=where))
    masks = torch.zeros(batch, num_members, *grid, device=device)
    masks[:, k] = 1.0
    return TokenMasks(masks, masks.mean(dim=(2, 3)), whole=True)


def whole_input_prob(fraction: float, start: float = 11 / 12, p_max: float = 1.0) -> float:
    """p(e) = p_max * clip((e/E - start) / (1 - start), 0, 1): 0 until ``start`` of training, p_max at the end.

    MixMo's schedule run backwards: MixMo lowers its binary-mixing probability over the last twelfth of training
    to match its summed test-time input; MixViT raises the probability of un-mixed inputs to match its un-mixed
    test images. ``fraction`` is the share of training done (step-wise).
    """
    if start >= 1.0:
        return 0.0
    return p_max * min(1.0, max(0.0, (fraction - start) / (1.0 - start)))


def upsample(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """Token masks (B, M, h, w) -> pixel masks (B, M, h*patch, w*patch): U(M_i) of the spec."""
    return masks.repeat_interleave(patch, dim=-2).repeat_interleave(patch, dim=-1)


def mix_patches(x: torch.Tensor, masks: torch.Tensor, patch: int) -> torch.Tensor:
    """Inputs (B, M, C, H, W) -> one image (B, C, H, W) whose patch n is input i(n)'s patch n.

    Exact selection (binary masks, no interpolation and no factor M, since the embedding is shared). A patch
    embedding acts on each patch alone, so embedding this image equals mixing the embedded tokens (Alg. A.8).
    """
    return (upsample(masks, patch).unsqueeze(2).to(x.dtype) * x).sum(1)
