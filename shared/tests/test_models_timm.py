"""Any convolutional timm model as a backbone (`--model timm:<name>`), split at its first convolution."""

from __future__ import annotations

import pytest
import torch
from mixlab.errors import CheckpointError, ConfigError
from mixlab.models import MultiHeadMIMO, create_model

timm = pytest.importorskip("timm")


def test_resnet18_is_split_at_its_first_convolution():
    model = create_model("timm:resnet18", 10)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0, global_pool="")
    assert model.stem.weight.shape == reference.conv1.weight.shape and model.stem_stride == 2
    assert model.num_features == 512 and isinstance(model.core.conv1, torch.nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    # stem + core is the timm network itself: copy the weights over and compare the features.
    reference.load_state_dict({("conv1." + k[5:] if k.startswith("stem.") else k[5:]): v
                               for k, v in model.state_dict().items() if not k.startswith("head.")})  # fmt: skip
    model.eval(), reference.eval()
    assert torch.allclose(model.forward_features(model.stem(x)), reference.forward_features(x), atol=1e-5)


def test_mimo_wrapper_takes_a_timm_backbone():
    mimo = MultiHeadMIMO(create_model("timm:resnet18", 5), 2)
    assert len(mimo.encoders) == 2 and len(mimo.heads) == 2
    x = torch.randn(3, 2, 3, 32, 32)
    masks = torch.full((3, 2, 1, 16, 16), 0.5)  # the stem's stride 2: a 16 x 16 mixing space
    assert mimo(x, masks).shape == (3, 2, 5) and mimo(x[:, 0]).shape == (3, 2, 5)


def test_local_timm_weights_are_loaded(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = create_model(f"timm:resnet18@{path}", 7)
    assert torch.equal(model.stem.weight, source.conv1.weight)
    assert torch.equal(model.core.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    with pytest.raises(CheckpointError, match="nothing is downloaded"):
        create_model(f"timm:resnet18@{tmp_path / 'absent.pth'}", 7)


def test_refusals():
    with pytest.raises(ConfigError, match="feature map"):
        create_model("timm:vit_tiny_patch16_224", 10)
    with pytest.raises(ConfigError, match="no model"):
        create_model("timm:resnet_does_not_exist", 10)
