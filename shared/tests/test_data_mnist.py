"""MNIST / Fashion-MNIST on miniature idx files written in the real format (gzipped and not), their errors, the
torchvision and Debian locations, and --download from file:// URLs. Nothing here touches the network or depends on
Debian's dataset-fashion-mnist being installed (its location is pointed at a temporary folder)."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from mixlab.data import build_dataset, dataset_info, mnist
from mixlab.data import download as dl
from mixlab.data.dataset import ImageDataset, require_rgb
from mixlab.errors import DatasetError

RNG = np.random.default_rng(0)
STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": mnist.FILES["test"]}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path: Path, payload: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(path.name + ".gz") if gz else path
    target.write_bytes(gzip.compress(payload) if gz else payload)
    return target


def write_split(folder: Path, split: str, n: int, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 28x28 images (a known pattern: never 0 in the centre pixel) and labels 0..9 in the idx format."""
    images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 14, 14] = np.arange(1, n + 1, dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    stem_images, stem_labels = mnist.FILES[split]
    write(folder / stem_images, idx_bytes(images, mnist.IMAGES_MAGIC), gz)
    write(folder / stem_labels, idx_bytes(labels, mnist.LABELS_MAGIC), gz)
    return images, labels


@pytest.fixture(autouse=True)
def no_debian(tmp_path, monkeypatch):
    """Debian's location is a folder that does not exist unless a test fills it."""
    debian = tmp_path / "debian" / "fashion-mnist"
    monkeypatch.setitem(mnist.FALLBACKS, "fashion-mnist", (debian,))
    return debian


def one_paragraph(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# --- reading ------------------------------------------------------------------------------------------------------


def test_round_trip_gzipped_and_plain(tmp_path):
    train_x, train_y = write_split(tmp_path / "mnist", "train", 20, gz=True)
    test_x, test_y = write_split(tmp_path / "mnist", "test", 10, gz=False)
    train = build_dataset("mnist", "train", data_root=tmp_path)
    test = build_dataset("mnist", "test", data_root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (10, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.targets.dtype == torch.int64
    # centred, zero-padded by 2 pixels on each side, the grey channel repeated
    assert torch.equal(train.images[:, 0, 2:30, 2:30], torch.from_numpy(train_x))
    assert torch.equal(train.images[:, 1], train.images[:, 0]) and torch.equal(train.images[:, 2], train.images[:, 0])
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert int(train.images[:, :, border].max()) == 0
    assert torch.equal(test.images[:, 2, 2:30, 2:30], torch.from_numpy(test_x))
    assert train.targets.tolist() == train_y.tolist() and test.targets.tolist() == test_y.tolist()
    assert train.image_size == (32, 32) and train.num_classes == 10 and train.class_names == [str(d) for d in range(10)]
    assert train.mean == dataset_info("mnist").mean == (mnist.MNIST_MEAN,) * 3
    assert train.std == dataset_info("mnist").std == (mnist.MNIST_STD,) * 3


def test_fashion_mnist_names_and_spellings(tmp_path):
    write_split(tmp_path / "fashion-mnist", "test", 10)
    data = build_dataset("FashionMNIST", "test", data_root=tmp_path)
    assert data.name == "fashion-mnist" and data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert data.mean == (mnist.FASHION_MNIST_MEAN,) * 3 and data.std == (mnist.FASHION_MNIST_STD,) * 3
    info = dataset_info("fashion-mnist")
    assert (info.num_classes, info.image_size, info.splits, info.has_download) == (10, 32, ("train", "test"), True)
    assert info.options == ("channels", "pad") and "dataset-fashion-mnist" in info.layout


def test_channels_and_pad_options(tmp_path):
    images, _ = write_split(tmp_path / "mnist", "test", 10)
    grey = build_dataset("mnist", "test", data_root=tmp_path, channels=1)
    assert grey.images.shape == (10, 1, 32, 32) and grey.mean == (mnist.MNIST_MEAN,) and grey.channels == 1
    raw = build_dataset("mnist", "test", data_root=tmp_path, pad=False)
    assert raw.images.shape == (10, 3, 28, 28) and torch.equal(raw.images[:, 1], torch.from_numpy(images))
    assert raw.mean == (0.1307,) * 3 and raw.std == (0.3081,) * 3
    raw_grey = build_dataset("mnist", "test", data_root=tmp_path, channels=1, pad=False)
    assert raw_grey.images.shape == (10, 1, 28, 28) and raw_grey.std == (0.3081,)
    for bad in (2, True, "1", 1.0, None):
        with pytest.raises(DatasetError, match="channels must be 1"):
            build_dataset("mnist", "test", data_root=tmp_path, channels=bad)
    with pytest.raises(DatasetError, match="pad must be"):
        build_dataset("mnist", "test", data_root=tmp_path, pad="yes")
    with pytest.raises(DatasetError, match="does not take the option"):
        build_dataset("mnist", "test", data_root=tmp_path, colour=False)


def test_grey_images_are_refused_where_rgb_is_needed(tmp_path):
    write_split(tmp_path / "mnist", "test", 10)
    grey = build_dataset("mnist", "test", data_root=tmp_path, channels=1)
    with pytest.raises(DatasetError, match="3-channel.*needed by the backbones.*channels=1.*channels=3"):
        require_rgb(grey, "the backbones")
    require_rgb(build_dataset("mnist", "test", data_root=tmp_path), "the backbones")  # RGB: accepted
    with pytest.raises(DatasetError, match="one per channel"):
        ImageDataset(grey.images, grey.targets, 10, (0.5,) * 3, (0.5,) * 3, "t", "test")
    with pytest.raises(DatasetError, match=r"\(N, 3, H, W\)"):
        ImageDataset(
            torch.zeros(2, 2, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.long),
            2,
            (0.5,) * 2,
            (0.5,) * 2,
            "t",
            "test",
        )


# --- where the files are looked for -------------------------------------------------------------------------------


def test_torchvision_layout_and_data_root_naming_the_folder(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    images, _ = write_split(raw, "test", 10, gz=True)
    write_split(raw, "test", 10, gz=False)  # torchvision keeps the .gz and the extracted file side by side
    plain = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes(), np.uint8, offset=16).reshape(-1, 28, 28).copy()
    data = build_dataset("fashion-mnist", "test", data_root=tmp_path)
    assert torch.equal(data.images[:, 0, 2:30, 2:30], torch.from_numpy(plain))  # the plain file is preferred
    assert not np.array_equal(plain, images)
    # --data-root may name the dataset's folder itself
    assert len(build_dataset("fashion-mnist", "test", data_root=raw)) == 10
    write_split(tmp_path / "elsewhere" / "mnist", "test", 10)
    assert len(build_dataset("mnist", "test", data_root=tmp_path / "elsewhere" / "mnist")) == 10


def test_loose_files_in_the_data_root_are_not_guessed_at(tmp_path):
    write_split(tmp_path, "test", 10)  # MNIST or Fashion-MNIST? The file names are the same.
    with pytest.raises(DatasetError, match="not found"):
        build_dataset("fashion-mnist", "test", data_root=tmp_path)


def test_debian_location_is_the_fallback(tmp_path, no_debian):
    debian_x, _ = write_split(no_debian, "train", 20)  # as Debian installs them: the four .gz files
    write_split(no_debian, "test", 10)
    root = tmp_path / "empty-root"
    data = build_dataset("fashion-mnist", "train", data_root=root)
    assert len(data) == 20 and torch.equal(data.images[:, 0, 2:30, 2:30], torch.from_numpy(debian_x))
    assert not root.exists()  # nothing written under the data root
    # the data root comes first
    own_x, _ = write_split(root / "fashion-mnist", "train", 20)
    data = build_dataset("fashion-mnist", "train", data_root=root)
    assert torch.equal(data.images[:, 0, 2:30, 2:30], torch.from_numpy(own_x))
    # MNIST has no Debian package: the Fashion-MNIST files there are never read as MNIST
    with pytest.raises(DatasetError, match="MNIST was not found"):
        build_dataset("mnist", "train", data_root=root)
    assert mnist.DEBIAN_FASHION_MNIST == Path("/usr/share/datasets/fashion-mnist")


def test_missing_data_error_is_one_paragraph_naming_the_folder_and_download(tmp_path, no_debian):
    with pytest.raises(DatasetError) as error:
        build_dataset("fashion-mnist", "train", data_root=tmp_path)
    text = one_paragraph(error)
    assert f"{tmp_path / 'fashion-mnist'}" in text and str(no_debian) in text and "--download" in text
    assert "train-images-idx3-ubyte" in text and "train-labels-idx1-ubyte" in text
    assert "apt-get install dataset-fashion-mnist` on Debian/Ubuntu" in text and "fashion-mnist.s3-website" in text
    assert "t10k" not in text  # only the requested split's files
    with pytest.raises(DatasetError) as error:
        build_dataset("mnist", "test", data_root=tmp_path)
    text = one_paragraph(error)
    assert f"{tmp_path / 'mnist'}" in text and "--download" in text and "apt-get" not in text
    # one file of the two present: said so
    write(tmp_path / "mnist" / "t10k-images-idx3-ubyte", b"", gz=False)
    with pytest.raises(DatasetError, match="holds only one of the two"):
        build_dataset("mnist", "test", data_root=tmp_path)


# --- malformed files ----------------------------------------------------------------------------------------------


def malformed_case(tmp_path: Path, which: str, payload: bytes, gz: bool = False) -> str:
    folder = tmp_path / "mnist"
    write_split(folder, "test", 10, gz=False)
    stem = mnist.FILES["test"][0 if which == "images" else 1]
    (folder / stem).unlink()
    write(folder / stem, payload, gz)
    with pytest.raises(DatasetError) as error:
        build_dataset("mnist", "test", data_root=tmp_path)
    text = one_paragraph(error)
    assert stem in text and "--download" in text
    return text


def test_wrong_magic_numbers(tmp_path):
    labels_as_images = idx_bytes(np.zeros(10, np.uint8), mnist.LABELS_MAGIC)
    assert "magic number 0x00000801, expected 0x00000803" in malformed_case(tmp_path, "images", labels_as_images)
    int32_labels = (0x00000C01).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(40)
    assert "0x00000C01" in malformed_case(tmp_path / "b", "labels", int32_labels)
    assert "shorter than an idx header" in malformed_case(tmp_path / "c", "labels", b"\x00\x00")


def test_truncated_and_overlong_files(tmp_path):
    images = idx_bytes(np.zeros((10, 28, 28), np.uint8), mnist.IMAGES_MAGIC)
    assert "truncated" in malformed_case(tmp_path / "a", "images", images[:-5])
    assert "truncated" in malformed_case(tmp_path / "b", "images", images[:-5], gz=True)
    assert "shorter than the 16-byte header" in malformed_case(tmp_path / "c", "images", images[:10])
    assert "longer than its header says" in malformed_case(tmp_path / "d", "images", images + b"\x00")
    # a damaged gzip stream (cut short, or corrupted) is the same kind of error, never a zlib traceback
    text = malformed_case(tmp_path / "e", "images", gzip.compress(images)[:-20])
    assert "EOFError" in text or "BadGzipFile" in text
    corrupted = bytearray(gzip.compress(images))
    corrupted[-8] ^= 0xFF  # the CRC
    assert "BadGzipFile" in malformed_case(tmp_path / "f", "images", bytes(corrupted))


def test_counts_sizes_and_labels_must_agree(tmp_path):
    eleven = idx_bytes(np.zeros(11, np.uint8), mnist.LABELS_MAGIC)
    assert "11 labels for the 10 images" in malformed_case(tmp_path / "a", "labels", eleven)
    big = idx_bytes(np.zeros((10, 32, 32), np.uint8), mnist.IMAGES_MAGIC)
    assert "32x32, expected 28x28" in malformed_case(tmp_path / "b", "images", big)
    ten = idx_bytes(np.full(10, 10, np.uint8), mnist.LABELS_MAGIC)
    assert "a label 10, expected 0..9" in malformed_case(tmp_path / "c", "labels", ten)


# --- download -----------------------------------------------------------------------------------------------------


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve(tmp_path: Path, monkeypatch, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Miniature releases under tmp_path/server and SOURCES[name] pointing at them (file:// URLs)."""
    server = tmp_path / "server"
    content = {"train": write_split(server, "train", 20), "test": write_split(server, "test", 10)}
    table = {}
    for split, stems in mnist.FILES.items():
        for part, stem in zip(("images", "labels"), stems):
            served = server / f"{stem}.gz"
            table[f"{split}/{part}"] = dl.Resource(
                served.as_uri(), served.name, md5(served), "1 KB", extract=False, subdir=name
            )
    monkeypatch.setitem(dl.SOURCES, name, table)
    return content


def test_download_fetches_only_the_split_verifies_and_loads(tmp_path, monkeypatch):
    content = serve(tmp_path, monkeypatch, "fashion-mnist")
    root = tmp_path / "root"
    data = build_dataset("fashion-mnist", "test", data_root=root, download=True)
    assert torch.equal(data.images[:, 0, 2:30, 2:30], torch.from_numpy(content["test"][0]))
    assert sorted(p.name for p in (root / "fashion-mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    # found on disk afterwards: no second download even when the source is gone
    monkeypatch.setitem(dl.SOURCES, "fashion-mnist", {})
    assert len(build_dataset("fashion-mnist", "test", data_root=root, download=True)) == 10


def test_download_checksum_mismatch_keeps_nothing(tmp_path, monkeypatch):
    serve(tmp_path, monkeypatch, "mnist")
    resource = dl.SOURCES["mnist"]["train/labels"]
    monkeypatch.setitem(
        dl.SOURCES["mnist"],
        "train/labels",
        dl.Resource(resource.url, resource.filename, "0" * 32, "1 KB", False, "mnist"),
    )
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="md5"):
        build_dataset("mnist", "train", data_root=root, download=True)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_official_sources_table():
    for name, host in (
        ("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        ("fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    ):
        table = dl.SOURCES[name]
        assert sorted(table) == ["test/images", "test/labels", "train/images", "train/labels"]
        for resource in table.values():
            assert resource.url == host + resource.filename and not resource.extract and resource.subdir == name
            assert len(resource.md5) == 32 and int(resource.md5, 16) >= 0
        assert [r.filename for r in dl.resources_for(name, "test")] == [f"{s}.gz" for s in mnist.FILES["test"]]
        assert len(dl.resources_for(name)) == 4
    assert dl.SOURCES["fashion-mnist"]["train/images"].md5 == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert dl.SOURCES["mnist"]["train/images"].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    with pytest.raises(DatasetError, match="no download for split 'extra'; splits: train, test"):
        dl.resources_for("mnist", "extra")


# --- statistics ---------------------------------------------------------------------------------------------------


def test_padded_statistics_match_the_constants_and_a_direct_computation():
    for m28, s28, m32, s32 in (
        (mnist.MNIST_MEAN_28, mnist.MNIST_STD_28, mnist.MNIST_MEAN, mnist.MNIST_STD),
        (mnist.FASHION_MNIST_MEAN_28, mnist.FASHION_MNIST_STD_28, mnist.FASHION_MNIST_MEAN, mnist.FASHION_MNIST_STD),
    ):
        mean, std = mnist.padded_statistics(m28, s28)
        assert abs(mean - m32) < 1e-4 and abs(std - s32) < 1e-4
    images = RNG.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    x28 = images / 255.0
    x32 = mnist.to_tensor(images, 1, pad=True).double() / 255
    mean, std = mnist.padded_statistics(float(x28.mean()), float(x28.std()))
    assert abs(mean - float(x32.mean())) < 1e-9 and abs(std - float(x32.std(unbiased=False))) < 1e-9


@pytest.mark.skipif(
    not (mnist.DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(), reason="dataset-fashion-mnist absent"
)
def test_real_debian_fashion_mnist_test_split(tmp_path, monkeypatch):
    monkeypatch.setitem(mnist.FALLBACKS, "fashion-mnist", (mnist.DEBIAN_FASHION_MNIST,))
    data = build_dataset("fashion-mnist", "test", data_root=tmp_path)
    assert data.images.shape == (10_000, 3, 32, 32) and data.class_counts().tolist() == [1000] * 10
