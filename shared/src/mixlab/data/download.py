"""Explicit ``--download``: official URLs, md5 checksums, streaming with a progress bar, atomic extraction.

Nothing here runs unless a user asked for a download (``download=True``). A download goes to a temporary name and is
renamed only after its md5 matches; an archive is extracted into a temporary folder inside the data root and its
top-level entries are renamed into place only when the extraction has finished, so an interrupted download never
leaves something that looks like a dataset. Tests point :data:`SOURCES` at ``file://`` URLs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mixlab.errors import DatasetError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    """One file of an official release. ``extract``: an archive unpacked into the data root; otherwise the file is
    stored as ``root/subdir/filename``."""

    url: str
    filename: str
    md5: str
    size: str
    extract: bool = True
    subdir: str = ""


#: Official sources, keyed by dataset then by split ("all" when one archive holds every split; "split/part" when a
#: split is several files, e.g. MNIST's images and labels). Checksums are the ones the releases publish (and
#: torchvision checks); a test may replace entries with ``file://`` URLs.


def _idx_resources(base: str, subdir: str, *files: tuple[str, str]) -> dict[str, Resource]:
    """The four gzipped idx files of an MNIST-family release: (md5, size) of the train images, train labels, test
    images and test labels, in that order."""
    names = (("train", "train", "images", 3), ("train", "train", "labels", 1), ("test", "t10k", "images", 3),
             ("test", "t10k", "labels", 1))  # fmt: skip
    resources = {}
    for (split, stem, part, rank), (md5, size) in zip(names, files, strict=True):
        name = f"{stem}-{part}-idx{rank}-ubyte.gz"
        resources[f"{split}/{part}"] = Resource(f"{base}/{name}", name, md5, size, extract=False, subdir=subdir)
    return resources


SOURCES: dict[str, dict[str, Resource]] = {
    "cifar10": {
        "all": Resource(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            "163 MB",
        )
    },
    "cifar100": {
        "all": Resource(
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
            "161 MB",
        )
    },
    "svhn": {
        "train": Resource(
            "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
            "train_32x32.mat",
            "e26dedcc434d2e4c54c9b2d4a06d8373",
            "182 MB",
            extract=False,
            subdir="svhn",
        ),
        "test": Resource(
            "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
            "test_32x32.mat",
            "eb5a983be6a315427106f1b164d9cef3",
            "64 MB",
            extract=False,
            subdir="svhn",
        ),
        "extra": Resource(
            "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat",
            "extra_32x32.mat",
            "a93ce644f1a588dc4d68dda5feec44a7",
            "1.3 GB",
            extract=False,
            subdir="svhn",
        ),
    },
    "stl10": {
        "all": Resource(
            "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
            "stl10_binary.tar.gz",
            "91f7769df0f17e558f3565bffb0c7dfb",
            "2.6 GB",
        )
    },
    "tinyimagenet": {
        "all": Resource(
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
            "tiny-imagenet-200.zip",
            "90528d7ca1a48142e341f4ef8d21d0de",
            "248 MB",
        )
    },
    "cifar100c": {
        "all": Resource(
            "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar",
            "CIFAR-100-C.tar",
            "11f0ed0f1191edbf9fa23466ae6021d3",
            "2.9 GB",
        )
    },
    # The idx files, gzipped, as the releases publish them (md5s: torchvision's for MNIST, whose original host no
    # longer serves them; the zalandoresearch/fashion-mnist README's for Fashion-MNIST).
    "mnist": _idx_resources(
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "mnist",
        ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "9.9 MB"),
        ("d53e105ee54ea40749a09fcbcd1e9432", "29 KB"),
        ("9fb629c4189551a2d022fa330f9573f3", "1.6 MB"),
        ("ec29112dd5afa0611ce80d1b7f02629c", "4.5 KB"),
    ),
    "fashion-mnist": _idx_resources(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "fashion-mnist",
        ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "26 MB"),
        ("25c81989df183df01b3e8a0aad5dffbe", "30 KB"),
        ("bef4ecab320f06d8554ea6380940ec79", "4.4 MB"),
        ("bb300cfdad3c16e7a12a480ee83cd310", "5 KB"),
    ),
}


def resources_for(name: str, split: str | None = None) -> list[Resource]:
    """The files to fetch for ``name`` (only the requested split's file where splits are separate files)."""
    if name not in SOURCES:
        raise DatasetError(f"dataset {name!r} has no download source; known sources: {', '.join(SOURCES)}.")
    table = SOURCES[name]
    if "all" in table:
        return [table["all"]]
    if split is None:
        return list(table.values())
    chosen = [resource for key, resource in table.items() if key.split("/")[0] == split]
    if not chosen:
        splits = ", ".join(dict.fromkeys(key.split("/")[0] for key in table))
        raise DatasetError(f"dataset {name!r} has no download for split {split!r}; splits: {splits}.")
    return chosen


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stream(url: str, destination: Path, progress: bool) -> str:
    """Copy ``url`` into ``destination`` chunk by chunk; return the md5 of what was written."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    digest = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "mixlab"})
    with urllib.request.urlopen(request, timeout=60) as response, open(destination, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
            task = bar.add_task(f"download {Path(destination).name.split('.part')[0]}", total=total)
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.advance(task, len(chunk))
    return digest.hexdigest()


def fetch(resource: Resource, directory: Path, progress: bool = True) -> Path:
    """Download ``resource`` into ``directory`` under its own name, verifying its md5; return the final path.

    A file already there with the right checksum (a previous download, or one placed by hand) is reused.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / resource.filename
    if final.is_file() and md5sum(final) == resource.md5:
        return final
    temporary = directory / f"{resource.filename}.part-{os.getpid()}"
    try:
        got = _stream(resource.url, temporary, progress)
    except (urllib.error.URLError, OSError, ValueError) as error:
        temporary.unlink(missing_ok=True)
        raise DatasetError(
            f"could not download {resource.url}. The request failed ({type(error).__name__}: {error}); check the "
            f"network connection and try again, or download {resource.filename} ({resource.size}) by other means "
            f"into {directory} and re-run with --download to verify and extract it."
        ) from None
    if got != resource.md5:
        temporary.unlink(missing_ok=True)
        raise DatasetError(
            f"the download of {resource.url} failed its md5 check. It has md5 {got}, but the official file has "
            f"{resource.md5}: the transfer was corrupted or the server returned something else (an error page, a "
            "proxy notice). Nothing was kept; try again later."
        )
    os.replace(temporary, final)
    return final


def _safe_zip_members(archive: zipfile.ZipFile) -> None:
    for member in archive.namelist():
        parts = Path(member).parts
        if member.startswith(("/", "\\")) or ".." in parts:
            raise DatasetError(f"the archive {archive.filename} holds an unsafe path {member!r}; refusing to extract.")


def extract(archive: Path, root: Path) -> list[Path]:
    """Unpack ``archive`` into ``root`` atomically per top-level entry; return the entries created.

    Existing entries are never overwritten: a clash raises :class:`DatasetError` naming the folder to move away.
    """
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mixlab-extract-", dir=root))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as handle:
                    _safe_zip_members(handle)
                    handle.extractall(staging)
            else:
                with tarfile.open(archive) as handle:
                    handle.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
            raise DatasetError(
                f"could not extract {archive}: the archive is damaged. Delete it and re-run with --download "
                f"(extracting it raised {type(error).__name__}: {error})."
            ) from None
        entries = sorted(staging.iterdir())
        clashes = [root / entry.name for entry in entries if (root / entry.name).exists()]
        if clashes:
            raise DatasetError(
                f"extracting {archive.name} would overwrite existing files. {', '.join(map(str, clashes))} already "
                "exist(s) but could not be loaded; move or delete it and re-run with --download."
            )
        created = []
        for entry in entries:
            os.replace(entry, root / entry.name)
            created.append(root / entry.name)
        return created
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_dataset(
    name: str, root: Path, split: str | None = None, *, progress: bool = True, keep_archive: bool = False
) -> None:
    """Fetch (and unpack) the official release of ``name`` into the data root ``root``."""
    for resource in resources_for(name, split):
        if resource.extract:
            archive = fetch(resource, root, progress)
            extract(archive, root)
            if not keep_archive:
                archive.unlink(missing_ok=True)
        else:
            fetch(resource, root / resource.subdir if resource.subdir else root, progress)


def how_to_get(name: str, root: Path, split: str | None = None) -> str:
    """The sentence an error message uses to say how to obtain ``name``."""
    if name not in SOURCES:
        return ""
    resources = resources_for(name, split)
    files = ", ".join(f"{r.filename} ({r.size}) from {r.url}" for r in resources)
    it = "them" if len(resources) > 1 else "it"
    unpack = f"extract {it} into" if any(r.extract for r in resources) else f"store {it} in"
    md5 = "their md5s" if len(resources) > 1 else "its md5"
    target = root / resources[0].subdir if resources[0].subdir else root
    return (
        f"Re-run with --download (download=True in Python) to fetch {files}, verify {md5} and {unpack} "
        f"{target}, or put {it} there yourself."
    )
