import pytest
from mixlab.testing import cli_invoker

# A tiny but real configuration: small CNN, large batches, so an epoch on `digits` is a handful of steps.
FAST = ["--model", "smallcnn-1", "--batch-size", "128", "-b", "2", "--no-progress", "--device", "cpu"]


@pytest.fixture
def run_cli():
    from mixmo.cli import app

    return cli_invoker(app)


@pytest.fixture
def fast_options():
    return list(FAST)
