"""Run directories: one per run, never silently reused.

Layout (DESIGN.md §6): `runs/<package>/<dataset>/<timestamp>/` holding `config.json`, `split.json` (where the
method has one), `metrics.jsonl` (one line per evaluation), `summary.json` and `checkpoints/{last,best}.pt` (a run
of several phases keeps one `best-<phase>.pt` per phase).

A directory that holds only what a start writes before its first checkpoint (config, split, an empty
`checkpoints/`) is an *abandoned start*: it has no result to protect, so the same `--out` may start again there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mixlab.errors import RunDirError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SPLIT = "split.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
#: What a start writes before its first checkpoint; a directory holding nothing else is an abandoned start.
_START_FILES = {CONFIG, SPLIT, METRICS, CHECKPOINTS, "tensorboard"}


def best_checkpoint_name(phase: str, num_phases: int) -> str:
    """`best.pt` for a one-phase run, `best-<phase>.pt` for each phase of a longer one."""
    return BEST if num_phases == 1 else f"best-{phase}.pt"


def is_abandoned_start(path: str | Path) -> bool:
    """True for a directory that a start created but that never reached its first checkpoint or summary."""
    path = Path(path)
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if not names <= _START_FILES:
        return False
    checkpoints = path / CHECKPOINTS
    return not (checkpoints.is_dir() and any(checkpoints.iterdir()))


def default_run_dir(package: str, dataset: str, root: str | Path = "runs") -> Path:
    """`runs/<package>/<dataset>/<timestamp>`, with a numeric suffix if two runs start in the same second."""
    base = Path(root) / package / dataset / time.strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def create_run_dir(out: str | Path | None, package: str, dataset: str) -> Path:
    """Make a fresh run directory; an existing `--out` with results is an error, never overwritten."""
    path = Path(out) if out is not None else default_run_dir(package, dataset)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, not a directory: choose another --out")
    if path.exists() and any(path.iterdir()):
        if not is_abandoned_start(path):
            raise RunDirError(
                f"run directory {path} already exists and is not empty. Pass --resume {path} to continue that run, "
                "or choose another --out"
            )
        for entry in path.iterdir():  # an abandoned start (no checkpoint, no summary): start again in it
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    try:
        (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        probe = path / CHECKPOINTS / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot create the run directory {path}: {exc.strerror or exc}") from None
    return path


def resumable_run_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"cannot resume {path}: no such run directory")
    if not (path / CHECKPOINTS / LAST).is_file():
        if is_abandoned_start(path):
            raise RunDirError(
                f"cannot resume {path}: the run stopped before its first checkpoint; start it again with --out {path}"
            )
        raise RunDirError(f"cannot resume {path}: it has no {CHECKPOINTS}/{LAST} (is it a run directory?)")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"cannot resume {path}: it has no {CONFIG} (is it a run directory?)")
    return path


def checkpoint_of(path: str | Path) -> Path:
    """A checkpoint file given directly, or a run directory's final state, `checkpoints/last.pt`."""
    path = Path(path)
    if path.is_dir():
        if (path / CHECKPOINTS / LAST).is_file():
            return path / CHECKPOINTS / LAST
        raise RunDirError(f"{path} is a directory without {CHECKPOINTS}/{LAST}: give a run directory or a .pt file")
    return path


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf become null; tuples become lists; Paths become strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, data: Any) -> None:
    """Atomic JSON write (temp file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(_clean(data), handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    """Atomic text write (temp file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(_clean(record)) + "\n")


def truncate_jsonl_after(path: str | Path, phases: list[str], phase: int, step: int) -> None:
    """On resume, drop records logged after the checkpoint (phase index `phase`, its step `step`), so that
    metrics.jsonl has no duplicates. Records name their phase (older ones, without one, are the first phase)."""
    path = Path(path)
    if not path.is_file():
        return
    order = {name: i for i, name in enumerate(phases)}

    def kept(record: dict[str, Any]) -> bool:
        index = order.get(record.get("phase", phases[0]), len(phases))
        return index < phase or (index == phase and record.get("step", 0) <= step)

    lines = [line for line in path.read_text().splitlines() if line and kept(json.loads(line))]
    path.write_text("".join(line + "\n" for line in lines))
