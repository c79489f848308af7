import pytest
from mixlab.testing import cli_invoker

# A tiny but real run on the built-in digits: few steps, small batches, the small WRN of the digits recipes.
FAST = [
    "--steps",
    "4",
    "--eval-every",
    "2",
    "--batch-size",
    "8",
    "--no-progress",
    "--device",
    "cpu",
    "--set",
    "extend_copies=2",
]


@pytest.fixture
def run_cli():
    from realmix.cli import app

    return cli_invoker(app)


@pytest.fixture
def fast_options():
    return list(FAST)
