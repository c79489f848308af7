"""On-disk loaders on miniature files written in each release's real format, their errors, and --download."""

import hashlib
import io
import pickle
import tarfile
import urllib.request
import warnings
import zipfile
from pathlib import Path

import mixlab.data.tinyimagenet as tiny
import numpy as np
import pytest
import scipy.io
import torch
from mixlab.data import STANDARD_CORRUPTIONS, build_dataset, iter_cifar100c
from mixlab.data import download as dl
from mixlab.errors import DatasetError
from PIL import Image

RNG = np.random.default_rng(0)


def u8(*shape):
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


# --- CIFAR-10 / CIFAR-100 (python pickles) ----------------------------------------------------------------------


def write_cifar10(root: Path, per_batch=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    content = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = u8(per_batch, 3072), RNG.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": ["x.png"] * per_batch}, f)
        content[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, f)
    train = [content[f"data_batch_{i}"] for i in range(1, 6)]
    return (np.concatenate([d for d, _ in train]), sum((lab for _, lab in train), []), *content["test_batch"])


def test_cifar10_round_trip(tmp_path):
    train_x, train_y, test_x, test_y = write_cifar10(tmp_path)
    train = build_dataset("cifar10", "train", data_root=tmp_path)
    test = build_dataset("cifar10", "test", data_root=tmp_path)
    assert train.images.shape == (15, 3, 32, 32) and len(test) == 3
    assert torch.equal(train.images, torch.from_numpy(train_x.reshape(-1, 3, 32, 32)))  # R, G, B planes
    assert train.targets.tolist() == train_y and test.targets.tolist() == test_y
    assert train.class_names == [f"class{i}" for i in range(10)] and train.mean == (0.4914, 0.4824, 0.4467)
    # --data-root may also point at the dataset folder itself
    direct = build_dataset("cifar10", "test", data_root=tmp_path / "cifar-10-batches-py")
    assert torch.equal(direct.images, test.images)


def test_cifar100_round_trip_with_python2_style_bytes_keys(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    written = {}
    for split, n in (("train", 5), ("test", 2)):
        data, fine = u8(n, 3072), RNG.integers(0, 100, n).tolist()
        with open(folder / split, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": fine, b"coarse_labels": [0] * n}, f)
        written[split] = (data, fine)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
    for split in ("train", "test"):
        data = build_dataset("cifar100", split, data_root=tmp_path)
        assert torch.equal(data.images, torch.from_numpy(written[split][0].reshape(-1, 3, 32, 32)))
        assert data.targets.tolist() == written[split][1] and data.num_classes == 100
    assert data.class_names[:2] == ["c0", "c1"]


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar_refuses_code_in_pickles_and_reports_malformed_files(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": _Evil(), "labels": []}))
    with pytest.raises(DatasetError, match="test_batch could not be read.*refusing"):
        build_dataset("cifar10", "test", data_root=tmp_path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="--download"):
        build_dataset("cifar10", "test", data_root=tmp_path)
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DatasetError, match=r"uint8 \(N, 3072\)"):
        build_dataset("cifar10", "test", data_root=tmp_path)


@pytest.mark.parametrize(
    "name,folder",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("svhn", "svhn"),
        ("stl10", "stl10_binary"),
        ("tinyimagenet", "tiny-imagenet-200"),
        ("cifar100c", "CIFAR-100-C"),
    ],
)
def test_missing_dataset_names_the_path_and_download(tmp_path, monkeypatch, name, folder):
    def no_network(*args, **kwargs):
        raise AssertionError("a loader touched the network without download=True")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    split = "test"
    with pytest.raises(DatasetError) as error:
        build_dataset(name, split, data_root=tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty") in message and "--download" in message and folder in message
    assert "\n" not in message  # one paragraph


def test_incomplete_folder_is_reported(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="incomplete.*lacks data_batch_3"):
        build_dataset("cifar10", "test", data_root=tmp_path)


# --- SVHN (.mat) --------------------------------------------------------------------------------------------------


def write_svhn(folder: Path, split: str, n=7):
    folder.mkdir(parents=True, exist_ok=True)
    x, y = u8(32, 32, 3, n), RNG.integers(1, 11, size=(n, 1)).astype(np.uint8)
    y[0, 0] = 10  # the digit 0 is stored as 10
    scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_svhn_round_trip(tmp_path, split):
    x, y = write_svhn(tmp_path / "svhn", split)
    data = build_dataset("svhn", split, data_root=tmp_path)
    assert data.images.shape == (7, 3, 32, 32)
    for i in range(7):
        assert torch.equal(data.images[i], torch.from_numpy(x[:, :, :, i].transpose(2, 0, 1).copy()))
    expected = y[:, 0].astype(np.int64) % 10
    assert data.targets.tolist() == expected.tolist() and data.targets[0] == 0


def test_svhn_in_the_data_root_itself_and_malformed(tmp_path):
    write_svhn(tmp_path, "test", n=2)  # torchvision's layout: files directly in the root
    assert len(build_dataset("svhn", "test", data_root=tmp_path)) == 2
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="test_32x32.mat could not be read"):
        build_dataset("svhn", "test", data_root=tmp_path)


# --- STL-10 (column-major binary) ---------------------------------------------------------------------------------


def write_stl_images(path: Path, images: np.ndarray):
    # the release stores each channel column-major: bytes of (N, 3, W, H)
    path.write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())


def test_stl10_round_trip(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    train, test, unlabeled = u8(4, 3, 96, 96), u8(2, 3, 96, 96), u8(3, 3, 96, 96)
    write_stl_images(folder / "train_X.bin", train)
    write_stl_images(folder / "test_X.bin", test)
    write_stl_images(folder / "unlabeled_X.bin", unlabeled)
    (folder / "train_y.bin").write_bytes(np.array([1, 10, 3, 4], np.uint8).tobytes())
    (folder / "test_y.bin").write_bytes(np.array([2, 9], np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(f"n{i}" for i in range(10)))
    (folder / "fold_indices.txt").write_text("\n".join(["3 0"] + ["1"] * 9))
    data = build_dataset("stl10", "train", data_root=tmp_path)
    assert torch.equal(data.images, torch.from_numpy(train)) and data.targets.tolist() == [0, 9, 2, 3]
    assert data.class_names[0] == "n0"
    assert torch.equal(build_dataset("stl10", "test", data_root=tmp_path).images, torch.from_numpy(test))
    pool = build_dataset("stl10", "unlabeled", data_root=tmp_path)
    assert torch.equal(pool.images, torch.from_numpy(unlabeled)) and pool.targets.tolist() == [-1, -1, -1]
    assert torch.equal(pool.subset([2]).images[0], torch.from_numpy(unlabeled[2]))
    fold = build_dataset("stl10", "train", data_root=tmp_path, fold=0)
    assert fold.targets.tolist() == [3, 0] and torch.equal(fold.images[1], torch.from_numpy(train[0]))
    with pytest.raises(DatasetError, match="fold"):
        build_dataset("stl10", "test", data_root=tmp_path, fold=0)
    (folder / "test_y.bin").write_bytes(np.array([2, 9, 1], np.uint8).tobytes())
    with pytest.raises(DatasetError, match="3 labels for 2 images"):
        build_dataset("stl10", "test", data_root=tmp_path)
    (folder / "test_X.bin").write_bytes(b"123")
    with pytest.raises(DatasetError, match="not a whole number"):
        build_dataset("stl10", "test", data_root=tmp_path)


# --- Tiny ImageNet (JPEG folder) ----------------------------------------------------------------------------------

WNIDS = ["n03", "n01", "n02"]  # deliberately unsorted in wnids.txt; class index follows the sorted order


def write_tiny(root: Path):
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tsalamander\nn03\tbullfrog\n")
    for wnid in WNIDS:
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(2):
            mode = "L" if (wnid, k) == ("n02", 1) else "RGB"  # the release has a few greyscale JPEGs
            Image.fromarray(u8(64, 64, 3)).convert(mode).save(images / f"{wnid}_{k}.JPEG", quality=95)
    annotations = []
    for k, wnid in enumerate(["n02", "n03", "n01", "n02"]):
        Image.fromarray(u8(64, 64, 3)).save(folder / "val" / "images" / f"val_{k}.JPEG", quality=95)
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return folder


def decoded(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).transpose(2, 0, 1).copy())


def test_tinyimagenet_round_trip_and_cache(tmp_path, monkeypatch):
    folder = write_tiny(tmp_path)
    train = build_dataset("tinyimagenet", "train", data_root=tmp_path)
    assert train.images.shape == (6, 3, 64, 64) and train.targets.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.class_names == ["goldfish, Carassius auratus", "salamander", "bullfrog"]
    assert torch.equal(train.images[3], decoded(folder / "train" / "n02" / "images" / "n02_1.JPEG"))
    assert torch.equal(train.images[3][0], train.images[3][1])  # greyscale repeated to 3 channels
    test = build_dataset("tinyimagenet", "test", data_root=tmp_path)
    assert test.targets.tolist() == [1, 2, 0, 1] and test.split == "test"
    assert torch.equal(test.images[2], decoded(folder / "val" / "images" / "val_2.JPEG"))
    assert (folder / ".mixlab-cache" / "train.json").is_file()

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(tiny, "decode", no_decode)
    again = build_dataset("tinyimagenet", "train", data_root=tmp_path)
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)
    # changing a file invalidates the cache
    Image.fromarray(u8(64, 64, 3)).save(folder / "train" / "n01" / "images" / "n01_0.JPEG", quality=80)
    with pytest.raises(AssertionError, match="decoded although"):
        build_dataset("tinyimagenet", "train", data_root=tmp_path)


def test_tinyimagenet_without_a_writable_cache_still_loads(tmp_path):
    folder = write_tiny(tmp_path)
    (folder / ".mixlab-cache").write_text("a file where the cache folder should be")  # mkdir fails, as read-only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = build_dataset("tinyimagenet", "train", data_root=tmp_path)
    assert len(data) == 6 and any("cache" in str(w.message) for w in caught)


def test_tinyimagenet_malformed(tmp_path):
    folder = write_tiny(tmp_path)
    (folder / "val" / "images" / "val_1.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="val_1.JPEG could not be read"):
        build_dataset("tinyimagenet", "test", data_root=tmp_path, cache=False)
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\n")
    with pytest.raises(DatasetError, match="line 1"):
        build_dataset("tinyimagenet", "test", data_root=tmp_path)


# --- CIFAR-100-C (.npy) -------------------------------------------------------------------------------------------


def write_cifar100c(root: Path, per_severity=2, extra=("saturate",)):
    folder = root / "CIFAR-100-C"
    folder.mkdir(parents=True)
    labels = np.tile(RNG.integers(0, 100, per_severity), 5)
    np.save(folder / "labels.npy", labels)
    arrays = {}
    for name in STANDARD_CORRUPTIONS + tuple(extra):
        arrays[name] = u8(5 * per_severity, 32, 32, 3)
        np.save(folder / f"{name}.npy", arrays[name])
    return folder, arrays, labels


def test_cifar100c_pools_every_file_severity_major(tmp_path):
    folder, arrays, labels = write_cifar100c(tmp_path)
    data = build_dataset("cifar100c", "test", data_root=tmp_path)
    names = list(STANDARD_CORRUPTIONS) + ["saturate"]  # the 15 standard then the extra files present
    assert len(data) == len(names) * 5 * 2 and data.num_classes == 100 and data.split == "test"
    expected = np.concatenate([arrays[n] for n in names]).transpose(0, 3, 1, 2)
    assert torch.equal(data.images, torch.from_numpy(np.ascontiguousarray(expected)))
    assert data.targets.tolist() == np.tile(labels, len(names)).tolist()
    sub = build_dataset("cifar100c", "test", data_root=tmp_path, corruptions=["fog"], severities=[2, 5])
    fog = arrays["fog"].transpose(0, 3, 1, 2)
    assert torch.equal(sub.images, torch.from_numpy(np.ascontiguousarray(np.concatenate([fog[2:4], fog[8:10]]))))


def test_cifar100c_per_block_iteration_and_errors(tmp_path):
    folder, arrays, labels = write_cifar100c(tmp_path, extra=())
    blocks = list(iter_cifar100c(tmp_path, corruptions=["snow", "contrast"], severities=(1, 3)))
    assert [(c, s) for c, s, _ in blocks] == [("snow", 1), ("snow", 3), ("contrast", 1), ("contrast", 3)]
    snow3 = blocks[1][2]
    assert torch.equal(snow3.images, torch.from_numpy(np.ascontiguousarray(arrays["snow"][4:6].transpose(0, 3, 1, 2))))
    assert snow3.targets.tolist() == labels[4:6].tolist()
    assert len(list(iter_cifar100c(tmp_path))) == 15 * 5
    with pytest.raises(DatasetError, match="unknown CIFAR-100-C corruption"):
        build_dataset("cifar100c", "test", data_root=tmp_path, corruptions=["rain"])
    with pytest.raises(DatasetError, match="severities"):
        build_dataset("cifar100c", "test", data_root=tmp_path, severities=[6])
    with pytest.raises(DatasetError, match="saturate.npy not found"):
        build_dataset("cifar100c", "test", data_root=tmp_path, corruptions=["saturate"])
    (folder / "fog.npy").unlink()
    with pytest.raises(DatasetError, match="lacks standard corruption file.*fog.npy"):
        build_dataset("cifar100c", "test", data_root=tmp_path)
    np.save(folder / "fog.npy", u8(7, 32, 32, 3))
    with pytest.raises(DatasetError, match="fog.npy could not be read"):
        build_dataset("cifar100c", "test", data_root=tmp_path, corruptions=["fog"])


# --- --download (file:// URLs only: tests never touch the network) ------------------------------------------------


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_cifar10_tarball(tmp_path: Path) -> tuple[Path, tuple]:
    source = tmp_path / "source"
    content = write_cifar10(source)
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, content


def test_download_verifies_extracts_and_loads(tmp_path, monkeypatch):
    archive, (train_x, _, _, _) = make_cifar10_tarball(tmp_path)
    resource = dl.Resource(archive.as_uri(), "cifar-10-python.tar.gz", md5(archive), "1 KB")
    monkeypatch.setitem(dl.SOURCES, "cifar10", {"all": resource})
    root = tmp_path / "root"
    data = build_dataset("cifar10", "train", data_root=root, download=True)
    assert torch.equal(data.images, torch.from_numpy(train_x.reshape(-1, 3, 32, 32)))
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no archive, temp or staging left
    # a second build finds the data and does not download again
    monkeypatch.setitem(dl.SOURCES, "cifar10", {"all": dl.Resource("file:///nonexistent", "x.tgz", "0", "0")})
    assert len(build_dataset("cifar10", "test", data_root=root, download=True)) == 3


def test_download_reuses_a_hand_placed_archive(tmp_path, monkeypatch):
    archive, _ = make_cifar10_tarball(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / archive.name).write_bytes(archive.read_bytes())  # e.g. fetched by a browser; the URL is unreachable
    offline = dl.Resource((tmp_path / "unreachable").as_uri(), archive.name, md5(archive), "1 KB")
    monkeypatch.setitem(dl.SOURCES, "cifar10", {"all": offline})
    assert len(build_dataset("cifar10", "test", data_root=root, download=True)) == 3


def test_download_checksum_mismatch_keeps_nothing(tmp_path, monkeypatch):
    archive, _ = make_cifar10_tarball(tmp_path)
    bad = dl.Resource(archive.as_uri(), "cifar-10-python.tar.gz", "0" * 32, "1 KB")
    monkeypatch.setitem(dl.SOURCES, "cifar10", {"all": bad})
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="md5"):
        build_dataset("cifar10", "train", data_root=root, download=True)
    assert list(root.iterdir()) == []


def test_download_unreachable_url_is_a_dataset_error(tmp_path, monkeypatch):
    missing = dl.Resource((tmp_path / "nothing.tar.gz").as_uri(), "cifar-10-python.tar.gz", "0" * 32, "1 KB")
    monkeypatch.setitem(dl.SOURCES, "cifar10", {"all": missing})
    with pytest.raises(DatasetError, match="could not download"):
        build_dataset("cifar10", "train", data_root=tmp_path / "root", download=True)


def test_download_of_a_single_file_dataset(tmp_path, monkeypatch):
    x, _ = write_svhn(tmp_path / "server", "test", n=3)
    served = tmp_path / "server" / "test_32x32.mat"
    monkeypatch.setitem(
        dl.SOURCES,
        "svhn",
        {"test": dl.Resource(served.as_uri(), "test_32x32.mat", md5(served), "1 KB", extract=False, subdir="svhn")},
    )
    data = build_dataset("svhn", "test", data_root=tmp_path / "root", download=True)
    assert (tmp_path / "root" / "svhn" / "test_32x32.mat").is_file() and len(data) == 3


def test_extract_refuses_unsafe_zip_and_existing_folders(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as handle:
        handle.writestr("../outside.txt", "x")
    with pytest.raises(DatasetError, match="unsafe path"):
        dl.extract(evil, tmp_path / "root")
    assert not (tmp_path / "outside.txt").exists()
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as handle:
        handle.writestr("tiny-imagenet-200/wnids.txt", "n01\n")
    assert dl.extract(good, tmp_path / "root") == [tmp_path / "root" / "tiny-imagenet-200"]
    with pytest.raises(DatasetError, match="would overwrite"):
        dl.extract(good, tmp_path / "root")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(io.BytesIO(b"\x1f\x8b garbage").getvalue())
    with pytest.raises(DatasetError, match="damaged"):
        dl.extract(broken, tmp_path / "root2")


def test_official_sources_are_complete():
    for name in ("cifar10", "cifar100", "svhn", "stl10", "tinyimagenet", "cifar100c"):
        for resource in dl.resources_for(name):
            assert resource.url.startswith("http") and len(resource.md5) == 32
    assert {r.filename for r in dl.resources_for("svhn")} == {"train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"}
    assert dl.resources_for("svhn", "extra")[0].filename == "extra_32x32.mat"
