"""`mixvit train` under torchrun: two gloo processes on CPU, the same command as a single-process run."""

import json
import os
import subprocess
import sys

import pytest
import torch
from mixlab.engine import load_checkpoint


@pytest.mark.slow
def test_mixvit_trains_under_torchrun_with_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "mixvit",
        "train",
        "--epochs",
        "1",
        "--model",
        "convit1-32",
        "--set",
        "patch_size=8",
        "--set",
        "autoaugment=none",
        "--batch-size",
        "120",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    # each process takes a disjoint shard of the 1437 images: floor(718 x b=3 / 120) batches of 120 rows
    assert summary["steps"] == (1437 // 2) * 3 // 120
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # rank 0 logs alone
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["world_size"] == 2
    state = load_checkpoint(out / "checkpoints" / "last.pt", method="mixvit")
    assert torch.isfinite(state["model"]["attribution.embedding"]).all()
