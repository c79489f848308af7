"""Dense-prediction models of mixlab.seg (spec guidedmix §2.5, §3.1, §8 items 15-17, §9): MITrans, PSP U-Net,
smp's DeepLabV3+ variant, encoders and local pretrained weights. Tiny encoders, 64x64 / 65x65 inputs, no network."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torchvision
from mixlab.errors import CheckpointError, ConfigError
from mixlab.seg.models import (
    DeepLabV3Plus,
    MITransBlock,
    NonLocal2d,
    PSPModule,
    PSPUNet,
    ResNetEncoder,
    create_seg_model,
    encoder_parameters,
    load_pretrained,
    new_module_parameters,
)
from torch import nn

#: smp is the optional mixlab[seg] extra: the DeepLabV3+ tests run where it is installed (every method package that
#: uses it depends on it), and are skipped for mixlab installed alone.
needs_smp = pytest.mark.skipif(
    importlib.util.find_spec("segmentation_models_pytorch") is None, reason="needs the mixlab[seg] extra (smp)"
)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_seg_model("psp_unet", "resnet-tiny", 5, **kwargs)


# --- MITrans (item 15, 16) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlocal_", [True, False])
def test_mitrans_block_doubles_to_skip_size(nonlocal_):
    block = MITransBlock(12, 6, 10, nonlocal_=nonlocal_)
    out = block(torch.randn(2, 12, 5, 7), torch.randn(2, 6, 10, 14))
    assert out.shape == (2, 10, 10, 14)
    assert (block.nonlocal_block is not None) == nonlocal_


def test_mitrans_block_odd_skip_size():
    block = MITransBlock(8, 4, 6, nl_zero_init=False)
    assert block(torch.randn(2, 8, 6, 6), torch.randn(2, 4, 11, 11)).shape == (2, 6, 11, 11)


def test_mitrans_block_same_resolution_skips_pixelshuffle():
    block = MITransBlock(8, 4, 6, scale_factor=1)
    assert isinstance(block.shuffle, nn.Identity) and block.expand.out_channels == 6
    assert block(torch.randn(2, 8, 5, 5), torch.randn(2, 4, 5, 5)).shape == (2, 6, 5, 5)


def test_icnr_shuffle_starts_as_nearest_neighbour():
    block = MITransBlock(8, 4, 6, nonlocal_=False)
    u = block.shuffle(block.relu(block.expand(torch.randn(1, 8, 3, 3))))
    blocks = u.unfold(2, 2, 2).unfold(3, 2, 2)  # (1, 6, 3, 3, 2, 2): each 2x2 cell holds one value
    torch.testing.assert_close(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_attention_rows_sum_to_one():
    torch.manual_seed(0)
    nl = NonLocal2d(8, zero_init=False)
    attention = nl.attention(torch.randn(2, 8, 4, 5))
    assert attention.shape == (2, 20, 20)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 20))


def test_zero_init_nonlocal_is_exact_identity():
    nl = NonLocal2d(16)  # zero_init=True by default
    x = torch.randn(2, 16, 5, 6)
    assert torch.equal(nl(x), x)
    nl.use_sdpa = False
    assert torch.equal(nl(x), x)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_nonlocal_is_equivariant_to_spatial_permutations(use_sdpa):
    torch.manual_seed(0)
    nl = NonLocal2d(8, zero_init=False, use_sdpa=use_sdpa)
    x = torch.randn(2, 8, 4, 6)
    perm = torch.randperm(24)

    def permute(t):
        return t.flatten(2)[..., perm].reshape(t.shape)

    out = nl(x)
    assert not torch.allclose(out, x)  # the attention does something
    torch.testing.assert_close(nl(permute(x)), permute(out))


@pytest.mark.parametrize("scale", [True, False])
def test_sdpa_path_equals_explicit_softmax(scale):
    torch.manual_seed(0)
    nl = NonLocal2d(16, scale=scale, zero_init=False)
    x = torch.randn(3, 16, 5, 7)
    fast = nl(x)
    nl.use_sdpa = False
    explicit = nl(x)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    # and both are Eq. 5 written out with the attention matrix
    q, k, v = nl._project(x)
    by_hand = x + (nl.attention(x) @ v).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(explicit, by_hand, atol=1e-5, rtol=1e-5)


def test_nonlocal_attends_within_each_image_only():
    torch.manual_seed(0)
    nl = NonLocal2d(8, zero_init=False)
    x = torch.randn(2, 8, 4, 4)
    y = x.clone()
    y[1] = torch.randn(8, 4, 4)
    torch.testing.assert_close(nl(x)[0], nl(y)[0])


def test_scaling_is_sqrt_of_half_channels():
    assert NonLocal2d(32).softmax_scale == pytest.approx(1 / 4)
    assert NonLocal2d(32, scale=False).softmax_scale == 1.0


# --- PSP and the PSP U-Net (item 17) ----------------------------------------------------------------------------


def test_psp_module_trains_with_batch_of_one():
    psp = PSPModule(16, 8).train()
    assert psp(torch.randn(1, 16, 3, 3)).shape == (1, 8, 3, 3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in psp.stages[0])  # the 1x1 bin
    assert psp.stages[1][1].out_channels == 4  # in // 4 channels per bin


@pytest.mark.parametrize("size", [64, 65])
def test_psp_unet_forward_shapes(size):
    model = _tiny()
    out = model(torch.randn(2, 3, size, size))
    enc = -(-size // 32)
    assert out["logits"].shape == (2, 5, size, size)
    assert out["cls"].shape == (2, 5)
    assert out["enc"].shape == (2, 32, enc, enc)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_psp_unet_odd_crop_321_with_one_image_in_train_mode():
    out = _tiny().train()(torch.randn(1, 3, 321, 321))
    assert out["logits"].shape == (1, 5, 321, 321) and out["enc"].shape == (1, 32, 11, 11)


def test_psp_unet_non_square_input():
    out = _tiny()(torch.randn(2, 3, 64, 97))
    assert out["logits"].shape == (2, 5, 64, 97) and out["enc"].shape == (2, 32, 2, 4)


def test_nonlocal_sits_at_the_chosen_stages():
    model = _tiny()
    assert [b.nonlocal_block is not None for b in model.decoder] == [True, True, False, False]
    assert model.decoder[0].nonlocal_block.channels == 32  # the PSP output
    model = _tiny(mitrans_nl_stages=(2,))
    assert [b.nonlocal_block is not None for b in model.decoder] == [False, False, True, False]


def test_without_mitrans_fewer_parameters_and_runs():
    with_nl, without = _tiny(), _tiny(use_mitrans=False)
    assert not any(isinstance(m, NonLocal2d) for m in without.modules())
    nl_params = sum(_count(m) for m in with_nl.modules() if isinstance(m, NonLocal2d))
    assert _count(without) == _count(with_nl) - nl_params < _count(with_nl)
    assert without(torch.randn(2, 3, 64, 64))["logits"].shape == (2, 5, 64, 64)


@pytest.mark.parametrize("output_stride", [16, 8])
@pytest.mark.parametrize("size", [64, 65])
def test_output_stride(output_stride, size):
    model = _tiny(output_stride=output_stride)
    out = model(torch.randn(2, 3, size, size))
    enc = -(-size // output_stride)
    assert out["enc"].shape == (2, 32, enc, enc)
    assert out["logits"].shape == (2, 5, size, size)
    scales = [b.scale_factor for b in model.decoder]
    assert scales == ([1, 2, 2, 2] if output_stride == 16 else [1, 1, 2, 2])


def test_dilated_basic_block_encoder_matches_strides():
    for output_stride, reductions in ((32, (1, 2, 4, 8, 16, 32)), (16, (1, 2, 4, 8, 16, 16)), (8, (1, 2, 4, 8, 8, 8))):
        encoder = ResNetEncoder("resnet-tiny", output_stride)
        assert encoder.reductions == reductions
        features = encoder(torch.randn(1, 3, 64, 64))
        assert [f.shape[1] for f in features] == list(encoder.out_channels) == [3, 8, 8, 16, 32, 64]
        assert [f.shape[-1] for f in features] == [64 // r for r in reductions]
    layer4 = ResNetEncoder("resnet18", 8).layer4  # torchvision's scheme: first block keeps the previous dilation
    assert (
        layer4[0].conv1.dilation == (2, 2) and layer4[1].conv2.dilation == (4, 4) and layer4[0].conv1.stride == (1, 1)
    )


def test_batch_images_do_not_mix_in_eval_mode():
    model = _tiny(nl_zero_init=False).eval()
    x = torch.randn(2, 3, 64, 64)
    y = x.clone()
    y[1] = torch.randn(3, 64, 64)
    with torch.no_grad():
        a, b = model(x), model(y)
    for key in ("logits", "enc", "cls"):
        torch.testing.assert_close(a[key][0], b[key][0])
        assert not torch.allclose(a[key][1], b[key][1])


def test_backward_reaches_encoder_and_head():
    model = _tiny(nl_zero_init=False)
    out = model(torch.randn(2, 3, 64, 64))
    (out["logits"].square().mean() + out["cls"].square().mean()).backward()
    assert model.encoder.conv1.weight.grad.abs().sum() > 0
    assert model.decoder[0].nonlocal_block.query.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "arch,encoder", [("psp_unet", "resnet-tiny"), pytest.param("deeplabv3plus", "resnet18", marks=needs_smp)]
)
def test_parameter_groups_partition_the_model(arch, encoder):
    model = create_seg_model(arch, encoder, 3)
    enc, new = encoder_parameters(model), new_module_parameters(model)
    ids_enc, ids_new = {id(p) for p in enc}, {id(p) for p in new}
    assert not ids_enc & ids_new
    assert ids_enc | ids_new == {id(p) for p in model.parameters()}
    assert ids_enc == {id(p) for p in model.encoder.parameters()}
    nl = next(m for m in model.modules() if isinstance(m, NonLocal2d))
    assert {id(p) for p in nl.parameters()} <= ids_new


def test_psp_unet_resnet50_parameter_count_golden():
    torch.manual_seed(0)
    model = create_seg_model("psp_unet", "resnet50", 21)
    assert _count(model) == 52_633_641
    parts = [_count(m) for m in (model.encoder, model.psp, model.decoder, model.classifier, model.head)]
    assert parts == [23_508_032, 23_073_280, 6_038_784, 10_773, 2_772]
    assert _count(create_seg_model("psp_unet", "resnet50", 21, use_mitrans=False)) == 52_633_641 - 525_312 - 131_584
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out["logits"].shape == (1, 21, 64, 64) and out["enc"].shape == (1, 512, 2, 2)


# --- pretrained weights -----------------------------------------------------------------------------------------


def _saved_resnet18(tmp_path, wrap: bool = False):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    for key in [k for k in state if k.endswith("num_batches_tracked")]:
        del state[key]  # torchvision's ImageNet files lack them
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}} if wrap else state, path)
    return state, path


@pytest.mark.parametrize("wrap", [False, True])
def test_load_pretrained_round_trip(tmp_path, wrap):
    state, path = _saved_resnet18(tmp_path, wrap)
    model = create_seg_model("psp_unet", "resnet18", 3, pretrained=path)
    own = model.encoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert not any(k.startswith("fc.") for k in own)


@needs_smp
def test_load_pretrained_into_smp_encoder(tmp_path):
    state, path = _saved_resnet18(tmp_path)
    model = create_seg_model("deeplabv3plus", "resnet18", 3, pretrained=path)
    own = model.encoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))


def test_load_pretrained_from_a_whole_model_checkpoint(tmp_path):
    source = create_seg_model("psp_unet", "resnet-tiny", 3)
    path = tmp_path / "model.pt"
    torch.save({"model": source.state_dict()}, path)
    target = load_pretrained(ResNetEncoder("resnet-tiny"), path)
    assert all(torch.equal(v, source.encoder.state_dict()[k]) for k, v in target.state_dict().items())


def test_mismatched_pretrained_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        create_seg_model("psp_unet", "resnet18", 3, pretrained=path)
    message = str(info.value)
    assert "\n" not in message and "resnet34.pth" in message and "unexpected" in message


def test_wrong_shapes_and_missing_file(tmp_path):
    path = tmp_path / "tiny.pth"
    state = ResNetEncoder("resnet-tiny").state_dict()
    state["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"wrong shape \(e\.g\. conv1\.weight"):
        load_pretrained(ResNetEncoder("resnet-tiny"), path)
    with pytest.raises(CheckpointError, match="never downloaded"):
        create_seg_model("psp_unet", "resnet-tiny", 3, pretrained="imagenet")


# --- DeepLabV3+ (deviation, smp) --------------------------------------------------------------------------------


@needs_smp
@pytest.mark.parametrize("size", [64, 65])
def test_deeplab_forward_shapes(size):
    torch.manual_seed(0)
    model = create_seg_model("deeplabv3plus", "resnet18", 4)
    assert isinstance(model, DeepLabV3Plus) and isinstance(model.mitrans, NonLocal2d)
    out = model(torch.randn(2, 3, size, size))
    enc = -(-size // 16)
    assert out["logits"].shape == (2, 4, size, size)
    assert out["enc"].shape == (2, 512, enc, enc)
    assert out["cls"].shape == (2, 4)


@needs_smp
def test_deeplab_pads_and_crops_back():
    torch.manual_seed(0)
    model = create_seg_model("deeplabv3plus", "resnet18", 4, output_stride=8, nl_zero_init=False).eval()
    x = torch.randn(1, 3, 65, 70)
    with torch.no_grad():
        out = model(x)
        padded = model(torch.nn.functional.pad(x, (0, 2, 0, 7)))  # 72 x 72: already a multiple of 8
    assert out["logits"].shape == (1, 4, 65, 70) and out["enc"].shape == (1, 512, 9, 9)
    torch.testing.assert_close(out["logits"], padded["logits"][..., :65, :70])


@needs_smp
def test_deeplab_without_mitrans():
    model = create_seg_model("deeplabv3plus", "resnet18", 4, use_mitrans=False)
    assert model.mitrans is None
    assert model(torch.randn(2, 3, 64, 64))["logits"].shape == (2, 4, 64, 64)


def test_missing_smp_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r'pip install "mixlab\[seg\]"'):
        create_seg_model("deeplabv3plus", "resnet18", 4)


# --- the factory ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arch,encoder,kwargs,match",
    [
        ("unet", "resnet18", {}, "psp_unet, deeplabv3plus"),
        ("psp_unet", "resnet152", {}, "resnet-tiny, resnet18"),
        ("deeplabv3plus", "resnet-tiny", {}, "resnet18, resnet34, resnet50, resnet101"),
        ("psp_unet", "resnet-tiny", {"output_stride": 4}, "output_stride"),
        ("deeplabv3plus", "resnet18", {"output_stride": 32}, "8 or 16"),
        ("psp_unet", "resnet-tiny", {"mitrans_nl_stages": (5,)}, "mitrans_nl_stages"),
        ("psp_unet", "resnet-tiny", {"decoder_channels": (8, 8)}, "decoder_channels"),
        ("deeplabv3plus", "resnet18", {"psp_channels": 64}, "psp_channels"),
    ],
)
def test_factory_refuses_impossible_options(arch, encoder, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_seg_model(arch, encoder, 3, **kwargs)


def test_factory_defaults():
    model = create_seg_model("PSP_UNet", "resnet-tiny", 3)
    assert isinstance(model, PSPUNet) and model.encoder.output_stride == 32
    assert model.psp.bottleneck[0].out_channels == 32
    assert [b.fuse[1][0].out_channels for b in model.decoder] == [32, 16, 16, 8]
    with pytest.raises(ConfigError, match="num_classes"):
        create_seg_model("psp_unet", "resnet-tiny", 0)
