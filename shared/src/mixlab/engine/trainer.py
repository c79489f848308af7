"""The one training loop every mixlab method runs on (DESIGN.md §6)."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mixlab.engine import rundir
from mixlab.engine.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from mixlab.engine.device import Precision, device_description, resolve_device
from mixlab.engine.distributed import (
    DistInfo,
    any_rank_true,
    barrier,
    broadcast_object,
    init_distributed,
)
from mixlab.engine.logging import MetricLogger
from mixlab.engine.method import Method, Runtime, TrainProgress
from mixlab.engine.progress import TrainingProgressBar
from mixlab.errors import ConfigError, MixlabError, RunDirError


class TrainingDiverged(MixlabError):
    """The loss became NaN or infinite."""


@dataclass
class RunOptions:
    """Runtime options of a training run: where and how it runs, not what it learns."""

    package: str
    dataset: str
    epochs: int
    device: str = "auto"
    amp: str = "off"
    compile: bool = False
    channels_last: bool | None = None  # None: on for CUDA, off elsewhere
    sync_bn: bool = False
    seed: int = 0
    out: Path | None = None
    resume: Path | None = None
    eval_every: int = 1  # epochs
    checkpoint_every: int = 0  # optimizer steps; 0 = at the end of each epoch only
    log_every: int = 20  # steps between loss read-outs (each one syncs the device)
    stop_after_steps: int | None = None  # leave a resumable checkpoint and stop, as a pre-emption would
    progress: bool = True

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, not {self.epochs}")
        if self.eval_every < 1:
            raise ConfigError(f"--eval-every must be at least 1, not {self.eval_every}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be >= 0, not {self.checkpoint_every}")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            raise ConfigError(f"--stop-after-steps must be at least 1, not {self.stop_after_steps}")


def _unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return getattr(module, "module", module)  # DDP


def _gather_rng(info: DistInfo) -> list[dict[str, Any]]:
    mine = rng_state()
    if not info.enabled:
        return [mine]
    states: list[Any] = [None] * info.world_size
    dist.all_gather_object(states, mine)
    return states


class Trainer:
    """Runs a `Method` under `RunOptions`; `fit()` returns the summary written to summary.json."""

    def __init__(self, method: Method, options: RunOptions):
        options.validate()
        self.method = method
        self.options = options
        local_rank = int(__import__("os").environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(options.device, local_rank)
        self.precision = Precision(options.amp, self.device)
        self.dist = init_distributed(self.device)
        channels_last = self.device.type == "cuda" if options.channels_last is None else options.channels_last
        self.runtime = Runtime(self.device, self.dist, self.precision, channels_last)
        self.run_dir: Path | None = None

    # -- set-up ---------------------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> Path:
        opts = self.options
        path: Path | None = None
        error: str | None = None
        if self.dist.is_main:
            try:
                if opts.resume is not None:
                    path = rundir.resumable_run_dir(opts.resume)
                else:
                    path = rundir.create_run_dir(opts.out, opts.package, opts.dataset)
            except MixlabError as exc:
                error = str(exc)
        path, error = broadcast_object((path, error), self.dist)
        if error is not None:
            raise RunDirError(error)
        return Path(path)

    def _wrap(self) -> None:
        method, rt = self.method, self.runtime
        module = method.trainable
        if rt.channels_last:
            module.to(memory_format=torch.channels_last)
        forward: nn.Module = module
        if self.dist.enabled:
            if self.options.sync_bn:
                module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
                method.trainable = module
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        if self.options.compile:
            forward = torch.compile(forward)
        method.forward_module = forward

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _state(self, step: int, epoch: int, best: dict[str, Any] | None) -> dict[str, Any]:
        m = self.method
        return {
            "step": step,
            "epoch": epoch,
            "model": _unwrap(m.trainable).state_dict(),
            "optimizer": m.optimizer.state_dict(),
            "scheduler": m.scheduler.state_dict() if m.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "extra": m.extra_state(),
            "rng": _gather_rng(self.dist),
            "world_size": self.dist.world_size,
            "best": best,
            "config": m.config_dict(),
        }

    def _save_last(self, step: int, epoch: int, best: dict[str, Any] | None) -> Path:
        assert self.run_dir is not None
        state = self._state(step, epoch, best)  # every rank joins the RNG gather
        path = self.run_dir / rundir.CHECKPOINTS / "last.pt"
        if self.dist.is_main:
            save_checkpoint(path, state, method=self.method.name)
        barrier(self.dist)
        return path

    def _resume(self) -> tuple[int, dict[str, Any] | None]:
        assert self.run_dir is not None
        m = self.method
        state = load_checkpoint(self.run_dir / rundir.CHECKPOINTS / "last.pt", method=m.name)
        _unwrap(m.trainable).load_state_dict(state["model"])
        m.optimizer.load_state_dict(state["optimizer"])
        if m.scheduler is not None and state.get("scheduler") is not None:
            m.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        m.load_extra_state(state.get("extra") or {})
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            restore_rng_state(rngs[self.dist.rank])
        else:
            # A different number of processes cannot replay the same random streams; say so, then go on.
            torch.manual_seed(self.options.seed + 7919 * state["step"] + self.dist.rank)
            if self.dist.is_main:
                print(
                    f"note: resuming a {len(rngs)}-process run on {self.dist.world_size} processes; "
                    "the continuation is valid but not bit-identical",
                    file=sys.stderr,
                )
        if self.dist.is_main:
            rundir.truncate_jsonl_after(self.run_dir / rundir.METRICS, state["step"])
        return int(state["step"]), state.get("best")

    # -- the loop -------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        opts, m, rt = self.options, self.method, self.runtime
        self.run_dir = self._prepare_run_dir()
        torch.manual_seed(opts.seed)  # identical initialisation on every rank
        m.build(rt)
        self._wrap()
        self.scaler = self.precision.grad_scaler()
        # Augmentation and sampling noise must differ between ranks, and be reproducible.
        torch.manual_seed(opts.seed + 1_000_003 * (self.dist.rank + 1))

        step, best = 0, None
        if opts.resume is not None:
            step, best = self._resume()
        elif self.dist.is_main:
            rundir.write_json(
                self.run_dir / rundir.CONFIG,
                {
                    "method": m.name,
                    "config": m.config_dict(),
                    "run": asdict(opts) | {"world_size": self.dist.world_size},
                },
            )
            split = m.split_dict()
            if split is not None:
                rundir.write_json(self.run_dir / "split.json", split)

        logger = MetricLogger(self.run_dir, enabled=self.dist.is_main)
        spe = m.steps_per_epoch
        total = opts.epochs * spe
        if step > total:
            raise ConfigError(f"the checkpoint is at step {step}, past the end of a {opts.epochs}-epoch run")
        bar = TrainingProgressBar(total, initial=step, enabled=opts.progress and self.dist.is_main)
        status, last_metrics = "completed", None
        pending: list[tuple[int, torch.Tensor]] = []  # (step, loss) awaiting the NaN check
        sums: dict[str, torch.Tensor] = {}
        count, images, train_time = 0, 0, 0.0
        started = time.perf_counter()

        def check_finite() -> None:
            nonlocal pending
            bad = None
            if pending:
                losses = torch.stack([loss for _, loss in pending]).float()
                finite = torch.isfinite(losses)
                if not bool(finite.all()):
                    bad = pending[int((~finite).nonzero()[0, 0])][0]
            if any_rank_true(bad is not None, self.device, self.dist):
                last = self.run_dir / rundir.CHECKPOINTS / "last.pt"
                where = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was written yet"
                raise TrainingDiverged(
                    f"the loss became NaN/inf at step {bad if bad is not None else '?'} "
                    f"(epoch {bad // spe + 1 if bad is not None else '?'}); {where}"
                )
            pending = []

        try:
            with bar:
                while step < total:
                    epoch, start_batch = divmod(step, spe)
                    m.trainable.train()
                    t0 = time.perf_counter()
                    for batch in m.train_batches(epoch, start_batch):
                        progress = TrainProgress(step, epoch, opts.epochs, spe)
                        with self.precision.autocast():
                            out = m.train_step(batch, progress)
                        self.scaler.scale(out.loss).backward()
                        self.scaler.step(m.optimizer)
                        self.scaler.update()
                        m.optimizer.zero_grad(set_to_none=True)
                        if m.scheduler is not None:
                            m.scheduler.step()
                        step += 1
                        m.after_step(TrainProgress(step, epoch, opts.epochs, spe))
                        loss = out.loss.detach()
                        pending.append((step, loss))
                        for k, v in {"loss": loss, **out.logs}.items():
                            sums[k] = sums.get(k, 0) + v.detach().float()
                        count += 1
                        images += out.num_images * self.dist.world_size
                        if step % opts.log_every == 0:
                            check_finite()
                            bar.update(
                                step,
                                images / max(1e-9, train_time + time.perf_counter() - t0),
                                float(loss),
                                epoch + 1,
                                opts.epochs,
                            )
                        else:
                            bar.advance(step)
                        if opts.checkpoint_every and step % opts.checkpoint_every == 0 and step % spe != 0:
                            check_finite()
                            self._save_last(step, epoch, best)
                        if opts.stop_after_steps is not None and step >= opts.stop_after_steps and step < total:
                            check_finite()
                            self._save_last(step, epoch, best)
                            status = "stopped"
                            break
                    train_time += time.perf_counter() - t0
                    if status == "stopped":
                        break
                    check_finite()
                    epoch_done = step // spe
                    record: dict[str, Any] = {"epoch": epoch_done, "step": step}
                    record["lr"] = m.optimizer.param_groups[0]["lr"]
                    record["train"] = {k: float(v) / max(1, count) for k, v in sums.items()}
                    sums, count = {}, 0
                    if epoch_done % opts.eval_every == 0 or step >= total:
                        m.trainable.eval()
                        with torch.no_grad(), self.precision.autocast():
                            metrics = m.evaluate(TrainProgress(step, epoch, opts.epochs, spe))
                        record.update(metrics)
                        last_metrics = record
                        key = m.best_metric
                        if key in metrics and metrics[key] is not None and math.isfinite(metrics[key]):
                            better = best is None or (
                                metrics[key] > best["metrics"][key]
                                if m.best_mode == "max"
                                else metrics[key] < best["metrics"][key]
                            )
                            if better:
                                best = {"epoch": epoch_done, "step": step, "metrics": metrics}
                                self._save_best(step, epoch, best)
                        bar.log_eval(epoch_done, metrics)
                    logger.log(record)
                    self._save_last(step, epoch_done, best)
        except TrainingDiverged:
            self._write_summary("diverged", step, best, last_metrics, images, train_time, started)
            raise
        finally:
            logger.close()
        return self._write_summary(status, step, best, last_metrics, images, train_time, started)

    def _save_best(self, step: int, epoch: int, best: dict[str, Any]) -> None:
        assert self.run_dir is not None
        if self.dist.is_main:
            state = {
                "step": step,
                "epoch": epoch,
                "model": _unwrap(self.method.trainable).state_dict(),
                "extra": self.method.extra_state(),
                "best": best,
                "config": self.method.config_dict(),
            }
            save_checkpoint(self.run_dir / rundir.CHECKPOINTS / "best.pt", state, method=self.method.name)

    def _write_summary(self, status, step, best, last_metrics, images, train_time, started) -> dict[str, Any]:
        assert self.run_dir is not None
        previous = {}
        path = self.run_dir / rundir.SUMMARY
        if self.options.resume is not None and path.is_file():
            previous = rundir.read_json(path)
        summary = {
            "status": status,
            "method": self.method.name,
            "dataset": self.options.dataset,
            "run_dir": str(self.run_dir),
            "steps": step,
            "epochs_completed": step // self.method.steps_per_epoch,
            "epochs": self.options.epochs,
            "final": last_metrics,
            "best": best,
            "train_images_per_s": images / train_time if train_time > 0 else None,
            "wall_time_s": time.perf_counter() - started + previous.get("wall_time_s", 0.0),
            "device": device_description(self.device),
            "world_size": self.dist.world_size,
            "amp": self.options.amp,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        if self.dist.is_main:
            rundir.write_json(path, summary)
        barrier(self.dist)
        return summary
