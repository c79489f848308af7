import pytest
from typer.testing import CliRunner

# A tiny but real configuration: small CNN, large batches, so an epoch on `digits` is about ten steps.
FAST = ["--model", "smallcnn-1", "--batch-size", "256", "--no-progress", "--device", "cpu"]


@pytest.fixture
def run_cli():
    from mixshare.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def fast_options():
    return list(FAST)
