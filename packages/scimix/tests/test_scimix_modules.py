"""SciMix's modules against spec samosa-scimix §3.2 and the invariants of §3.12 (1-3, 12)."""

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.models import count_parameters
from scimix.modules import (
    ClassifierHead,
    ContextEncoder,
    Discriminator,
    ModulatedConv2d,
    ScimixNet,
    SemanticEncoder,
    StructuralAdapters,
    StyleGenerator,
    StyleResBlock,
)

SMALL_WIDTHS = (16, 32, 64, 32, 16)


@pytest.fixture(scope="module")
def modules():
    torch.manual_seed(0)
    net = ScimixNet(28, 2, 10).eval()
    context = ContextEncoder(28, 2, 8).eval()
    generator = StyleGenerator().eval()
    disc = Discriminator().eval()
    return net, context, generator, disc


def _outputs(layers, run):
    """The outputs of ``layers`` during ``run()``, in call order."""
    maps = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: maps.append(out)) for layer in layers]
    try:
        result = run()
    finally:
        for hook in hooks:
            hook.remove()
    return maps, result


def test_parameter_counts_of_the_spec(modules):
    net, context, _, _ = modules
    assert count_parameters(net.encoder) == 1_466_320  # E_c: trunk 1,466,064 + BN(128)
    assert count_parameters(net.classifier) == 2_580  # C, K = 10
    assert count_parameters(context) == 1_467_096  # E_r: trunk + Conv1x1(128 -> 8) with bias
    assert count_parameters(ClassifierHead(128, 10, heads=1)) == 1_290
    assert count_parameters(StructuralAdapters(128, 8)) == 128 * 8 + 8 + 256
    style_dim = 128
    assert count_parameters(StyleGenerator(mapping_layers=2)) - count_parameters(StyleGenerator()) == 2 * (
        style_dim * style_dim + style_dim
    )


def test_shapes(modules):
    net, context, generator, disc = modules
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        z_c = net.encoder(x)
        assert z_c.shape == (4, 128) and net.encoder.num_features == 128
        pre_pool, z_c2 = net.encoder.features(x)
        assert pre_pool.shape == (4, 128, 8, 8) and torch.allclose(z_c2, z_c)
        assert torch.allclose(pre_pool.mean(dim=(2, 3)), z_c) and (pre_pool >= 0).float().mean() > 0.3  # after LReLU
        logits = net(x)
        assert logits.shape == (4, 2, 10)
        assert torch.allclose(logits[:, 0], net.classifier.primary(z_c))  # primary first
        assert torch.allclose(logits[:, 1], net.classifier.stability(z_c))
        assert ScimixNet(10, 1, 7, heads=1).eval()(x).shape == (4, 7)
        z_r = context(x)
        assert z_r.shape == (4, 8, 8, 8)
        trunk = context.trunk_features(x)
        assert trunk.shape == (4, 128, 8, 8) and torch.allclose(context.conv(trunk), z_r)
        block_maps, image = _outputs(generator.blocks, lambda: generator(z_c, z_r))
        assert image.shape == (4, 3, 32, 32)
        assert [tuple(m.shape) for m in block_maps] == [
            (4, 32, 8, 8),
            (4, 64, 8, 8),
            (4, 128, 8, 8),
            (4, 64, 16, 16),
            (4, 32, 32, 32),
        ]
        disc_maps, logit = _outputs([disc.conv1, *disc.blocks], lambda: disc(x))
        assert logit.shape == (4, 1)
        assert [tuple(m.shape[1:]) for m in disc_maps] == [(32, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2)]
        assert disc.fc1.in_features == 1024
        adapters = StructuralAdapters(128, 8).eval()
        assert adapters.spatial_from_semantic(pre_pool).shape == (4, 8, 8, 8)
        assert adapters.style_from_context(trunk).shape == (4, 128)


def test_style_and_context_both_steer_the_generator(modules):
    net, context, generator, _ = modules
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        z_c, z_r = net.encoder(x), context(x)
        image = generator(z_c, z_r)
        assert torch.equal(generator(z_c, z_r), image)  # eval, no noise: deterministic
        other_style = generator(z_c[[1, 2, 3, 0]], z_r)
        other_context = generator(z_c, z_r[[1, 2, 3, 0]])
    for changed in (other_style, other_context):
        assert (changed - image).flatten(1).norm(dim=1).min() > 1e-3 * image.flatten(1).norm(dim=1).max()


