import pytest
from mixlab.testing import cli_invoker

# A tiny but real SciMix run on the built-in digits: 3 generator steps, then 4 classifier steps with hybrids.
FAST = ["--labels", "50", "--batch-size", "4", "--steps", "4", "--eval-every", "2", "--set", "unlabeled_batch_size=8",
        "--set", "gen_epochs=0.02", "--set", "gen_batch_size=4", "--set", "gen_unlabeled_batch_size=8",
        "--set", "gen_eval_every=3", "--set", "hybrid_window=[0,100]", "--set", "num_hybrid_batches=2",
        "--no-progress", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def run_cli():
    from scimix.cli import app

    return cli_invoker(app)


@pytest.fixture(scope="session")
def fast_options():
    return list(FAST)
