"""Atomic checkpoints that are data, never code.

A checkpoint is a plain dict of tensors and Python primitives written with `torch.save` to a temporary file in the
same directory, flushed to disk and renamed over the target, so a crash mid-write leaves the previous checkpoint
intact. It is read back with `weights_only=True`: loading a checkpoint can never execute code. Every checkpoint
carries a format tag and the name of the method that wrote it, so that `mixmo eval` refuses a RealMix checkpoint
with a one-line reason instead of a shape-mismatch traceback.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from mixlab.engine.rundir import checkpoint_of
from mixlab.errors import CheckpointError

FORMAT = "mixlab-checkpoint/1"


def save_checkpoint(path: str | Path, state: dict[str, Any], *, method: str) -> Path:
    """Write `state` (plus format and method tags) atomically to `path`."""
    path = Path(path)
    payload = {"format": FORMAT, "method": method, **state}
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # A full disk surfaces as torch's RuntimeError from its zip writer; say what happened in plain words.
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = "the write failed (is the disk full?)" if isinstance(exc, RuntimeError) else _first_line(exc)
        raise CheckpointError(f"could not write the checkpoint {path}: {reason}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = _ANSI.sub("", str(exc)).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split(". ")[0].rstrip(".")  # the lead sentence; torch's advice after it is not passed on


def load_data(path: Path, *, map_location: Any = "cpu", what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` with its failures as one-line CheckpointErrors: a file holding code
    is refused as such, a corrupt one as corrupt; torch's advice to load with ``weights_only=False`` (which would run
    the file's code) is never passed on."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "Unsupported class" in str(exc):
            raise CheckpointError(
                f"{path} was not loaded: it holds objects other than tensors and plain data. Mixlab checkpoints "
                "and state dicts never do; it is not one, or it was tampered with"
            ) from None
        raise CheckpointError(f"{what} {path} cannot be read (corrupt or truncated): {_first_line(exc)}") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"{what} {path} cannot be read (corrupt or truncated): {_first_line(exc)}") from None


def load_checkpoint(path: str | Path, *, method: str | None = None, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; refuse missing, corrupt, foreign or other-method files with a CheckpointError.

    ``path`` may also be a run directory: its ``checkpoints/last.pt`` is read.
    """
    path = Path(path)
    if path.is_dir():
        path = checkpoint_of(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    state = load_data(path, map_location=map_location, what="checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mixlab checkpoint (no '{FORMAT}' tag)")
    if method is not None and state.get("method") != method:
        raise CheckpointError(
            f"{path} was written by {state.get('method')!r}, not {method!r}: use `{state.get('method')} eval` for it"
        )
    return state


def rng_state() -> dict[str, Any]:
    """Every RNG stream training draws from (the engine keeps all randomness on torch's generators)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
