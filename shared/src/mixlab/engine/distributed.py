"""torchrun-aware process-group set-up and the few collectives the engine needs.

The same command runs on one process or under `torchrun --nproc-per-node N` (and multi-node torchrun): the
environment variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK) decide. CPU runs use gloo, CUDA runs NCCL.

torchrun starts its workers in their own session, so a launcher killed with SIGKILL (an OOM killer, a scheduler,
`kill -9`) would leave them training and writing checkpoints; `exit_with_launcher` (called by `init_distributed`)
makes the kernel send each worker SIGTERM when its launcher dies.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mixlab.errors import ConfigError

# The parent when this module is first imported (before any training): if the launcher dies before
# `exit_with_launcher` arms the parent-death signal, this process is re-parented (to init or a subreaper) and
# `os.getppid()` no longer matches.
_PARENT_AT_IMPORT = os.getppid()

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: device types whose tensors SyncBatchNorm can synchronise (torch.nn.SyncBatchNorm.forward's own list)
SYNC_BN_DEVICE_TYPES = ("cuda", "hpu", "xpu")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def under_torchrun() -> bool:
    """True in a worker started by torchrun / a torch elastic agent (even with one process)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


_armed = False


def exit_with_launcher(sig: int = signal.SIGTERM) -> bool:
    """Under torchrun on Linux, have the kernel send `sig` to this process when its launcher dies.

    Returns True when the parent-death signal is armed. Exits at once (status 128 + sig, as if the signal had
    arrived) when the launcher already died before the signal could be armed: the parent is no longer the one this
    process started under. Elsewhere (not torchrun, not Linux, no libc) it does nothing and returns False.
    Idempotent; `init_distributed` calls it first thing.
    """
    global _armed
    if _armed:
        return True
    if not under_torchrun() or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        zero = ctypes.c_ulong(0)
        if libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(int(sig)), zero, zero, zero) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _armed = True
    if os.getppid() != _PARENT_AT_IMPORT:  # the launcher died before the signal was armed
        print(
            f"rank {os.environ.get('RANK', '?')}: the torchrun launcher (pid {_PARENT_AT_IMPORT}) is gone; exiting",
            file=sys.stderr,
        )
        os._exit(128 + int(sig))
    return True


def check_sync_bn(device: torch.device, info: DistInfo) -> bool:
    """Refuse `--sync-bn` where SyncBatchNorm cannot run: several processes on CPU (gloo) or MPS.

    Returns True when SyncBatchNorm will synchronise statistics (several processes on CUDA-like devices), False when
    the option is a no-op (one process: there is nothing to synchronise with).
    """
    if not info.enabled:
        return False
    if device.type not in (*SYNC_BN_DEVICE_TYPES, torch._C._get_privateuse1_backend_name()):
        where = "CPU/gloo" if device.type == "cpu" else device.type.upper()
        raise ConfigError(f"--sync-bn needs CUDA devices (SyncBatchNorm); on {where} drop --sync-bn")
    return True


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun described, or return a single-process DistInfo.

    Under torchrun it first arms the parent-death signal (`exit_with_launcher`), so the ranks stop with their
    launcher.
    """
    exit_with_launcher()
    if not launched_by_torchrun():
        return DistInfo()
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def any_rank_true(flag: bool, device: torch.device, info: DistInfo) -> bool:
    """True on every rank when the flag is true on at least one (so all ranks stop together)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(t, info).item() > 0)


def shard_range(n: int, info: DistInfo) -> tuple[int, int]:
    """Contiguous [start, stop) of n items for this rank; shards differ in size by at most one."""
    per, extra = divmod(n, info.world_size)
    start = info.rank * per + min(info.rank, extra)
    return start, start + per + (1 if info.rank < extra else 0)


def gather_concat(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's tensor along dim 0 in rank order (shards may differ in length)."""
    if not info.enabled:
        return t
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(info.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def broadcast_buffers(module: torch.nn.Module, info: DistInfo, src: int = 0) -> None:
    """Give every rank rank `src`'s buffers (BatchNorm running statistics...).

    DDP broadcasts rank 0's buffers at the start of each training forward, so after the last one every rank holds
    its own update of them: without this, each rank would evaluate its shard of the test set with slightly different
    running statistics, and the gathered metrics would not be those of the saved (rank 0) model.
    """
    if not info.enabled:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=src)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's Python object on every rank (e.g. the run directory it created)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
