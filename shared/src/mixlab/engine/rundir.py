"""Run directories: one per run, never silently reused.

Layout (DESIGN.md §6): `runs/<package>/<dataset>/<timestamp>/` holding `config.json`, `split.json` (where the
method has one), `metrics.jsonl` (one line per evaluation), `summary.json` and `checkpoints/{last,best}.pt`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mixlab.errors import RunDirError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"


def default_run_dir(package: str, dataset: str, root: str | Path = "runs") -> Path:
    """`runs/<package>/<dataset>/<timestamp>`, with a numeric suffix if two runs start in the same second."""
    base = Path(root) / package / dataset / time.strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def create_run_dir(out: str | Path | None, package: str, dataset: str) -> Path:
    """Make a fresh run directory; an existing non-empty `--out` is an error, never overwritten."""
    path = Path(out) if out is not None else default_run_dir(package, dataset)
    if path.exists() and any(path.iterdir()):
        raise RunDirError(
            f"run directory {path} already exists and is not empty: pass --resume {path} to continue that run, "
            "or choose another --out"
        )
    (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    return path


def resumable_run_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunDirError(f"cannot resume {path}: it has no {CONFIG} (is it a run directory?)")
    if not (path / CHECKPOINTS / "last.pt").is_file():
        raise RunDirError(f"cannot resume {path}: it has no {CHECKPOINTS}/last.pt to continue from")
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


def read_json(path: str | Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(_clean(record)) + "\n")


def truncate_jsonl_after(path: str | Path, step: int) -> None:
    """On resume, drop records logged after the checkpoint's step so metrics.jsonl has no duplicates."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept))
