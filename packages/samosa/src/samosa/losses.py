"""SAMOSA's losses (spec samosa-scimix §2.3) and the gradient reversal of the adversarial z_r ablation (§2.10)."""

from __future__ import annotations

import torch
from torch import Tensor


def squared_error(prediction: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """``mean``: the element-wise mean (HybridNet's ``F.mse_loss``, where SAMOSA's weights come from);
    ``sum_per_sample``: the equations' squared L2 norm per sample, averaged over samples."""
    diff = (prediction.float() - target.float()).square()
    return diff.mean() if reduction == "mean" else diff.flatten(1).sum(1).mean()


def reconstruction_loss(x_hat: Tensor, x: Tensor, reduction: str = "mean") -> Tensor:
    """L_rec = ||D(sg[E_c(x)], E_r(x)) - x||^2: trains E_r and D only (the caller detaches z_c)."""
    return squared_error(x_hat, x.detach(), reduction)


def omega_rec(u: Tensor, decoder_first: Tensor, reduction: str = "mean") -> Tensor:
    """Omega_rec = ||E_c^(0..d_c-2)(x) - D^(0)(E_c(x))||^2: pulls E_c's block-11 map ``u`` towards the decoder's
    first, purely semantic layer (whose side the caller detaches unless ``omega_rec_grad_to_decoder``)."""
    return squared_error(u, decoder_first, reduction)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: float) -> Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: Tensor, weight: float = 1.0) -> Tensor:
    """Identity forward; the gradient flowing back is multiplied by ``-weight`` (Ganin & Lempitsky's layer): the
    head after it learns to classify z_r while E_r before it learns to defeat the head."""
    return _Reverse.apply(x, weight)
