"""App. A.6.3: the core-network feature influence (variance of each stage's channels when one input varies)."""

from types import SimpleNamespace

import pytest
import torch
from mixlab.errors import ConfigError
from mixlab.models import MultiHeadMIMO, create_model
from mixlab.models.base import Backbone
from mixshare.core_features import (
    RunningVariance,
    channel_order,
    core_feature_influence,
    core_stages,
    mixed_encodings,
    summarize,
)
from torch import nn


class SplitCore(Backbone):
    """Stem 3->4 (1x1), then two grouped stages: channels 0-1 only ever read mixing-space channels 0-1, 2-3 only 2-3."""

    def __init__(self) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.stem_channels, self.stem_stride = 3, 4, 4, 1
        self.stem = nn.Conv2d(3, 4, 1, bias=False)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, bias=False), nn.Tanh())
        self.head = nn.Linear(4, 3)
        self.init_weights()

    def forward_features(self, z):
        return self.layer2(self.layer1(z))


def split_model() -> MultiHeadMIMO:
    """M=2; encoder 1 writes nothing to channels 0-1 and encoder 0 nothing to channels 2-3."""
    torch.manual_seed(0)
    model = MultiHeadMIMO(SplitCore(), 2, encoder_init="independent").eval()
    with torch.no_grad():
        model.encoders[1].weight[:2] = 0
        model.encoders[0].weight[2:] = 0
    return model


def test_channels_fed_by_one_input_have_zero_importance_for_the_other_subnetwork():
    model = split_model()
    images = torch.randn(37, 3, 8, 8)
    influence = core_feature_influence(model, images.split(10), images[0])
    assert list(influence) == ["layer1", "layer2"]
    for importance in influence.values():
        assert importance.shape == (2, 4)
        assert torch.all(importance[1, :2] == 0) and torch.all(importance[0, 2:] == 0)
        assert torch.all(importance[0, :2] > 0) and torch.all(importance[1, 2:] > 0)


def test_importance_is_the_variance_over_images_averaged_over_space():
    """Batch-wise accumulation equals the direct formula on the whole (N, C, H, W) map of each stage."""
    model = MultiHeadMIMO(create_model("smallcnn-1", num_classes=5), 2).eval()
    images, fixed = torch.randn(23, 3, 16, 16), torch.randn(3, 16, 16)
    influence = core_feature_influence(model, images.split(6), fixed)
    with torch.no_grad():
        z = mixed_encodings(model, images, fixed[None])  # (2 * 23, ...)
        maps = [model.core.block1(z)]
        maps.append(model.core.block2(maps[0]))
    assert list(influence) == ["block1", "block2"]
    for importance, stage_map in zip(influence.values(), maps):
        assert importance.shape == (2, stage_map.shape[1]) and torch.all(importance >= 0)
        expected = torch.stack([m.var(dim=0).mean(dim=(1, 2)) for m in stage_map.chunk(2)])
        torch.testing.assert_close(importance, expected, rtol=1e-4, atol=1e-7)


def test_identical_encoders_give_both_subnetworks_the_same_importance():
    """MixShare's aligned encoders at init: swapping the inputs' roles changes nothing, the share rate is 100%."""
    torch.manual_seed(0)
    model = MultiHeadMIMO(create_model("smallcnn-1", num_classes=5), 2, encoder_init="identical").eval()
    images = torch.randn(12, 3, 16, 16)
    influence = core_feature_influence(model, images.split(5), images[3])
    for importance in influence.values():
        torch.testing.assert_close(importance[0], importance[1])
    stages = summarize(influence, "3", 12)["stages"]
    assert [s["share_rate"] for s in stages] == pytest.approx([100.0, 100.0])


def test_mixed_encodings_are_the_test_time_sum():
    """With the same image on every input the mixing space is exactly the one of the test-time forward."""
    model = MultiHeadMIMO(create_model("smallcnn-1", num_classes=5), 2, encoder_init="independent").eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        z = mixed_encodings(model, x, x)
        torch.testing.assert_close(z, model.encode_sum(x).expand(2, -1, -1, -1))
        swapped = mixed_encodings(model, x, torch.zeros_like(x))  # member i alone on its input
        torch.testing.assert_close(swapped[1], model.encoders[1](x)[0])


def test_running_variance_matches_torch_var():
    data = torch.randn(50, 3, 4) * 3 + 100
    stats = RunningVariance()
    for chunk in data.split(7):
        stats.update(chunk)
    torch.testing.assert_close(stats.variance(), data.double().var(dim=0))


def test_stages_and_summary():
    model = MultiHeadMIMO(create_model("wrn10-1", num_classes=5), 2)
    assert list(core_stages(model)) == ["layer1", "layer2", "layer3"]
    with pytest.raises(ConfigError, match="no residual stages"):
        core_stages(SimpleNamespace(core=nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())))
    importance = torch.tensor([[4.0, 0.0, 1.0, 2.0], [0.0, 3.0, 1.0, 6.0]])
    stage = summarize({"layer1": importance}, "first", 10)["stages"][0]
    assert stage["dominant_counts"] == [2, 2] and stage["dominant_member"] == [0, 1, 0, 1]
    assert stage["share_rate_mean_ratio"] == pytest.approx(100 * (0 + 0 + 1 + 1 / 3) / 4)
    # member 0's channels (most exclusive first), then member 1's (least exclusive first): 0-only ... 1-only
    assert channel_order(importance) == [0, 2, 3, 1]
