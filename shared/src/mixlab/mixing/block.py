"""The MixMo mixing block: which input owns which part of the mixed tensor (spec §3.2-3.7).

A :class:`MixingPlan` holds per-input masks ``m_i`` (summing to 1 at every location) and the realised ratios
kappa_i = mean(m_i) that feed w_r. The network then mixes its encodings with :func:`mix`,
``M * sum_i m_i * l_i``; the factor M makes the training tensor match the test-time sum ``sum_i c_i(x)``.

* Linear (Linear-MixMo, MIMO with alpha <= 0): m_i is the constant kappa_i.
* Binary, M=2 (Cut-MixMo): input 0 gets a binary mask of target area kappa_0; a role swap (fair coin) flips
  it, m_0 <- 1 - m_0 and kappa_0 <- 1 - kappa_0, so that either input can own the patch.
* Binary, M>2 (soft cut, thesis Eq. A.4): an owner k is drawn uniformly and gets a binary mask of area
  kappa_k; every other input i gets (1 - mask) * kappa_i / (1 - kappa_k), the rest of the mass split linearly.

Thesis Alg. A.6 and the official code decide binary-vs-linear and the role swap once per batch, while kappa and
the box are per sample; both decisions can be made per sample instead (spec §9 A5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from mixlab import rng as _rng
from mixlab.errors import ConfigError
from mixlab.mixing.masks import BINARY_KINDS, binary_mask
from mixlab.mixing.ratios import sample_ratios
from mixlab.transfer import to_device

LINEAR_BLOCKS: tuple[str, ...] = ("linear", "mixup")
LEVELS: tuple[str, ...] = ("batch", "sample")


@dataclass
class MixingPlan:
    """Masks and realised ratios for one batch.

    masks: (B, M, 1, H|1, W|1), float32, summing to 1 over M at every location. A batch that is linear for
        every sample keeps the cheap (B, M, 1, 1, 1) constant masks.
    kappa: (B, M), the realised ratios mean(m_i) (after box clipping and role swap): use these for w_r.
    binary: True when every sample of the batch used the binary block (always the case for a binary batch
        with ``binary_choice_level="batch"``).
    binary_samples: (B,) bool, which samples used the binary block.
    box_owner: (B,) int64, the input that received the binary mask (k of Eq. A.4; for M=2, 1 means the role
        swap fired), -1 for linearly mixed samples.
    """

    masks: torch.Tensor
    kappa: torch.Tensor
    binary: bool
    binary_samples: torch.Tensor
    box_owner: torch.Tensor

    @property
    def num_members(self) -> int:
        return self.kappa.shape[1]

    def device_tensors(
        self, device: torch.device, dtype: torch.dtype, grid: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The masks (in ``dtype``) and ratios on ``device``, copied without a host wait (a plan drawn on the CPU).

        With ``grid`` (the mixing-space size) a linear batch's constant masks (B, M, 1, 1, 1) are spread over it on
        the device, so that every batch hands the network masks of one shape and stride: a compiled forward then
        keeps one graph instead of recompiling when Cut-MixMo alternates binary and linear batches.
        """
        masks = to_device(self.masks, device, dtype)
        if grid is not None and tuple(masks.shape[-2:]) != tuple(grid):
            masks = masks.expand(*masks.shape[:3], *grid).contiguous()
        return masks, to_device(self.kappa, device)


