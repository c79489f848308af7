"""SAMOSA's modules against spec samosa-scimix §2.2 and the invariants of §2.12 (1-3)."""

import pytest
import torch
from mixlab.models import count_parameters
from samosa.modules import DualHeadClassifier, GatedDecoder, GateEncoder, SamosaNet


@pytest.fixture(scope="module")
def modules():
    torch.manual_seed(0)
    net = SamosaNet(28, 2, 10).eval()
    gates = GateEncoder(28, 2, 64).eval()
    decoder = GatedDecoder(128, 64).eval()
    return net, gates, decoder


def test_parameter_counts_of_the_spec(modules):
    net, gates, decoder = modules
    assert count_parameters(net.encoder) == 1_466_064  # E_c
    assert count_parameters(net.classifier) == 2_836  # C, K = 10
    assert count_parameters(gates) == 1_990_416  # E_r
    assert count_parameters(decoder) == 785_843  # D, plain blocks
    assert count_parameters(SamosaNet(28, 2, 10, shortcut_bn=True).encoder) == 1_466_064 + 448
    assert count_parameters(DualHeadClassifier(128, 100)) == 256 + 2 * (128 * 100 + 100)
    assert count_parameters(DualHeadClassifier(128, 10, heads=1)) == 256 + 1290  # MixMatch / FixMatch: primary only


def test_shapes(modules):
    net, gates, decoder = modules
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        z_c, u = net.encoder(x)
        assert z_c.shape == u.shape == (4, 128, 8, 8)
        assert net(x).shape == (4, 2, 10)
        z_r = gates(x)
        assert z_r.shape == (4, 64) and (z_r >= 0).all() and torch.allclose(z_r.sum(1), torch.ones(4), atol=1e-5)
        assert decoder.maps(z_c).shape == (4, 64, 32, 32) and decoder(z_c, z_r).shape == (4, 3, 32, 32)
        assert decoder.first(z_c).shape == u.shape


def test_gating_semantics(modules):
    _, _, decoder = modules
    z_c = torch.randn(2, 128, 8, 8)
    one_hot = torch.zeros(2, 64)
    one_hot[:, 5] = 1.0
    with torch.no_grad():
        h = decoder.maps(z_c)
        gated = h * one_hot[:, :, None, None]
        assert (gated[:, :5] == 0).all() and (gated[:, 6:] == 0).all() and not (gated[:, 5] == 0).all()
        other = torch.softmax(torch.randn(2, 64), 1)
        assert not torch.allclose(decoder(z_c, one_hot), decoder(z_c, other))  # z_r changes the image...
        assert torch.equal(decoder.first(z_c), decoder.first(z_c.clone()))  # ... D^(0) depends on z_c only


def test_trace_records_the_features_of_a_pass(modules):
    net, _, _ = modules
    x = torch.randn(3, 3, 32, 32)
    net.trace = []
    with torch.no_grad():
        logits = net(x)
    ((z_c, u),) = net.trace
    net.trace = None
    assert torch.allclose(logits, net.classifier(z_c)) and u.shape == (3, 128, 8, 8)


def test_residual_and_extra_bn_variants_and_a_smaller_trunk():
    residual = GatedDecoder(128, 64, residual=True)
    assert count_parameters(residual) > 785_843  # two convolutions per block
    with_bn = GatedDecoder(128, 64, extra_bn_resample=True)
    assert count_parameters(with_bn) == 785_843 + 2 * (64 + 64)  # BN after the two stride-2 deconvolutions
    small = SamosaNet(10, 1, 10)
    z_c, _ = small.encoder(torch.randn(2, 3, 32, 32))
    assert z_c.shape == (2, 64, 8, 8)
    assert GatedDecoder(64, 32)(z_c, torch.softmax(torch.randn(2, 32), 1)).shape == (2, 3, 32, 32)