def test_noise_injection_makes_the_generator_stochastic():
    torch.manual_seed(1)
    z_c, z_r = torch.randn(2, 64), torch.randn(2, 8, 8, 8)
    quiet = StyleGenerator(64, 8, SMALL_WIDTHS).eval()
    assert not any("noise" in name for name, _ in quiet.named_parameters())
    noisy = StyleGenerator(64, 8, SMALL_WIDTHS, use_noise=True).eval()
    with torch.no_grad():
        assert torch.equal(noisy(z_c, z_r), noisy(z_c, z_r))  # the noise scales start at 0 (StyleGAN2)
        for name, p in noisy.named_parameters():
            if "noise_strength" in name:
                p.fill_(0.5)
        assert not torch.equal(noisy(z_c, z_r), noisy(z_c, z_r))


@pytest.mark.parametrize("equalized_lr", [False, True])
@pytest.mark.parametrize("kernel, upsample", [(3, False), (3, True), (1, False)])
def test_modconv_with_a_style_of_ones_is_a_plain_demodulated_conv(kernel, upsample, equalized_lr):
    torch.manual_seed(2)
    conv = ModulatedConv2d(6, 5, kernel, 16, upsample=upsample, equalized_lr=equalized_lr).double()
    assert torch.equal(conv.affine.bias, torch.ones(6, dtype=torch.float64))  # A's bias starts at 1
    with torch.no_grad():
        conv.affine.weight.zero_()
        conv.bias.normal_()
    x, style = torch.randn(3, 6, 7, 7, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64)
    weight = conv.weight * conv.scale
    weight = weight / torch.sqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
    inputs = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if upsample else x
    plain = F.conv2d(inputs, weight, conv.bias, padding=kernel // 2)
    expected = F.leaky_relu(plain, 0.2) * math.sqrt(2)
    torch.testing.assert_close(conv(x, style), expected, rtol=1e-12, atol=1e-12)
    conv.activate = False
    torch.testing.assert_close(conv(x, style), plain, rtol=1e-12, atol=1e-12)


def test_modconv_modulates_and_demodulates_per_sample():
    torch.manual_seed(3)
    conv = ModulatedConv2d(4, 6, 3, 8, activate=False).double()
    x, style = torch.randn(3, 4, 5, 5, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    kernels = conv.modulated_weight(style)
    torch.testing.assert_close(kernels.square().sum(dim=(2, 3, 4)), torch.ones(3, 6, dtype=torch.float64))
    out = conv(x, style)
    for b in range(3):  # the grouped convolution is one convolution per sample with that sample's kernels
        w = conv.weight * conv.affine(style[b])[None, :, None, None]
        w = w / torch.sqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        torch.testing.assert_close(out[b : b + 1], F.conv2d(x[b : b + 1], w, conv.bias, padding=1))
    plain = ModulatedConv2d(4, 6, 3, 8, demodulate=False, activate=False).double()
    w = plain.weight[None] * plain.affine(style)[:, None, :, None, None]
    torch.testing.assert_close(plain.modulated_weight(style), w)


def test_style_res_block_skip_paths():
    torch.manual_seed(4)
    s = torch.randn(2, 8)
    same = StyleResBlock(6, 6, 8)
    assert same.skip is None
    x = torch.randn(2, 6, 4, 4)
    with torch.no_grad():
        res = same.conv2(same.conv1(x, s), s)
        torch.testing.assert_close(same(x, s), (res + x) / math.sqrt(2))
        for up, mode in [(True, "bilinear"), (True, "nearest")]:
            block = StyleResBlock(6, 6, 8, upsample=up, upsample_mode=mode)
            assert block.skip is not None and block.skip.bias is None
            res = block.conv2(block.conv1(x, s), s)
            skip = block.skip(F.interpolate(x, scale_factor=2, mode=mode))  # 1x1 conv and up-sampling commute
            torch.testing.assert_close(block(x, s), (res + skip) / math.sqrt(2), rtol=1e-5, atol=1e-6)
        assert StyleResBlock(6, 4, 8)(x, s).shape == (2, 4, 4, 4)
    with pytest.raises(ConfigError):
        StyleResBlock(6, 4, 8, upsample=True, upsample_mode="bicubic")


def test_generator_variants_run():
    torch.manual_seed(5)
    z_c, z_r = torch.randn(2, 64), torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        bilinear = StyleGenerator(64, 8, SMALL_WIDTHS).eval()
        nearest = StyleGenerator(64, 8, SMALL_WIDTHS, upsample_mode="nearest").eval()
        nearest.load_state_dict(bilinear.state_dict())
        a, b = bilinear(z_c, z_r), nearest(z_c, z_r)
        assert a.shape == b.shape == (2, 3, 32, 32) and not torch.allclose(a, b)
        normalized = StyleGenerator(64, 8, SMALL_WIDTHS, normalize_codes=True).eval()
        out = normalized(z_c, z_r)
        assert out.shape == (2, 3, 32, 32)
        scale = torch.tensor([3.0, 0.5])  # per-sample L2 normalisation: positive rescaling of a code is invisible
        torch.testing.assert_close(normalized(z_c * scale[:, None], z_r * scale[:, None, None, None]), out)
        mapped = StyleGenerator(64, 8, SMALL_WIDTHS, mapping_layers=2).eval()
        assert len(mapped.mapping) == 4 and mapped(z_c, z_r).shape == (2, 3, 32, 32)
        assert StyleGenerator(64, 8, SMALL_WIDTHS)(z_c, torch.randn(2, 8, 16, 24)).shape == (2, 3, 64, 96)
    with pytest.raises(ConfigError):
        StyleGenerator(64, 8, (16, 32), (False,))


def test_discriminator_other_image_sizes():
    torch.manual_seed(6)
    with torch.no_grad():
        for size, side, blocks in [(64, 2, 4), (96, 3, 4)]:
            disc = Discriminator(image_size=size).eval()
            maps, logit = _outputs(disc.blocks, lambda disc=disc, size=size: disc(torch.randn(2, 3, size, size)))
            assert logit.shape == (2, 1) and len(disc.blocks) == blocks
            assert tuple(maps[-1].shape[1:]) == (256, side, side) and disc.fc1.in_features == 256 * side * side
    with pytest.raises(ConfigError):
        Discriminator(image_size=36)  # 18 -> 9: odd


def test_smaller_configuration_makes_32px_images():
    torch.manual_seed(7)
    encoder, context = SemanticEncoder(16, 1), ContextEncoder(16, 1, 8)
    assert encoder.num_features == 64 and context.conv.in_channels == 64 and context.conv.kernel_size == (1, 1)
    generator = StyleGenerator(64, 8, SMALL_WIDTHS)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        z_c, z_r = encoder(x), context(x)
        assert z_c.shape == (4, 64) and z_r.shape == (4, 8, 8, 8)
        maps, image = _outputs(generator.blocks, lambda: generator(z_c, z_r))
        assert image.shape == (4, 3, 32, 32)
        assert [m.shape[1] for m in maps] == list(SMALL_WIDTHS) and maps[-1].shape[-1] == 32


def test_reconstruction_learns():
    """§3.12 item 12: 100 Adam steps on L_rec = mean_i ||x_i - G(E_c(x_i), E_r(x_i))||_2 alone, on 8 images."""
    torch.manual_seed(8)
    x = F.interpolate(torch.randn(8, 3, 4, 4), size=32, mode="bilinear", align_corners=False)  # smooth images
    x = (x - x.mean()) / x.std()
    encoder, context = SemanticEncoder(16, 1), ContextEncoder(16, 1, 8)
    generator = StyleGenerator(64, 8, SMALL_WIDTHS)
    params = [p for m in (encoder, context, generator) for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(100):
        loss = (x - generator(encoder(x), context(x))).flatten(1).norm(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-5:]) < 0.7 * losses[0], (losses[0], losses[-5:])
