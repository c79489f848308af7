"""The one training loop every mixlab method runs on (DESIGN.md §6).

A run is one or more ordered phases (``Method.phases()``), each counted in optimizer steps with its own
evaluation cadence and best metric. Within a phase the loop is: take the data stream's next batch, run the
method's step (the engine makes the backward pass and the optimizer step, or the method makes them through
``method.optim``), update, and at the evaluation points evaluate, log one JSON line and write ``last.pt``.
Everything needed to continue exactly is in that checkpoint: the phase and step, the weights, every optimizer,
scheduler and loss scaler, the method's extra state (EMA...), every rank's RNG streams, the running sums of the
training losses, and each phase's best and final metrics, so a resumed run ends with the same weights, the same
metrics.jsonl and the same summary.json as one that never stopped.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mixlab.engine import rundir
from mixlab.engine.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from mixlab.engine.device import Precision, configure_backends, device_description, resolve_device
from mixlab.engine.distributed import (
    DistInfo,
    any_rank_true,
    barrier,
    broadcast_buffers,
    broadcast_object,
    check_sync_bn,
    init_distributed,
)
from mixlab.engine.logging import MetricLogger
from mixlab.engine.method import Method, Phase, Runtime, TrainProgress
from mixlab.engine.optimization import Optimization
from mixlab.engine.progress import TrainingProgressBar
from mixlab.errors import CheckpointError, ConfigError, MixlabError, RunDirError

#: torch.compile's modes; reduce-overhead records the compiled step into CUDA graphs (launch-bound small networks).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TrainingDiverged(MixlabError):
    """The loss became NaN or infinite."""


@dataclass
class RunOptions:
    """Runtime options of a training run: where and how it runs, not what it learns (the budget is the method's)."""

    package: str
    dataset: str
    device: str = "auto"
    amp: str = "off"
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode; anything but "default" implies compile
    channels_last: bool | None = None  # None: on for CUDA, off elsewhere
    sync_bn: bool = False
    seed: int = 0
    out: Path | None = None
    resume: Path | None = None
    init_from: Path | None = None  # another run (or checkpoint) whose weights the first phase starts from
    checkpoint_every: int = 0  # optimizer steps; 0 = at the evaluations only
    log_every: int = 20  # steps between loss read-outs (each one syncs the device)
    stop_after_steps: int | None = None  # leave a resumable checkpoint and stop, as a pre-emption would
    progress: bool = True

    def validate(self) -> None:
        if self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be >= 0, not {self.checkpoint_every}")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            raise ConfigError(f"--stop-after-steps must be at least 1, not {self.stop_after_steps}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, not {self.compile_mode!r}")
        if self.log_every < 1:
            raise ConfigError(f"log_every must be at least 1, not {self.log_every}")
        if self.resume is not None and self.init_from is not None:
            raise ConfigError("--init-from starts a new run; a resumed run already has its weights: drop it")


@dataclass
class RunState:
    """Where a run is, and what it has measured: everything of the loop that a checkpoint carries."""

    phase: int = 0  # index into the method's phases
    step: int = 0  # steps done in the current phase
    steps_before: int = 0  # steps of the completed phases
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # per phase: best and final evaluation
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # training logs summed since the last evaluation
    count: int = 0  # steps in those sums
    images: int = 0  # training images seen (all ranks)
    train_time: float = 0.0  # seconds spent in training steps (not evaluations)

    @property
    def global_step(self) -> int:
        return self.steps_before + self.step

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "step": self.step,
            "steps_before": self.steps_before,
            "records": self.records,
            "interval": {"sums": {k: v.detach().float().cpu() for k, v in self.sums.items()}, "count": self.count},
            "images": self.images,
            "train_time": self.train_time,
        }

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> RunState:
        interval = state.get("interval") or {}
        return cls(
            phase=int(state.get("phase", 0)),
            step=int(state["step"]),
            steps_before=int(state.get("steps_before", 0)),
            records=dict(state.get("records") or {}),
            sums=dict(interval.get("sums") or {}),
            count=int(interval.get("count", 0)),
            images=int(state.get("images", 0)),
            train_time=float(state.get("train_time", 0.0)),
        )


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