def _level_draw(level: str, batch: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """U[0,1) per sample, or one draw broadcast to the batch."""
    if level == "batch":
        return _rng.rand((1,), device, generator).expand(batch).clone()
    return _rng.rand((batch,), device, generator)


def sample_mixing(
    batch: int,
    M: int,
    height: int,
    width: int,
    *,
    alpha: float,
    binary_prob: float,
    block: str = "cutmix",
    box: str = "clip",
    role_swap_level: str = "batch",
    binary_choice_level: str = "batch",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    **kind_options: object,
) -> MixingPlan:
    """Draw a MixingPlan for ``batch`` samples of ``M`` inputs on an ``height x width`` mixing grid.

    kappa ~ Beta(alpha, alpha) / Dir_M(alpha) per sample (alpha <= 0: 1/M). With probability ``binary_prob``
    (per batch or per sample) the binary ``block`` (one of ``BINARY_KINDS``; ``box`` applies to cutmix, other
    ``kind_options`` to the other kinds) replaces linear mixing; ``block="linear"`` never mixes binarily.
    ``role_swap_level`` sets the granularity of the M=2 role swap and of the M>2 owner draw.
    """
    if M < 1:
        raise ConfigError(f"The number of inputs M must be at least 1, got {M}.")
    if not 0.0 <= binary_prob <= 1.0:
        raise ConfigError(f"The binary-mixing probability must lie in [0, 1], got {binary_prob}.")
    if block not in BINARY_KINDS + LINEAR_BLOCKS:
        raise ConfigError(f"Unknown mixing block {block!r}; choose one of {', '.join(BINARY_KINDS + LINEAR_BLOCKS)}.")
    for name, level in (("role_swap_level", role_swap_level), ("binary_choice_level", binary_choice_level)):
        if level not in LEVELS:
            raise ConfigError(f"{name} must be one of {', '.join(LEVELS)}, got {level!r}.")
    if block == "cutmix":
        kind_options = {"box": box, **kind_options}
    device = torch.device(device) if device is not None else torch.device("cpu")

    kappa = sample_ratios(batch, M, alpha, generator, device)
    none_binary = torch.zeros(batch, dtype=torch.bool, device=device)
    no_owner = torch.full((batch,), -1, dtype=torch.long, device=device)
    if M == 1:
        return MixingPlan(torch.ones(batch, 1, 1, 1, 1, device=device), kappa, False, none_binary, no_owner)

    linear_masks = kappa[:, :, None, None, None]
    if block in LINEAR_BLOCKS:
        return MixingPlan(linear_masks, kappa, False, none_binary, no_owner)
    use_binary = _level_draw(binary_choice_level, batch, device, generator) < binary_prob
    # The owner is drawn for linear batches too; only the mask generator's own draws depend on the choice.
    owner_u = _level_draw(role_swap_level, batch, device, generator)
    owner = torch.floor(owner_u * M).long().clamp(max=M - 1)
    if not bool(use_binary.any()):
        return MixingPlan(linear_masks, kappa, False, none_binary, no_owner)

    # For M=2 the mask is always drawn for kappa_0 and the role swap hands it to input 1 (spec §3.3); for
    # M>2 the owner k gets a mask of area kappa_k (Eq. A.4). Both are "the owner's mask, the rest shared".
    rows = torch.arange(batch, device=device)
    source = torch.zeros_like(owner) if M == 2 else owner
    mask, _ = binary_mask(block, kappa[rows, source], height, width, generator=generator, **kind_options)
    is_owner = torch.nn.functional.one_hot(owner, M).to(torch.bool)  # (B, M)
    others = kappa.masked_fill(is_owner, 0.0)
    rest = others.sum(1, keepdim=True)
    # kappa_i / (1 - kappa_k), written as a share of the other inputs' mass so that kappa_k = 1 cannot divide
    # by zero (the rest is then split evenly, which is immaterial as (1 - mask) is almost surely empty).
    share = torch.where(
        rest > 0, others / rest.clamp_min(torch.finfo(kappa.dtype).tiny), (~is_owner).to(kappa.dtype) / (M - 1)
    )
    share = share.masked_fill(is_owner, 0.0)
    binary_masks = torch.where(
        is_owner[:, :, None, None, None], mask[:, None], (1.0 - mask[:, None]) * share[:, :, None, None, None]
    )
    binary_kappa = binary_masks.mean(dim=(2, 3, 4))

    if bool(use_binary.all()):
        return MixingPlan(binary_masks, binary_kappa, True, use_binary, owner)
    pick = use_binary[:, None, None, None, None]
    masks = torch.where(pick, binary_masks, linear_masks.expand_as(binary_masks))
    kappa = torch.where(use_binary[:, None], binary_kappa, kappa)
    return MixingPlan(masks, kappa, False, use_binary, torch.where(use_binary, owner, no_owner))


def mix(l: torch.Tensor, masks: torch.Tensor | None, scale_by_M: bool = True) -> torch.Tensor:  # noqa: E741
    """Mix encodings l (B, M, C, H, W) into one tensor (B, C, H, W).

    With masks (B, M, 1, H|1, W|1): ``M * sum_i m_i * l_i`` (``scale_by_M=False`` drops the factor M).
    ``masks=None`` is the test-time block, the plain sum ``sum_i l_i``. For M=1, l_0 is returned unchanged.
    """
    if l.ndim != 5:
        raise ConfigError(f"mix expects encodings of shape (B, M, C, H, W), got {tuple(l.shape)}.")
    M = l.shape[1]
    if M == 1:
        return l[:, 0]
    if masks is None:
        return l.sum(1)
    if (
        masks.ndim != 5
        or masks.shape[:3] != (l.shape[0], M, 1)
        or any(s not in (1, t) for s, t in zip(masks.shape[3:], l.shape[3:]))
    ):
        raise ConfigError(
            f"Mixing masks of shape {tuple(masks.shape)} do not fit encodings of shape {tuple(l.shape)}; the "
            "masks must be built on the mixing-space grid (B, M, 1, H, W) or be constants (B, M, 1, 1, 1)."
        )
    mixed = (masks.to(l.dtype) * l).sum(1)
    return mixed * M if scale_by_M else mixed


def binary_prob_schedule(p: float, epoch: int, total_epochs: int, decay_start: float = 11 / 12) -> float:
    """Probability p_e of binary mixing at 1-indexed ``epoch`` of ``total_epochs`` (spec §3.4).

    p_e = p while epoch <= decay_start * E, then p * (E - epoch) / ((1 - decay_start) * E), reaching 0 at E:
    the test-time block is a sum, close to linear mixing, so the last epochs close the train/test gap.
    Rational arithmetic makes the schedule's breakpoints exact (p_e(275) = 0.5 for E=300, p=0.5).
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"The binary-mixing probability must lie in [0, 1], got {p}.")
    if total_epochs < 1:
        raise ConfigError(f"The total number of epochs must be at least 1, got {total_epochs}.")
    if math.isnan(decay_start) or not 0.0 <= decay_start <= 1.0:
        raise ConfigError(f"The decay start must be a fraction of training in [0, 1], got {decay_start}.")
    start = Fraction(decay_start).limit_denominator(10**6)
    boundary = start * total_epochs
    if epoch <= boundary:
        return float(p)
    if epoch >= total_epochs:
        return 0.0
    return float(Fraction(p) * (total_epochs - epoch) / (total_epochs - boundary))
