"""`samosa train | eval | recipes | hybrids | separation` on the built-in digits."""

import json

import pytest
from mixlab.engine import load_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error, torch_threads
from PIL import Image


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fast_options):
    from samosa.cli import app
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("runs") / "mt"
    result = CliRunner().invoke(app, ["train", *fast_options, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_the_run_with_the_samosa_terms_and_stored_hybrids(trained):
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 12
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_rec", "loss_omega", "loss_logit", "loss_u"} <= set(records[-1]["train"])
    # 3 cycles of 4 steps, the stored hybrids used from step 4 on: 2 of the first 6 steps, all of the last 6
    assert [round(r["train"]["hybrid_step"], 4) for r in records] == [0.3333, 1.0]
    state = load_checkpoint(trained / "checkpoints" / "last.pt", method="samosa")
    assert {"net", "gates", "decoder"} == {k.split(".")[0] for k in state["model"]}
    assert set(state["optim"]["optimizers"]) == {"main", "rec"}
    assert len(state["extra"]["hybrids"]["x"]) == 10 * 50  # rebuilt after cycle 2 (step 8)


def test_eval_hybrids_and_separation(trained, run_cli, tmp_path):
    result = run_cli("eval", "-c", trained, "--device", "cpu")
    assert result.exit_code == 0 and "top1" in result.output
    grid = tmp_path / "grid.png"
    result = run_cli("hybrids", "-c", trained, "--out", grid, "--rows", "10", "--columns", "4", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (5 * 66 + 2, 11 * 66 + 2)  # (columns + 1) x (rows + 1) tiles of 64 + 2 px
    result = run_cli("separation", "-c", trained, "--partners", "2", "--no-probe", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((trained / "separation.json").read_text())
    assert report["hybrids"] == 2 * 50 and 0 <= report["s_c"] <= 100 and 0 <= report["s_r"] <= 100
    assert report["ratio"] > 0


def test_resume_is_exact_across_the_stored_hybrids(run_cli, fast_options, tmp_path):
    """Stopped after step 6 (after the first stored set, inside cycle 2) and resumed: bit-identical weights."""
    assert_resume_is_exact(run_cli, ["train", *fast_options], tmp_path, stop_after=6)


def test_recipes_and_bad_input(run_cli, tmp_path):
    listing = run_cli("recipes", "--dataset", "cifar10")
    assert listing.exit_code == 0 and "cifar10-500-mt-samosa" in listing.output and "82.4" in listing.output
    shown = run_cli("recipes", "--show", "cifar10-500-mt")
    assert shown.exit_code == 0 and '"use_reconstruction": false' in shown.output
    assert "needs depth >= 16" in one_line_error(run_cli("train", "--model", "wrn10-1", "--out", tmp_path / "x"))
    assert "--base must be one of" in one_line_error(run_cli("train", "--base", "supervised", "--out", tmp_path / "y"))
    assert "no fixmatch recipe for svhn" in one_line_error(
        run_cli("train", "--base", "fixmatch", "--dataset", "svhn", "--out", tmp_path / "y")
    )
    from samosa.cli import choose_recipe

    chosen = choose_recipe({"base": "mixmatch", "recipe": None, "resume": None, "dataset": None})
    assert chosen == "digits-100-mixmatch-samosa"
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # the digits recipe's cycles span 4 epochs: a window from epoch 5 on would never use a hybrid
    never = one_line_error(run_cli("train", "--set", "hybrid_window=[5,6]", "--out", tmp_path / "z"))
    assert "hybrid_window=[5, 6) epochs is never reached: each cycle's" in never and not (tmp_path / "z").exists()


def test_mnistm_run_reports_the_background_criterion(run_cli, tmp_path):
    """The case study's data end to end: a tiny MT + SAMOSA run on miniature MNIST + BSDS500 files, then `separation`
    with the background criterion of §2.8 (the semantic parent's mask, the two parents' BSDS crops)."""
    from mixlab.testing import write_bsds500, write_mnist

    data = tmp_path / "data"
    write_mnist(data / "mnist", "train", 200, seed=2)
    write_mnist(data / "mnist", "test", 40, seed=3)
    write_bsds500(data / "BSR" / "BSDS500" / "data" / "images", {"train": 3, "val": 2, "test": 2})
    out = tmp_path / "mnistm"
    result = run_cli(
        "train", "--dataset", "mnistm", "--data-root", data, "--labels", "20", "--model", "wrn16-1",
        "--batch-size", "4", "--steps", "6", "--eval-every", "6", "--set", "unlabeled_batch_size=8",
        "--set", "num_gates=8", "--set", "hybrids_per_labeled=2", "--set", "hybrid_window=[0,1]", "--no-progress",
        "--device", "cpu", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run_cli("separation", "-c", out, "--partners", "3", "--no-probe", "--data-root", data, "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "separation.json").read_text())
    assert report["hybrids"] == 60 and 0 <= report["s_r_background"] <= 100 and report["ratio_background"] > 0
