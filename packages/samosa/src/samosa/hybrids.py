"""Hybrids: the semantic content of x1 rendered with the gates of x2 (spec samosa-scimix §2.5, corrected Alg. 1).

``hybridize`` decodes ``D(E_c(x1), E_r(x2))`` and, with the filter, keeps a hybrid only if the classifier still
predicts x1's label on it; a rejected hybrid is replaced by its semantic parent x1 (the text of [S] §3.3 / §4.1,
not the printed pseudo-code, which inverts the test and decodes images instead of codes). The label of a hybrid
is always the semantic parent's (hard, a sharpened guess or a pseudo-label). Modules run without gradient, in
eval mode by default (``bn_mode="train"``: batch statistics, running statistics left untouched).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from mixlab.ssl import bn_stats_frozen, primary
from torch import Tensor, nn

from samosa.modules import GatedDecoder, GateEncoder, SamosaNet


@dataclass
class Hybrids:
    x: Tensor  # the hybrids (rejected ones replaced by their semantic parent)
    y: Tensor  # the semantic parents' labels, unchanged
    kept: Tensor  # (N,) bool: the hybrid passed the filter (all True without it)


@contextlib.contextmanager
def _mode(modules: tuple[nn.Module, ...], bn_mode: str) -> Iterator[None]:
    states = [m.training for m in modules]
    try:
        if bn_mode == "eval":
            for m in modules:
                m.eval()
            yield
        else:
            with contextlib.ExitStack() as stack:
                for m in modules:
                    m.train()
                    stack.enter_context(bn_stats_frozen(m))
                yield
    finally:
        for m, training in zip(modules, states):
            m.train(training)


@torch.no_grad()
def hybridize(
    net: SamosaNet,
    gates: GateEncoder,
    decoder: GatedDecoder,
    x1: Tensor,
    y1: Tensor,
    x2: Tensor,
    *,
    filter: bool = True,
    bn_mode: str = "eval",
) -> Hybrids:
    """Hybrids of semantic parents ``x1`` (labels ``y1``: class indices or soft targets) and appearance parents
    ``x2``, in the standardised input space."""
    with _mode((net, gates, decoder), bn_mode):
        z_c, _ = net.encoder(x1)
        x_h = decoder(z_c, gates(x2))
        kept = torch.ones(len(x1), dtype=torch.bool, device=x1.device)
        if filter:
            predicted = primary(net.classifier(net.encoder(x_h)[0])).argmax(1)
            target = y1 if y1.dim() == 1 else y1.argmax(1)
            kept = predicted == target
            x_h = torch.where(kept[:, None, None, None], x_h, x1.to(x_h.dtype))
    return Hybrids(x_h.to(x1.dtype), y1, kept)