def _legacy_optim_state(state: dict[str, Any]) -> dict[str, Any]:
    """The optimizer part of a checkpoint written before several optimizers existed (one optimizer, 'main')."""
    return {
        "optimizers": {"main": state["optimizer"]},
        "schedulers": {"main": state["scheduler"]} if state.get("scheduler") is not None else {},
        "scalers": {"main": state["scaler"]} if state.get("scaler") is not None else {},
    }


class Trainer:
    """Runs a `Method` under `RunOptions`; `fit()` returns the summary written to summary.json."""

    def __init__(self, method: Method, options: RunOptions):
        options.validate()
        self.method = method
        self.options = options
        self.device = resolve_device(options.device, int(os.environ.get("LOCAL_RANK", "0")))
        configure_backends(self.device)
        self.precision = Precision(options.amp, self.device)
        self.dist = init_distributed(self.device)
        if options.sync_bn:
            check_sync_bn(self.device, self.dist)
        channels_last = self.device.type == "cuda" if options.channels_last is None else options.channels_last
        self.runtime = Runtime(self.device, self.dist, self.precision, channels_last)
        self.run_dir: Path | None = None
        self.phases: list[Phase] = []  # the method's, once built
        self.state = RunState()
        self._pending: list[tuple[int, torch.Tensor]] = []  # (global step, losses) awaiting the NaN check
        self._created_dir = False

    # -- the run ------------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        opts, m = self.options, self.method
        started = time.perf_counter()
        self.run_dir = self._prepare_run_dir()
        try:
            torch.manual_seed(opts.seed)  # identical initialisation on every rank
            m.build(self.runtime)
            m.check_training()
            self.phases = self._checked_phases(m.phases())
            # Augmentation and sampling noise must differ between ranks, and be reproducible.
            torch.manual_seed(opts.seed + 1_000_003 * (self.dist.rank + 1))
            checkpoint = self._load_resume_checkpoint() if opts.resume is not None else None
            if checkpoint is None:
                self._start_new_run()
        except BaseException:
            self._remove_abandoned_start()
            raise
        logger = MetricLogger(self.run_dir, enabled=self.dist.is_main)
        status = "completed"
        try:
            for index in range(self.state.phase, len(self.phases)):
                status = self._run_phase(index, logger, checkpoint)
                checkpoint = None  # only the phase a run resumes in restores a checkpoint
                if status == "stopped":
                    break
                if index + 1 < len(self.phases):
                    self._next_phase()
        except TrainingDiverged:
            self._write_summary("diverged", started)
            raise
        finally:
            logger.close()
        return self._write_summary(status, started)

    def _checked_phases(self, phases: list[Phase]) -> list[Phase]:
        if not phases:
            raise ConfigError(f"{self.method.name} declares no training phase")
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise ConfigError(f"phase names must be unique, got {names}")
        return phases

    def _next_phase(self) -> None:
        s = self.state
        s.steps_before += self.phases[s.phase].steps
        s.phase, s.step, s.sums, s.count = s.phase + 1, 0, {}, 0

    # -- run directory ------------------------------------------------------------------------------------------
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
                    self._created_dir = True
            except MixlabError as exc:
                error = str(exc)
        path, error = broadcast_object((path, error), self.dist)
        if error is not None:
            raise RunDirError(error)
        return Path(path)

    def _remove_abandoned_start(self) -> None:
        """A run that failed before its first checkpoint leaves nothing behind (its directory is removed)."""
        if self.dist.is_main and self._created_dir and self.run_dir is not None:
            if rundir.is_abandoned_start(self.run_dir):
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def _start_new_run(self) -> None:
        opts, m = self.options, self.method
        if opts.init_from is not None:
            m.init_from(load_checkpoint(rundir.checkpoint_of(opts.init_from)))
        if self.dist.is_main:
            assert self.run_dir is not None
            run = asdict(opts) | {"world_size": self.dist.world_size}
            rundir.write_json(
                self.run_dir / rundir.CONFIG,
                {"method": m.name, "config": m.config_dict(), "phases": [asdict(p) for p in self.phases], "run": run},
            )
            split = m.split_dict()
            if split is not None:
                rundir.write_json(self.run_dir / rundir.SPLIT, split)
            for name, text in m.run_files().items():
                rundir.write_text(self.run_dir / name, text)

    # -- checkpoints --------------------------------------------------------------------------------------------
    def _checkpoint(self) -> dict[str, Any]:
        m = self.method
        return {
            **self.state.to_dict(),
            "phase_name": self.phases[self.state.phase].name,
            "model": _unwrap(m.trainable).state_dict(),
            "optim": self.optim.state_dict(),
            "extra": m.extra_state(),
            "rng": _gather_rng(self.dist),
            "world_size": self.dist.world_size,
            "config": m.config_dict(),
        }

    def _save_last(self) -> None:
        assert self.run_dir is not None
        self._check_finite()
        state = self._checkpoint()  # every rank joins the RNG gather
        if self.dist.is_main:
            save_checkpoint(self.run_dir / rundir.CHECKPOINTS / rundir.LAST, state, method=self.method.name)
        barrier(self.dist)

    def _save_best(self, phase: Phase, best: dict[str, Any]) -> None:
        assert self.run_dir is not None
        if self.dist.is_main:
            m = self.method
            state = {
                "phase": self.state.phase,
                "phase_name": phase.name,
                "step": self.state.step,
                "model": _unwrap(m.trainable).state_dict(),
                "extra": m.extra_state(),
                "best": best,
                "config": m.config_dict(),
            }
            name = rundir.best_checkpoint_name(phase.name, len(self.phases))
            save_checkpoint(self.run_dir / rundir.CHECKPOINTS / name, state, method=m.name)

    def _load_resume_checkpoint(self) -> dict[str, Any]:
        assert self.run_dir is not None
        state = load_checkpoint(self.run_dir / rundir.CHECKPOINTS / rundir.LAST, method=self.method.name)
        self.state = RunState.from_checkpoint(state)
        index = self.state.phase
        if index >= len(self.phases) or state.get("phase_name", "train") != self.phases[index].name:
            raise CheckpointError(
                f"the checkpoint is in phase {state.get('phase_name')!r}, which this method's configuration does "
                f"not have (phases: {', '.join(p.name for p in self.phases)})"
            )
        if self.state.step > self.phases[index].steps:
            raise ConfigError(
                f"the checkpoint is at step {self.state.step}, past the end of a {self.phases[index].steps}-step phase"
            )
        if "optim" not in state:
            state["optim"] = _legacy_optim_state(state)
            best = state.get("best")
            self.state.records = {self.phases[index].name: {"best": best, "final": None}}
        if self.dist.is_main:
            rundir.truncate_jsonl_after(
                self.run_dir / rundir.METRICS, [p.name for p in self.phases], index, self.state.step
            )
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        """Weights, optimizers, method state and RNG streams of a checkpoint (after the phase's set-up)."""
        m = self.method
        try:
            _unwrap(m.trainable).load_state_dict(state["model"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"the checkpoint's weights do not fit this model ({first})") from None
        self.optim.load_state_dict(state["optim"])
        m.load_extra_state(state.get("extra") or {})
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            restore_rng_state(rngs[self.dist.rank])
        else:
            # A different number of processes cannot replay the same random streams; say so, then go on.
            torch.manual_seed(self.options.seed + 7919 * self.state.global_step + self.dist.rank)
            if self.dist.is_main:
                print(
                    f"note: resuming a {len(rngs)}-process run on {self.dist.world_size} processes; "
                    "the continuation is valid but not bit-identical",
                    file=sys.stderr,
                )

    # -- one phase ----------------------------------------------------------------------------------------------
    def _wrap_module(self, module: nn.Module) -> nn.Module:
        """A network's training forward: channels_last, SyncBatchNorm, DDP and torch.compile as asked for."""
        if self.runtime.channels_last:
            module.to(memory_format=torch.channels_last)
        forward: nn.Module = module
        if self.dist.enabled:
            if self.options.sync_bn:
                nn.SyncBatchNorm.convert_sync_batchnorm(module)  # in place for any container module
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        if self.options.compile or self.options.compile_mode != "default":
            forward = torch.compile(
                forward, mode=None if self.options.compile_mode == "default" else self.options.compile_mode
            )
        return forward

    def _run_phase(self, index: int, logger: MetricLogger, checkpoint: dict[str, Any] | None) -> str:
        m, s, opts = self.method, self.state, self.options
        phase = self.phases[index]
        m.start_phase(phase)
        self.optim = Optimization(m.optimizers(), self.precision, one_backward=not m.manual_optimization)
        m.optim = self.optim
        m.wrap(self._wrap_module)
        if checkpoint is not None:
            self._restore(checkpoint)
        s.records.setdefault(phase.name, {"best": None, "final": None})
        bar = TrainingProgressBar(phase.steps, initial=s.step, enabled=opts.progress and self.dist.is_main)
        bar.describe(phase.name if len(self.phases) > 1 else "train", phase.epochs)
        with bar:
            while s.step < phase.steps:
                epoch, start_batch = divmod(s.step, phase.steps_per_epoch)
                m.set_mode(True)
                before = s.step
                for batch in m.train_batches(epoch, start_batch):
                    clock = time.perf_counter()
                    self._train_step(batch, phase)
                    s.train_time += time.perf_counter() - clock
                    step = s.step
                    if step % opts.log_every == 0:
                        self._check_finite()
                        bar.update(step, s.images / max(1e-9, s.train_time), float(self._last_loss), epoch + 1)
                    else:
                        bar.advance(step)
                    evaluate = step % phase.eval_every == 0 or step == phase.steps
                    stop = opts.stop_after_steps is not None and s.global_step >= opts.stop_after_steps
                    if evaluate or stop or (opts.checkpoint_every and step % opts.checkpoint_every == 0):
                        if evaluate:
                            self._evaluate(phase, logger, bar)
                        self._save_last()
                    if stop and not (step == phase.steps and index == len(self.phases) - 1):
                        return "stopped"
                    if step == phase.steps or step % phase.steps_per_epoch == 0:
                        break  # the phase ends (possibly inside an epoch) or the epoch does
                if s.step == before:
                    raise ConfigError(
                        f"{m.name}: epoch {epoch + 1} yielded no batch from position {start_batch} "
                        f"(steps_per_epoch {phase.steps_per_epoch} is larger than the data stream)"
                    )
        return "completed"

    def _train_step(self, batch: Any, phase: Phase) -> None:
        m, s = self.method, self.state
        if self.options.compile_mode == "reduce-overhead":  # CUDA graphs: a new iteration may reuse their outputs
            torch.compiler.cudagraph_mark_step_begin()
        with self.precision.autocast():
            out = m.train_step(batch, TrainProgress.of(phase, s.step))
        if not m.manual_optimization:
            self.optim.backward_and_step_all(out.loss)
        losses = self.optim.end_iteration()
        s.step += 1
        m.after_step(TrainProgress.of(phase, s.step))
        loss = out.loss.detach()
        checked = torch.stack([x.float().sum() for x in (loss, *losses)]).sum()
        self._pending.append((s.global_step, checked))
        for key, value in {"loss": loss, **out.logs}.items():
            value = value.detach().float()
            s.sums[key] = s.sums[key] + value if key in s.sums else value
        s.count += 1
        s.images += out.num_images * self.dist.world_size
        self._last_loss = loss

    def _evaluate(self, phase: Phase, logger: MetricLogger, bar: TrainingProgressBar) -> None:
        m, s = self.method, self.state
        self._check_finite()
        record: dict[str, Any] = {"phase": phase.name, "step": s.step, "epoch": s.step // phase.steps_per_epoch}
        lrs = self.optim.lrs()
        record["lr"] = next(iter(lrs.values()))
        if len(lrs) > 1:
            record["lrs"] = lrs
        record["train"] = {k: float(v) / max(1, s.count) for k, v in s.sums.items()}
        s.sums, s.count = {}, 0
        broadcast_buffers(_unwrap(m.trainable), self.dist)  # every rank scores rank 0's (the saved) statistics
        m.set_mode(False)
        with torch.no_grad(), self.precision.autocast():
            metrics = m.evaluate(TrainProgress.of(phase, s.step))
        m.set_mode(True)
        record.update(metrics)
        entry = s.records.setdefault(phase.name, {"best": None, "final": None})
        entry["final"] = record
        value = metrics.get(phase.best_metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            best = entry["best"]
            if best is None or (
                value > best["metrics"][phase.best_metric]
                if phase.best_mode == "max"
                else value < best["metrics"][phase.best_metric]
            ):
                entry["best"] = {"epoch": record["epoch"], "step": s.step, "metrics": metrics}
                self._save_best(phase, entry["best"])
        bar.log_eval(s.step, metrics)
        logger.log(record)

    def _check_finite(self) -> None:
        bad = None
        if self._pending:
            finite = torch.isfinite(torch.stack([loss for _, loss in self._pending]))
            if not bool(finite.all()):
                bad = self._pending[int((~finite).nonzero()[0, 0])][0]
        self._pending = []
        if any_rank_true(bad is not None, self.device, self.dist):
            assert self.run_dir is not None
            last = self.run_dir / rundir.CHECKPOINTS / rundir.LAST
            where = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was written yet"
            phase = self.phases[self.state.phase]
            if bad is not None:
                local = bad - self.state.steps_before
                at = f"step {local} (epoch {(local - 1) // phase.steps_per_epoch + 1})"
            else:
                at = "a step of another process"
            of_phase = f" of phase {phase.name!r}" if len(self.phases) > 1 else ""
            raise TrainingDiverged(f"the loss became NaN/inf at {at}{of_phase}; {where}")

    # -- summary ------------------------------------------------------------------------------------------------
    def _write_summary(self, status: str, started: float) -> dict[str, Any]:
        assert self.run_dir is not None
        s = self.state
        path = self.run_dir / rundir.SUMMARY
        previous = rundir.read_json(path) if self.options.resume is not None and path.is_file() else {}
        phases = self.phases
        current = phases[min(s.phase, len(phases) - 1)] if phases else None
        record = s.records.get(current.name, {}) if current is not None else {}
        summary: dict[str, Any] = {
            "status": status,
            "method": self.method.name,
            "dataset": self.options.dataset,
            "run_dir": str(self.run_dir),
            "phase": current.name if current is not None else None,
            "steps": s.global_step,
            "epochs_completed": s.step // current.steps_per_epoch if current is not None else 0,
            "final": record.get("final"),
            "best": record.get("best"),
        }
        if len(phases) > 1:
            summary["phases"] = {name: dict(rec) for name, rec in s.records.items()}
        summary.update(
            {
                "train_images_per_s": s.images / s.train_time if s.train_time > 0 else None,
                "wall_time_s": time.perf_counter() - started + previous.get("wall_time_s", 0.0),
                "device": device_description(self.device),
                "world_size": self.dist.world_size,
                "amp": self.options.amp,
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            }
        )
        if self.dist.is_main:
            rundir.write_json(path, summary)
        barrier(self.dist)
        return summary
