"""AdaIN, the Table 2.5 comparison hybrid: the statistic swap, the release's file layouts, loading errors."""

import pytest
import torch
from mixlab.errors import ConfigError
from scimix.adain import ENCODER_DEPTH, AdaINTransfer, adain_decoder, adaptive_instance_norm, vgg_encoder


def test_adaptive_instance_norm_takes_the_style_moments_and_keeps_the_content_pattern():
    torch.manual_seed(0)
    content, style = torch.randn(2, 4, 5, 6), 3.0 * torch.randn(2, 4, 5, 6) + 7.0
    out = adaptive_instance_norm(content, style, eps=0.0)
    torch.testing.assert_close(out.mean((2, 3)), style.mean((2, 3)))
    torch.testing.assert_close(out.flatten(2).std(2), style.flatten(2).std(2))
    normalised = (content - content.mean((2, 3), keepdim=True)) / content.flatten(2).std(2)[..., None, None]
    expected = normalised * style.flatten(2).std(2)[..., None, None] + style.mean((2, 3), keepdim=True)
    torch.testing.assert_close(out, expected)


def test_layouts_are_the_releases():
    encoder, decoder = vgg_encoder(), adain_decoder()
    assert len(encoder) == ENCODER_DEPTH and isinstance(encoder[30], torch.nn.ReLU)  # relu4_1
    weights = [k for k in encoder.state_dict() if k.endswith("weight")]
    assert weights == [f"{i}.weight" for i in (0, 2, 5, 9, 12, 16, 19, 22, 25, 29)]
    assert [k for k in decoder.state_dict() if k.endswith("weight")] == [
        f"{i}.weight" for i in (1, 5, 8, 11, 14, 18, 21, 25, 28)
    ]
    assert encoder[29].out_channels == 512 and decoder[1].in_channels == 512 and decoder[28].out_channels == 3


def test_files_of_the_release_load_and_style_images(tmp_path):
    torch.manual_seed(1)
    full_vgg = dict(vgg_encoder().state_dict())
    full_vgg["32.weight"], full_vgg["32.bias"] = torch.randn(512, 512, 3, 3), torch.randn(512)  # relu4_2 onwards
    torch.save(full_vgg, tmp_path / "vgg_normalised.pth")
    torch.save(adain_decoder().state_dict(), tmp_path / "decoder.pth")
    model = AdaINTransfer.from_files(tmp_path / "vgg_normalised.pth", tmp_path / "decoder.pth")
    torch.testing.assert_close(model.encoder[0].weight, full_vgg["0.weight"])
    content, style = torch.rand(2, 3, 28, 28), torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        out = model(content, style)
    assert out.shape == (2, 3, 28, 28) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert not any(p.requires_grad for p in model.parameters())


def test_wrong_files_give_one_line_errors(tmp_path):
    torch.save(adain_decoder().state_dict(), tmp_path / "decoder.pth")
    with pytest.raises(ConfigError, match="does not fit the normalised VGG-19 encoder"):
        AdaINTransfer.from_files(tmp_path / "decoder.pth", tmp_path / "decoder.pth")
    with pytest.raises(ConfigError, match="file not found"):
        AdaINTransfer.from_files(tmp_path / "missing.pth", tmp_path / "decoder.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="is not a state dict of tensors"):
        AdaINTransfer.from_files(tmp_path / "junk.pth", tmp_path / "decoder.pth")
