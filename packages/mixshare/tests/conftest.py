import pytest
from mixlab.testing import cli_invoker

# A tiny but real configuration: small CNN, large batches, so an epoch on `digits` is about ten steps.
FAST = ["--model", "smallcnn-1", "--batch-size", "256", "--no-progress", "--device", "cpu"]


@pytest.fixture
def run_cli():
    from mixshare.cli import app

    return cli_invoker(app)


@pytest.fixture
def fast_options():
    return list(FAST)
