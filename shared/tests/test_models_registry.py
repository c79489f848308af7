"""Model registry: name parsing, errors that list the valid patterns, local checkpoint loading."""

import pytest
import torch
from mixlab.errors import CheckpointError, ConfigError
from mixlab.models import (
    Backbone,
    PreActResNet18,
    SmallCNN,
    WideResNet,
    available_models,
    create_model,
    load_weights,
    register_model,
    registry,
)


def _meta(name: str, num_classes: int = 10, **kwargs):
    with torch.device("meta"):
        return create_model(name, num_classes, **kwargs)


def test_available_models_lists_the_patterns():
    assert {"wrn{depth}-{width}", "preactresnet18-{width}", "smallcnn-{width}"} <= set(available_models())


@pytest.mark.parametrize(
    ("name", "cls", "depth", "width", "features"),
    [
        ("wrn28-10", WideResNet, 28, 10, 640),
        ("wrn16-1", WideResNet, 16, 1, 64),
        ("wrn10-1", WideResNet, 10, 1, 64),
        ("WRN28-2", WideResNet, 28, 2, 128),
        ("preactresnet18-3", PreActResNet18, None, 3, 1536),
        ("smallcnn-2", SmallCNN, None, 2, 64),
    ],
)
def test_names_are_parsed(name, cls, depth, width, features):
    model = _meta(name, 7)
    assert isinstance(model, cls) and isinstance(model, Backbone)
    assert model.width == width and model.num_features == features
    assert model.head.out_features == 7
    if depth is not None:
        assert model.depth == depth
        n = (depth - 4) // 6
        assert len(model.layer1) == len(model.layer2) == len(model.layer3) == n


@pytest.mark.parametrize(
    "name",
    ["resnet50", "wrn28", "wrn-28-10", "wrn28-10x", "preactresnet18", "preactresnet34-1", "vit-b", "", "smallcnn-"],
)
def test_unknown_names_list_valid_patterns(name):
    with pytest.raises(ConfigError) as info:
        create_model(name, 10)
    message = str(info.value)
    assert "wrn{depth}-{width}" in message and "preactresnet18-{width}" in message and "smallcnn-{width}" in message


@pytest.mark.parametrize(
    ("name", "reason"), [("wrn27-10", r"6n\+4"), ("wrn4-1", r"6n\+4"), ("wrn28-0", "width"), ("smallcnn-0", "width")]
)
def test_impossible_sizes_are_config_errors(name, reason):
    with pytest.raises(ConfigError, match=reason) as info:
        create_model(name, 10)
    assert "wrn{depth}-{width}" in str(info.value)


def test_bad_num_classes_and_unknown_options():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="num_classes"):
            create_model("wrn10-1", bad)
    with pytest.raises(ConfigError, match="dropout"):
        create_model("wrn10-1", 10, dropout=0.3)
    with pytest.raises(ConfigError, match="width"):
        create_model("wrn10-1", 10, width=4)  # sizes come from the name


def test_register_model_adds_a_family(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))

    @register_model("tinynet{depth}-{width}")
    def tinynet(num_classes: int, *, depth: int, width: int, channels_scale: int = 1) -> Backbone:
        """Test family."""
        return SmallCNN(num_classes, width=width * channels_scale + depth)

    assert "tinynet{depth}-{width}" in available_models()
    model = _meta("tinynet3-2", 5, channels_scale=4)
    assert model.width == 11
    with pytest.raises(ValueError):
        register_model("tinynet{depth}-{width}")(tinynet)
    with pytest.raises(ValueError):
        register_model("nofields")


def test_checkpoint_path_loads_local_weights(tmp_path):
    torch.manual_seed(0)
    source = create_model("smallcnn-1", 10)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = create_model("smallcnn-1", 10, checkpoint_path=path)
    for (k, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    torch.manual_seed(1)
    assert not torch.equal(create_model("smallcnn-1", 10).stem.weight, source.stem.weight)

    # Training checkpoints nest the model's state, possibly saved from a DDP-wrapped module.
    nested = tmp_path / "nested.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}, "step": 3}, nested)
    assert torch.equal(create_model("smallcnn-1", 10, checkpoint_path=nested).head.weight, source.head.weight)


def test_bad_checkpoints_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint file"):
        create_model("smallcnn-1", 10, checkpoint_path=tmp_path / "missing.pt")

    other = tmp_path / "other.pt"
    torch.save(create_model("smallcnn-2", 10).state_dict(), other)
    with pytest.raises(CheckpointError, match="wrong shape"):
        create_model("smallcnn-1", 10, checkpoint_path=other)
    wrn = tmp_path / "wrn.pt"
    torch.save(create_model("wrn10-1", 10).state_dict(), wrn)
    with pytest.raises(CheckpointError, match="missing"):
        create_model("smallcnn-1", 10, checkpoint_path=wrn)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        create_model("smallcnn-1", 10, checkpoint_path=garbage)

    # Arbitrary pickled objects are refused (weights_only=True): a checkpoint is data, never code.
    code = tmp_path / "code.pt"
    torch.save({"model": create_model("smallcnn-1", 10).state_dict(), "obj": _Payload()}, code)
    with pytest.raises(CheckpointError, match="holds objects other than tensors") as refused:
        load_weights(create_model("smallcnn-1", 10), code)
    assert "weights_only" not in str(refused.value)  # never torch's advice to load it unsafely

    empty = tmp_path / "empty.pt"
    torch.save({"step": 1}, empty)
    with pytest.raises(CheckpointError, match="no state dict"):
        create_model("smallcnn-1", 10, checkpoint_path=empty)


class _Payload:
    """A class that a weights-only unpickler must refuse to reconstruct."""
