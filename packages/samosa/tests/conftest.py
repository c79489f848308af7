import pytest
from mixlab.testing import cli_invoker

# A tiny but real SAMOSA-MT run on the built-in digits: 12 steps in 3 cycles of 4, the stored hybrids made at
# steps 4 and 8 and used from the start of cycles 2 and 3.
FAST = ["--recipe", "digits-100-mt-samosa", "--labels", "50", "--batch-size", "8", "--steps", "12",
        "--eval-every", "6", "--set", "unlabeled_batch_size=16", "--set", "hybrid_window=[0,1]",
        "--set", "num_gates=16", "--no-progress", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def run_cli():
    from samosa.cli import app

    return cli_invoker(app)


@pytest.fixture(scope="session")
def fast_options():
    return list(FAST)
