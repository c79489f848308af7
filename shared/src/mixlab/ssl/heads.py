"""Mean Teacher's "dual head" (spec samosa-scimix §1.4): two linear heads on the same pooled feature."""

from __future__ import annotations

import torch
from torch import nn

from mixlab.models.base import Backbone


class DualHead(nn.Module):
    """A backbone whose classifier has a second, "stability" head: ``forward`` gives (B, 2, K), the primary head's
    logits first. The primary head is the backbone's own ``head`` (so its weights keep their names); the stability
    head is a new ``Linear`` initialised with the backbone family's scheme."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.stability_head = nn.Linear(backbone.num_features, backbone.num_classes)
        backbone.init_weights(self.stability_head)
        self.num_classes = backbone.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        features = b.pool(b.forward_features(b.stem(x)))
        return torch.stack([b.head(features), self.stability_head(features)], dim=1)
