"""The real on-disk path end to end: miniature CIFAR-100 and CIFAR-100-C in their release formats."""

import json

import numpy as np
from mixlab.data import STANDARD_CORRUPTIONS
from mixlab.testing import write_cifar100


def _write_cifar100c(root, per_severity=2, seed=1):
    rng = np.random.default_rng(seed)
    folder = root / "CIFAR-100-C"
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", np.tile(rng.integers(0, 100, per_severity), 5))
    for name in STANDARD_CORRUPTIONS:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (5 * per_severity, 32, 32, 3), dtype=np.uint8))


def test_train_and_eval_on_cifar100_with_cifar100c_robustness(run_cli, tmp_path):
    data = tmp_path / "data"
    write_cifar100(data)
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "--dataset",
        "cifar100",
        "--data-root",
        data,
        "--epochs",
        "1",
        "--model",
        "smallcnn-1",
        "--batch-size",
        "64",
        "-b",
        "2",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 128 * 2 // 64 and summary["dataset"] == "cifar100"

    report = tmp_path / "report.json"
    no_c = run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--data-root", data, "--device", "cpu")
    assert no_c.exit_code == 0 and "CIFAR-100-C not evaluated" in no_c.output
    _write_cifar100c(data)
    result = run_cli(
        "eval", "-c", out / "checkpoints" / "last.pt", "--data-root", data, "--device", "cpu", "--json", report
    )
    assert result.exit_code == 0, result.output
    robustness = json.loads(report.read_text())["cifar100c"]
    assert robustness["images"] == 15 * 5 * 2
    assert 0 <= robustness["c_top1"] <= robustness["c_top5"] <= 100 and robustness["c_nll"] > 0
