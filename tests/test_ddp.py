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
            self.total_steps, self.eval_every = 2 * self.steps_per_epoch, self.steps_per_epoch
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
    Trainer(method, RunOptions(package="toy", dataset="toy", device="cpu", progress=False,
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


@pytest.mark.slow
def test_samosa_trains_under_torchrun_with_two_gloo_processes(tmp_path):
    """Two optimizers after one backward, four DDP-wrapped networks (E_c+C, E_r, D), the stored hybrids of a cycle
    end: the replicas stay identical."""
    out = tmp_path / "samosa"
    args = ["-m", "samosa", "train", "--recipe", "digits-100-mt-samosa", "--labels", "50", "--batch-size", "4",
            "--steps", "6", "--eval-every", "3", "--set", "unlabeled_batch_size=8", "--set", "hybrid_window=[0,1]",
            "--set", "num_gates=16", "--set", "hybrids_per_labeled=2", "--no-progress", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    result = _torchrun(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed" and summary["steps"] == 6
    from mixlab.engine import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert set(state["optim"]["optimizers"]) == {"main", "rec"} and len(state["extra"]["hybrids"]["x"]) == 2 * 50


@pytest.mark.slow
def test_scimix_trains_both_phases_under_torchrun_with_two_gloo_processes(tmp_path):
    """The generator phase (manual D then G steps, four DDP-wrapped networks, the frozen criterion) and the
    classifier phase (L_contradict through the frozen generator) on 2 processes."""
    out = tmp_path / "scimix"
    args = ["-m", "scimix", "train", "--labels", "50", "--batch-size", "4", "--steps", "4", "--eval-every", "2",
            "--set", "unlabeled_batch_size=8", "--set", "gen_epochs=0.04", "--set", "gen_batch_size=4",
            "--set", "gen_unlabeled_batch_size=8", "--set", "gen_eval_every=3", "--set", "hybrid_window=[0,100]",
            "--set", "g_widths=[8,8,16,8,8]", "--no-progress", "--device", "cpu", "--out", str(out)]  # fmt: skip
    result = _torchrun(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed" and set(summary["phases"]) == {
        "generator", "classifier"}  # fmt: skip


@pytest.mark.slow
def test_guidedmix_trains_under_torchrun_with_two_gloo_processes(tmp_path):
    """Pass A through DDP, pass B through the bare module, one backward per step on 2 processes; the evaluation sums
    the confusion matrices of the ranks' shards of the validation set."""
    out = tmp_path / "guidedmix"
    args = ["-m", "guidedmix", "train", "--labels", "20", "--batch-size", "2", "--unlabeled-batch-size", "2",
            "--steps", "4", "--eval-every", "2", "--crop-size", "32", "--set", "warmup_iters=2",
            "--set", "max_eval_images=20", "--no-progress", "--device", "cpu", "--out", str(out)]  # fmt: skip
    result = _torchrun(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed" and summary["steps"] == 4
    assert len((out / "labeled.txt").read_text().split()) == 20


# -- the ranks stop with their launcher ---------------------------------------------------------------------------
def _children(pid):
    """PIDs of the direct children of `pid`, from /proc/*/stat (works without CONFIG_PROC_CHILDREN)."""
    import pathlib

    found = set()
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:  # state, ppid, ...
            found.add(int(stat.parent.name))
    return found


def _alive(pid, marker="mixmo"):
    """Running (not a zombie) and still the process we started (PIDs can be reused)."""
    import pathlib

    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and marker.encode() in cmdline


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc are Linux-only")
def test_ranks_exit_when_the_torchrun_launcher_is_killed(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "long"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "mixmo", "train", "--dataset", "digits", "--model", "smallcnn-1", "--epochs", "500"]
    cmd += ["--members", "1", "--batch-repetitions", "1", "--batch-size", "32", "--device", "cpu", "--no-progress"]
    cmd += ["--out", str(out)]
    log = (tmp_path / "torchrun.log").open("w")
    launcher = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    workers = set()
    try:
        deadline = time.monotonic() + 120
        # training has started: both ranks are past init_distributed (rank 0 wrote config.json after the model build)
        while not ((out / "config.json").is_file() and len(workers) == 2):
            assert launcher.poll() is None, (tmp_path / "torchrun.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the ranks did not start training within 120 s"
            workers = _children(launcher.pid)
            time.sleep(0.2)
        assert all(_alive(pid) for pid in workers)
        launcher.kill()  # SIGKILL: the launcher gets no chance to stop its workers itself
        launcher.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = sorted(pid for pid in workers if _alive(pid))
        assert not survivors, f"ranks {survivors} kept running after their launcher was killed"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


# -- the launcher guard and the --sync-bn check, without torchrun ---------------------------------------------------
PDEATHSIG_SCRIPT = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys
    import mixlab.engine.distributed as d

    if sys.argv[1] == "orphan":
        d._PARENT_AT_IMPORT = -1  # as if the launcher had died before the signal was armed
    armed = d.exit_with_launcher()
    sig = ctypes.c_int(0)
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    print(armed, sig.value)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
@pytest.mark.parametrize(
    ("env", "mode", "expected_rc", "expected_out"),
    [
        ({}, "normal", 0, "False 0"),  # not under torchrun: nothing armed
        ({"TORCHELASTIC_RUN_ID": "x"}, "normal", 0, "True 15"),  # SIGTERM when the launcher dies
        ({"TORCHELASTIC_RUN_ID": "x"}, "orphan", 128 + 15, ""),  # launcher already gone: exit at once
    ],
)
def test_exit_with_launcher_arms_the_parent_death_signal(tmp_path, env, mode, expected_rc, expected_out):
    import os

    script = tmp_path / "pdeathsig.py"
    script.write_text(PDEATHSIG_SCRIPT)
    base = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_RUN_ID"}
    result = subprocess.run(
        [sys.executable, str(script), mode], capture_output=True, text=True, timeout=120, env={**base, **env}
    )
    assert result.returncode == expected_rc, result.stderr[-3000:]
    assert result.stdout.strip() == expected_out


def test_sync_bn_is_refused_on_cpu_processes_with_a_one_line_error():
    import torch
    from mixlab.engine.distributed import DistInfo, check_sync_bn
    from mixlab.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"^--sync-bn needs CUDA devices \(SyncBatchNorm\); on CPU/gloo drop --sync-bn$"
    ):
        check_sync_bn(torch.device("cpu"), DistInfo(rank=0, world_size=2))
    assert check_sync_bn(torch.device("cpu"), DistInfo()) is False  # one process: nothing to synchronise
    assert check_sync_bn(torch.device("cuda", 0), DistInfo(rank=1, world_size=2)) is True


BUFFERS_SCRIPT = textwrap.dedent(
    """
    import os, torch
    import torch.distributed as dist
    from torch import nn
    from mixlab.engine.distributed import DistInfo, broadcast_buffers

    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    bn = nn.BatchNorm1d(3).train()
    for _ in range(rank + 1):  # each rank's own running statistics, as after DDP's last training forward
        bn(torch.randn(8, 3) + 10 * rank)
    broadcast_buffers(bn, DistInfo(rank=rank, world_size=2))
    mine = torch.cat([bn.running_mean, bn.running_var, bn.num_batches_tracked.float().view(1)])
    everyone = [torch.zeros_like(mine) for _ in range(2)]
    dist.all_gather(everyone, mine)
    assert torch.equal(everyone[0], everyone[1]), everyone
    assert everyone[0][:3].abs().max() < 5 and everyone[0][6] == 1, everyone  # rank 0's (inputs centred on 0)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_broadcast_buffers_gives_every_rank_rank_zeros_running_statistics(tmp_path):
    script = tmp_path / "buffers.py"
    script.write_text(BUFFERS_SCRIPT)
    result = _torchrun([str(script)], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
