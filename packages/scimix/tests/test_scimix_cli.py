"""`scimix train | train-generator | eval | recipes | hybrids | transfer` on the built-in digits."""

import json

import pytest
from mixlab.engine import load_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error, torch_threads
from PIL import Image

WIDTHS = ["--set", "g_widths=[8,8,16,8,8]"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fast_options):
    """A generator-only run, a classifier run on it, and a fully supervised oracle."""
    from mixlab.testing import cli_invoker
    from scimix.cli import app

    run = cli_invoker(app)
    root = tmp_path_factory.mktemp("runs")
    result = run("train-generator", *fast_options, *WIDTHS, "--out", root / "gen")
    assert result.exit_code == 0, result.output
    result = run("train", *fast_options, *WIDTHS, "--generator", root / "gen", "--out", root / "cls")
    assert result.exit_code == 0, result.output
    oracle = ["--recipe", "digits-oracle", "--steps", "2", "--eval-every", "2", "--batch-size", "8", "--no-progress",
              "--device", "cpu", "--set", "unlabeled_batch_size=8"]  # fmt: skip
    assert run("train", *oracle, "--out", root / "oracle").exit_code == 0
    return root


def test_two_phases_in_one_run_and_from_a_generator_run(runs):
    gen = json.loads((runs / "gen" / "summary.json").read_text())
    assert gen["phase"] == "generator" and gen["status"] == "completed" and gen["steps"] == 3
    cls = json.loads((runs / "cls" / "summary.json").read_text())
    assert cls["phase"] == "classifier" and cls["steps"] == 4
    records = [json.loads(line) for line in (runs / "cls" / "metrics.jsonl").read_text().splitlines()]
    assert "loss_contradict" in records[-1]["train"]
    a = load_checkpoint(runs / "gen" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(runs / "cls" / "checkpoints" / "last.pt")["model"]
    frozen = [k for k in a if k.startswith(("generator.", "context.", "gen_net.", "disc."))]
    assert frozen and all((a[k] == b[k]).all() for k in frozen)  # the generator came from the run, untouched


def test_eval_hybrids_and_transfer(runs, run_cli, tmp_path):
    assert run_cli("eval", "-c", runs / "gen", "--device", "cpu").exit_code == 0
    assert run_cli("eval", "-c", runs / "cls", "--device", "cpu").exit_code == 0
    grid = tmp_path / "grid.png"
    result = run_cli("hybrids", "-c", runs / "gen", "--out", grid, "--rows", "3", "--columns", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (3 * 66 + 2, 4 * 66 + 2)
    result = run_cli("transfer", "-c", runs / "gen", "--oracle", runs / "oracle", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((runs / "gen" / "transfer.json").read_text())
    assert report["pairs"] == 360 and report["mixup_s_r"] == 0.0  # MixUp hybrids stay closer to the dominant parent
    assert 0 <= report["scimix_s_c"] <= 100 and 0 <= report["scimix_s_r"] <= 100
    assert 0 <= report["fda_s_c"] <= 100 and 0 <= report["fda_s_r"] <= 100
    assert "without a SciMix generator" in one_line_error(run_cli("hybrids", "-c", runs / "oracle", "--device", "cpu"))


@pytest.mark.parametrize("stop", [2, 5], ids=["in-the-generator-phase", "in-the-classifier-phase"])
def test_resume_is_exact_in_each_phase(run_cli, fast_options, tmp_path, stop):
    assert_resume_is_exact(run_cli, ["train", *fast_options, *WIDTHS], tmp_path, stop_after=stop)


def test_recipes_and_bad_input(run_cli, tmp_path):
    listing = run_cli("recipes", "--dataset", "svhn")
    assert listing.exit_code == 0 and "svhn-60-scimix-mt" in listing.output and "83.4" in listing.output
    error = one_line_error(run_cli("train", "--generator", tmp_path / "none", "--out", tmp_path / "x"))
    assert "none" in error
    error = one_line_error(run_cli("train-generator", "--set", "train_classifier=true", "--out", tmp_path / "y"))
    assert "sets train_classifier itself" in error


def test_cub200_runs_both_phases_at_64_px_on_a_miniature_release(run_cli, tmp_path):
    """Table VI's setting end to end: image_size reaches the loader, the discriminator grows to 64 px, every
    training image is labeled and the classifier phase is supervised with L_contradict."""
    import json

    from mixlab.testing import torch_threads, write_cub200

    write_cub200(tmp_path, num_classes=3, train_per_class=4)
    out = tmp_path / "run"
    args = ["train", "--recipe", "cub200-64-scimix-supervised", "--data-root", tmp_path, "--labels", "12",
            "--batch-size", "4", "--steps", "2", "--eval-every", "2", "--set", "unlabeled_batch_size=4",
            "--set", "gen_epochs=1", "--set", "gen_batch_size=4", "--set", "gen_unlabeled_batch_size=4",
            "--set", "gen_eval_every=3", "--set", "hybrid_window=[0,100]", "--set", "g_widths=[8,8,16,8,8]",
            "--no-progress", "--device", "cpu", "--out", out]  # fmt: skip
    with torch_threads(1):
        result = run_cli(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and set(summary["phases"]) == {"generator", "classifier"}
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["image_size"] == 64 and config["variant"] == "supervised"
    split = json.loads((out / "split.json").read_text())
    assert len(split["labeled"]) == 12


def test_transfer_with_the_adain_row(runs, run_cli, tmp_path):
    import torch
    from scimix.adain import adain_decoder, vgg_encoder

    torch.save(vgg_encoder().state_dict(), tmp_path / "vgg.pth")  # random weights in the release's layouts
    torch.save(adain_decoder().state_dict(), tmp_path / "decoder.pth")
    out = tmp_path / "transfer.json"
    files = ["--adain-vgg", tmp_path / "vgg.pth", "--adain-decoder", tmp_path / "decoder.pth"]
    result = run_cli(
        "transfer", "-c", runs / "gen", "--oracle", runs / "oracle", *files, "--json", out, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert 0 <= report["adain_s_c"] <= 100 and 0 <= report["adain_s_r"] <= 100 and "scimix_s_c" in report
    half = run_cli("transfer", "-c", runs / "gen", "--oracle", runs / "oracle", *files[:2], "--device", "cpu")
    assert "needs both --adain-vgg and --adain-decoder" in one_line_error(half)
