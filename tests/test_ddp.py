"""Two-process DDP (gloo, CPU) through torchrun: the same command as a single-process run."""

import json
import subprocess
import sys
import textwrap

import pytest


def _torchrun(args, tmp_path, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    env_opts = {"OMP_NUM_THREADS": "1"}
    import os

    return subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env_opts}
    )


@pytest.mark.slow
def test_mixmo_trains_under_torchrun_with_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    result = _torchrun(
        [
            "-m",
            "mixmo",
            "train",
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
            str(out),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    # each process takes a disjoint shard: 1437 images x b=2 / (64 per process x 2 processes) batches
    assert summary["steps"] == (1437 * 2) // (64 * 2)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # rank 0 logs alone


ENGINE_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from torch import nn
    from mixlab.engine import Method, RunOptions, StepOutput, Trainer

    class Toy(Method):
        name = "toy"
        def build(self, rt):
            self.rt = rt
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(64, 4, generator=g); self.y = (self.x[:, 0] > 0).long()
            self.trainable = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
            self.optimizer = torch.optim.SGD(self.trainable.parameters(), lr=0.5)
            self.lo, self.hi = rt.shard(64)
            self.steps_per_epoch = (self.hi - self.lo) // 8
        def train_batches(self, epoch, start):
            for i in range(start, self.steps_per_epoch):
                yield torch.arange(self.lo + 8 * i, self.lo + 8 * (i + 1))
        def train_step(self, idx, progress):
            # the two ranks see different data: without gradient averaging their weights would drift apart
            loss = nn.functional.cross_entropy(self.forward_module(self.x[idx]), self.y[idx])
            return StepOutput(loss, len(idx))
        def evaluate(self, progress):
            logits = self.rt.gather(self.trainable(self.x[self.lo:self.hi]))
            return {"top1": float(logits.shape[0])}

    method = Toy()
    Trainer(method, RunOptions(package="toy", dataset="toy", epochs=2, device="cpu", progress=False,
                               out=sys.argv[1])).fit()
    torch.save(method.trainable.state_dict(), f"{sys.argv[1]}/rank{os.environ['RANK']}.pt")
    """
)


@pytest.mark.slow
def test_ddp_keeps_replicas_identical_and_gathers_evaluation(tmp_path):
    script = tmp_path / "toy_ddp.py"
    script.write_text(ENGINE_SCRIPT)
    result = _torchrun([str(script), str(tmp_path / "run")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    import torch

    a = torch.load(tmp_path / "run" / "rank0.pt")
    b = torch.load(tmp_path / "run" / "rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["top1"] == 64.0  # both shards' outputs gathered


@pytest.mark.slow
def test_realmix_ssl_loop_trains_under_torchrun_with_two_gloo_processes(tmp_path):
    """Interleaved MixMatch forwards + the extended pool + EMA under DDP; each rank draws its own slice of the streams."""
    out = tmp_path / "ssl"
    result = _torchrun(
        [
            "-m",
            "realmix",
            "train",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--batch-size",
            "8",
            "--set",
            "extend_copies=2",
            "--no-progress",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed" and summary["steps"] == 4
    import torch
    from mixlab.engine import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert len(state["rng"]) == 2  # both ranks' random states, for an exact resume
    assert all(torch.isfinite(v).all() for v in state["extra"]["ema"]["module"].values() if v.is_floating_point())
