import pytest
from mixlab.testing import cli_invoker

# A tiny but real GuidedMix run on the built-in digit-scenes: 32 x 32 crops, 2 warm-up steps, then the full step.
FAST = ["--labels", "20", "--batch-size", "2", "--unlabeled-batch-size", "2", "--steps", "4", "--eval-every", "2",
        "--crop-size", "32", "--set", "warmup_iters=2", "--set", "max_eval_images=20", "--no-progress",
        "--device", "cpu"]  # fmt: skip


@pytest.fixture
def run_cli():
    from guidedmix.cli import app

    return cli_invoker(app)


@pytest.fixture(scope="session")
def fast_options():
    return list(FAST)
