"""The SAMOSA / SciMix WRN-28-2 trunk (spec samosa-scimix §1.3): layout, shapes and parameter counts."""

import pytest
import torch
from mixlab.errors import ConfigError
from mixlab.models import WideResTrunk, count_parameters


def test_wrn28_2_trunk_has_the_spec_parameter_count_and_shapes():
    trunk = WideResTrunk(28, 2)
    assert count_parameters(trunk) == 1_466_064
    assert count_parameters(WideResTrunk(28, 2, shortcut_bn=True)) == 1_466_064 + 448  # the MixMatch runs' extra BNs
    out, before_last = trunk(torch.randn(2, 3, 32, 32))
    assert out.shape == before_last.shape == (2, 128, 8, 8) and trunk.num_features == 128
    assert len(trunk.blocks) == 12 and trunk.blocks[0].shortcut is not None and trunk.blocks[1].shortcut is None
    assert all(not isinstance(m, torch.nn.Conv2d) or m.bias is None for m in trunk.modules())


def test_the_shortcut_takes_the_raw_block_input():
    """Table A.5: the 1x1 shortcut is applied to x, not to the activated tensor."""
    trunk = WideResTrunk(10, 1).eval()
    block = trunk.blocks[1]  # 16 -> 32, stride 2: a 1x1 shortcut
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        residual = block.conv2(torch.nn.functional.leaky_relu(block.bn2(block.conv1(
            torch.nn.functional.leaky_relu(block.bn1(x), 0.1))), 0.1))  # fmt: skip
        assert torch.allclose(block(x), block.shortcut(x) + residual)


def test_depth_must_be_6n_plus_4():
    with pytest.raises(ConfigError, match="6n"):
        WideResTrunk(27, 2)
