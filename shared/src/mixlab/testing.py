"""Test helpers every method package's CLI tests share (in-process Typer runs, one-line errors, exact resume), and
writers of miniature datasets in their official on-disk formats (CIFAR-100 pickles, STL-10 binaries, SVHN ``.mat``
files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from typer.testing import CliRunner, Result

from mixlab.engine import load_checkpoint


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (tiny test models gain nothing from more, and on a busy
    2-core runner OpenMP barriers stall), then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def build_on_cpu(method: Any, seed: int = 0) -> Any:
    """``method`` built on one CPU process as the engine would (seeded), its training forward the bare model, in
    train mode: ready for a test to call ``train_step`` / ``after_step`` directly."""
    from mixlab.engine import DistInfo, Precision, Runtime

    torch.manual_seed(seed)
    cpu = torch.device("cpu")
    method.build(Runtime(cpu, DistInfo(), Precision("off", cpu), channels_last=False))
    method.forward_module = method.model
    method.model.train()
    return method


def cli_invoker(app: typer.Typer) -> Callable[..., Result]:
    """`invoke("train", "--epochs", 1, ...)`: run a package's CLI in-process (torch is imported once)."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def record_trainings(monkeypatch: Any) -> list[tuple[Any, str]]:
    """Replace the engine's Trainer by one that records ``(method.config, dataset option)`` of every run a CLI
    would start, without loading data or training: the list fills as commands run."""
    seen: list[tuple[Any, str]] = []

    class RecordingTrainer:
        def __init__(self, method: Any, options: Any) -> None:
            seen.append((method.config, options.dataset))

        def fit(self) -> dict[str, Any]:
            return {"status": "completed", "run_dir": "-", "final": {}}

    monkeypatch.setattr("mixlab.engine.Trainer", RecordingTrainer)
    return seen


def one_line_error(result: Result) -> str:
    """Assert the command failed with exit code 2 and exactly one `error: ...` line; return that line."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def assert_resume_is_exact(
    invoke: Callable[..., Result], train_args: list[str], tmp_path: Path, stop_after: int
) -> None:
    """Train once straight through, once stopped after `stop_after` steps and resumed: the weights must be equal."""
    full, split = tmp_path / "full", tmp_path / "split"
    assert invoke(*train_args, "--out", full).exit_code == 0
    stopped = invoke(*train_args, "--out", split, "--stop-after-steps", stop_after)
    assert stopped.exit_code == 0 and "--resume" in stopped.output
    resumed = invoke("train", "--resume", split, "--no-progress", "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(full / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(split / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def write_cifar100(root: Path, n_train: int = 128, n_test: int = 20, seed: int = 0) -> Path:
    """Write ``root/cifar-100-python/{train,test}`` as the official python pickles (random images and labels)."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / split, "wb") as handle:
            labels = rng.integers(0, 100, n).tolist()
            pickle.dump({b"data": data, b"fine_labels": labels, b"coarse_labels": [0] * n}, handle)
    return folder


def write_mnist(folder: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write ``n`` random 28x28 digits (the mask boundary bytes 127 and 128 present) and labels ``i % 10`` as the
    gzipped idx files of ``split`` in ``folder``; return them."""
    import gzip

    from mixlab.data import mnist

    def idx(array: np.ndarray, magic: int) -> bytes:
        header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = 127, 128, 0
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array, magic in zip(mnist.FILES[split], (images, labels), (mnist.IMAGES_MAGIC, mnist.LABELS_MAGIC)):
        (folder / f"{stem}.gz").write_bytes(gzip.compress(idx(array, magic)))
    return images, labels


def write_bsds500(images: Path, photos: dict[str, int], seed: int = 1) -> None:
    """Random colour photographs of 40x48 (landscape) and 48x40 (portrait), ``photos[part]`` of them in
    ``images/{train,val,test}/`` (the BSDS500 release layout below ``BSR/BSDS500/data/images``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for part, count in photos.items():
        (images / part).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (40, 48, 3) if i % 2 == 0 else (48, 40, 3)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels).save(images / part / f"{100 * (i + 1) + len(part)}.jpg", quality=95)


def write_stl10(root: Path, split: str, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """Write one split of ``root/stl10_binary/`` in the binary release's format and return the folder.

    ``images`` is ``uint8 (N, 3, 96, 96)`` as the loader returns it; the file stores each channel column-major
    (the bytes of ``(N, 3, W, H)``). ``labels`` are the release's 1..10 (written to ``<split>_y.bin``); the
    ``unlabeled`` split has none.
    """
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (3, 96, 96):
        raise ValueError(f"STL-10 images are (N, 3, 96, 96), got {images.shape}")
    (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
    if labels is not None:
        (folder / f"{split}_y.bin").write_bytes(np.asarray(labels, dtype=np.uint8).tobytes())
    return folder


def write_svhn(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``root/svhn/<split>_32x32.mat`` as the official MATLAB file and return its path.

    ``images`` is ``uint8 (N, 3, 32, 32)`` as the loader returns it (stored as ``X`` of shape ``(32, 32, 3, N)``);
    ``labels`` are the release's 1..10, 10 standing for the digit 0 (stored as ``y`` of shape ``(N, 1)``).
    """
    import scipy.io

    folder = Path(root) / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"SVHN images are (N, 3, 32, 32), got {images.shape}")
    path = folder / f"{split}_32x32.mat"
    y = np.asarray(labels, dtype=np.uint8).reshape(-1, 1)
    scipy.io.savemat(path, {"X": np.ascontiguousarray(images.transpose(2, 3, 1, 0)), "y": y})
    return path


def write_cub200(
    root: Path, num_classes: int = 3, train_per_class: int = 4, test_per_class: int = 2, seed: int = 0
) -> Path:
    """Write ``root/cub200/`` in the 2010 release's layout: ``images/<NNN.Name>/<Name>_<k>.jpg`` (random photographs
    of varying size) and ``lists/{train,test}.txt``; classes 001..``num_classes``. Returns the folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / "cub200"
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for c in range(1, num_classes + 1):
        name = f"Bird_{c}"
        for k in range(train_per_class + test_per_class):
            entry = f"{c:03d}.{name}/{name}_{k:04d}.jpg"
            path = folder / "images" / entry
            path.parent.mkdir(parents=True, exist_ok=True)
            height, width = (int(v) for v in rng.integers(20, 60, size=2))
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
            lists["train" if k < train_per_class else "test"].append(entry)
    (folder / "lists").mkdir(parents=True, exist_ok=True)
    for split, entries in lists.items():
        (folder / "lists" / f"{split}.txt").write_text("".join(f"{e}\n" for e in entries))
    return folder
