import pytest
import torch
from mixlab.testing import cli_invoker, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def run_cli():
    from mixvit.cli import app

    return cli_invoker(app)


@pytest.fixture
def tiny_vit():
    """A factory of tiny float64 ConViTs: 16x16 images, patch 4 (a 4x4 grid of 16 tokens), width 32, 4 heads."""
    from mixlab.models import create_model

    def make(depth: int = 2, num_classes: int = 5, seed: int = 0, **options):
        torch.manual_seed(seed)
        options = {"img_size": 16, "patch_size": 4, "num_heads": 4, **options}
        return create_model(f"convit{depth}-32", num_classes, **options).double()

    return make
