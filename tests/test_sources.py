"""Data sources: embedded sample, IDX reader, checksummed download, MNIST, EMNIST,
CSV and image folders. No test touches the network: downloads come from file://
mirrors, and "offline" is simulated with a port that refuses connections."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import string
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handwriting.data import embedded, emnist
from handwriting.data.csv_source import CSVFormatError, CSVSource
from handwriting.data.download import (
    DownloadError,
    RemoteFile,
    default_data_dir,
    ensure_files,
)
from handwriting.data.embedded import EmbeddedDataError, EmbeddedMNIST
from handwriting.data.emnist import EMNIST, split_files
from handwriting.data.folder import ImageFolderSource
from handwriting.data.idx import IDXFormatError, read_idx, write_idx
from handwriting.data.mnist import MNIST

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"  # same place as conftest.mnist_dir
needs_official_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"official MNIST files not available in {SHARED_MNIST}",
)
OFFLINE = "http://127.0.0.1:9/"  # discard port: connection refused at once


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _build_script():
    spec = importlib.util.spec_from_file_location(
        "build_embedded_data", ROOT / "scripts" / "build_embedded_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _glyphs(n: int, seed: int = 0) -> np.ndarray:
    """Asymmetric uint8 test images (so a transpose would be detected)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        row, col = rng.integers(4, 20, size=2)
        images[i, row : row + 6, col : col + 2] = 255  # tall bar
        images[i, 3, 3 + i % 20] = 128
    return images


# --------------------------------------------------------------------------- embedded


def test_embedded_sample_is_real_mnist_shaped_and_shuffled():
    data = EmbeddedMNIST().load()
    assert data.name == "embedded"
    assert data.classes == tuple("0123456789")
    assert data.test is None and data.val is None
    images, labels = data.train.images, data.train.labels
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    # Class counts of the first 10,000 official MNIST training digits.
    counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert np.bincount(labels, minlength=10).tolist() == counts
    assert len(np.unique(labels[:50])) >= 8  # shuffled, not sorted by class
    assert images[:, :2, :].mean() < 1 and images.max() == 255  # white ink on black


def test_embedded_pinned_hash_matches_file_and_provenance_doc():
    data = (ROOT / "handwriting" / "data" / "mnist_embedded.npz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == embedded.EXPECTED_SHA256
    doc = (ROOT / "handwriting" / "data" / "EMBEDDED_DATA.md").read_text()
    assert embedded.EXPECTED_SHA256 in doc
    assert "Yann LeCun" in doc and "Corinna Cortes" in doc and "Burges" in doc


def test_embedded_corrupt_file_is_rejected(monkeypatch):
    good = embedded._read_resource()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    monkeypatch.setattr(embedded, "_read_resource", lambda: bytes(flipped))
    with pytest.raises(EmbeddedDataError, match="corrupt.*reinstall"):
        EmbeddedMNIST().load()


def test_embedded_missing_file_is_reported(monkeypatch):
    monkeypatch.setattr(embedded, "RESOURCE", "no_such_file.npz")
    with pytest.raises(EmbeddedDataError, match="missing.*reinstall"):
        EmbeddedMNIST().load()


@needs_official_mnist
def test_embedded_sample_is_first_10000_official_training_images():
    data = EmbeddedMNIST().load().train
    official = read_idx(SHARED_MNIST / "train-images-idx3-ubyte.gz")[:10_000]
    official_labels = read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz")[:10_000]
    # Undo the documented shuffle: the file is class-sorted package data reordered.
    order = _build_script().seeded_order(10_000)
    class_sorted = np.empty_like(data.images)
    class_sorted[order] = data.images
    sorted_labels = np.empty_like(data.labels)
    sorted_labels[order] = data.labels
    by_class = np.argsort(official_labels, kind="stable")
    np.testing.assert_array_equal(sorted_labels, official_labels[by_class])
    np.testing.assert_array_equal(class_sorted, official[by_class])


def _fake_package(tmp_path: Path, value: float | None = None) -> bytes:
    """A tiny tarball in the npm package's layout (2 images per digit)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for digit in range(10):
            pixels = _glyphs(2, seed=digit).astype(np.float64)
            floats = np.round(pixels / 255, 3).ravel().tolist()
            if value is not None:
                floats[5] = value
            payload = json.dumps({"data": floats}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_build_script_decodes_exactly_and_writes_reproducible_npz(tmp_path):
    script = _build_script()
    images, labels = script.parse_digits(_fake_package(tmp_path))
    assert images.shape == (20, 28, 28) and labels.tolist() == sorted(labels.tolist())
    np.testing.assert_array_equal(images[:2], _glyphs(2, seed=0))
    first = script.write_npz(tmp_path / "a.npz", {"images": images, "labels": labels})
    second = script.write_npz(tmp_path / "b.npz", {"images": images, "labels": labels})
    assert first == second  # byte-identical: the pinned hash is meaningful
    with np.load(tmp_path / "a.npz") as npz:
        np.testing.assert_array_equal(npz["images"], images)
    order = script.seeded_order(50)
    assert sorted(order.tolist()) == list(range(50)) and order.tolist() != list(range(50))


def test_build_script_refuses_lossy_values(tmp_path):
    with pytest.raises(SystemExit, match="does not invert"):
        _build_script().parse_digits(_fake_package(tmp_path, value=0.5))


# --------------------------------------------------------------------------- idx


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    images = _glyphs(3)
    write_idx(tmp_path / name, images)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, images)
    labels = np.array([1, -2, 70_000], dtype=np.int32)
    write_idx(tmp_path / ("l" + name), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / ("l" + name)), labels)


def test_idx_errors_name_the_problem(tmp_path):
    write_idx(tmp_path / "ok.idx", _glyphs(2))
    raw = (tmp_path / "ok.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-10])
    with pytest.raises(IDXFormatError, match="short.idx.*truncated"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "magic.idx").write_bytes(b"PK\x03\x04" + raw[4:])
    with pytest.raises(IDXFormatError, match="not an IDX file"):
        read_idx(tmp_path / "magic.idx")
    (tmp_path / "tiny.idx").write_bytes(b"\x00\x00")
    with pytest.raises(IDXFormatError, match="too short"):
        read_idx(tmp_path / "tiny.idx")
    packed = gzip.compress(raw)
    (tmp_path / "cut.idx.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(IDXFormatError, match="cut.idx.gz.*gzip"):
        read_idx(tmp_path / "cut.idx.gz")


# --------------------------------------------------------------------------- download


@pytest.fixture
def mirror(tmp_path):
    """A file:// mirror serving two small files."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"alpha" * 1000)
    (folder / "b.bin").write_bytes(b"beta" * 1000)
    remotes = [
        RemoteFile("a.bin", md5=_md5(folder / "a.bin")),
        RemoteFile("b.bin", sha256=hashlib.sha256((folder / "b.bin").read_bytes()).hexdigest()),
    ]
    return folder.as_uri() + "/", remotes


def test_download_falls_back_to_a_working_mirror(tmp_path, mirror):
    url, remotes = mirror
    cache = tmp_path / "cache"
    paths = ensure_files(remotes, cache, [OFFLINE, url], dataset="test")
    assert paths["a.bin"].read_bytes() == b"alpha" * 1000
    assert paths["b.bin"].read_bytes() == b"beta" * 1000
    assert sorted(p.name for p in cache.iterdir()) == ["a.bin", "b.bin"]  # no temp leftovers


def test_download_rejects_bad_checksum_and_leaves_nothing(tmp_path, mirror):
    url, _ = mirror
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        ensure_files([RemoteFile("a.bin", md5="0" * 32)], cache, [url])
    assert list(cache.iterdir()) == []


def test_download_replaces_corrupt_cached_file(tmp_path, mirror):
    url, remotes = mirror
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.bin").write_bytes(b"half a downl")
    paths = ensure_files(remotes[:1], cache, [url])
    assert paths["a.bin"].read_bytes() == b"alpha" * 1000


def test_offline_error_says_which_files_to_place_where(tmp_path):
    cache = tmp_path / "cache"
    remotes = [RemoteFile("one.gz", md5="1" * 32), RemoteFile("two.gz", md5="2" * 32)]
    with pytest.raises(DownloadError) as info:
        ensure_files(remotes, cache, [OFFLINE], dataset="Demo")
    message = str(info.value)
    assert str(cache) in message
    assert "one.gz (md5 " + "1" * 32 in message and "two.gz (md5 " + "2" * 32 in message
    assert OFFLINE in message and "skipped (mirror unreachable)" in message


def test_no_download_means_no_fetch(tmp_path, mirror):
    url, remotes = mirror
    with pytest.raises(DownloadError, match="download=False"):
        ensure_files(remotes, tmp_path / "cache", [url], download=False)
    assert not (tmp_path / "cache").exists()


def test_default_data_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDWRITING_DATA_DIR", str(tmp_path))
    assert default_data_dir("mnist") == tmp_path / "mnist"
    monkeypatch.delenv("HANDWRITING_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir("emnist") == tmp_path / "xdg" / "handwriting" / "emnist"


# --------------------------------------------------------------------------- MNIST


@needs_official_mnist
def test_mnist_reads_official_files_without_writing_there():
    before = sorted(os.listdir(SHARED_MNIST))
    data = MNIST(cache_dir=str(SHARED_MNIST), download=False).load()
    assert sorted(os.listdir(SHARED_MNIST)) == before
    assert data.name == "mnist" and data.classes == tuple("0123456789")
    assert data.train.images.shape == (60_000, 28, 28) and data.test.images.shape == (
        10_000,
        28,
        28,
    )
    assert data.train.labels.dtype == np.int64
    assert data.train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # well-known first labels
    assert data.test.labels[:3].tolist() == [7, 2, 1]


@needs_official_mnist
def test_mnist_downloads_from_mirror_into_cache(tmp_path):
    cache = tmp_path / "mnist"
    data = MNIST(cache_dir=str(cache), mirrors=[OFFLINE, SHARED_MNIST.as_uri()]).load()
    assert len(data.train) == 60_000 and len(data.test) == 10_000
    assert _md5(cache / "t10k-labels-idx1-ubyte.gz") == "ec29112dd5afa0611ce80d1b7f02629c"


def test_mnist_offline_error_lists_the_four_files(tmp_path):
    cache = tmp_path / "nowhere"
    with pytest.raises(DownloadError) as info:
        MNIST(cache_dir=str(cache), mirrors=[OFFLINE]).load()
    message = str(info.value)
    assert str(cache) in message
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message


# --------------------------------------------------------------------------- EMNIST


def _write_emnist(folder: Path, split: str, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """EMNIST-format files: images stored transposed, as NIST ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    names = split_files(split)
    upright = {}
    for part, part_labels in labels.items():
        images = _glyphs(len(part_labels), seed=len(part))
        upright[part] = images
        write_idx(folder / names[f"{part}_images-idx3"], images.transpose(0, 2, 1))
        write_idx(folder / names[f"{part}_labels-idx1"], part_labels.astype(np.uint8))
    return upright


def test_emnist_letters_untransposes_and_shifts_labels(tmp_path):
    labels = {"train": np.array([1, 2, 26, 13]), "test": np.array([26, 1])}
    upright = _write_emnist(tmp_path / "gzip", "letters", labels)
    data = EMNIST("letters", cache_dir=str(tmp_path), download=False).load()
    assert data.name == "emnist-letters"
    assert data.classes == tuple(string.ascii_uppercase)
    np.testing.assert_array_equal(data.train.images, upright["train"])
    assert data.train.labels.tolist() == [0, 1, 25, 12]
    assert [data.classes[i] for i in data.test.labels] == ["Z", "A"]


def test_emnist_class_lists():
    assert len(emnist.SPLIT_CLASSES["byclass"]) == 62
    assert "".join(emnist.SPLIT_CLASSES["balanced"]) == (
        string.digits + string.ascii_uppercase + "abdefghnqrt"
    )
    assert emnist.SPLIT_CLASSES["bymerge"] == emnist.SPLIT_CLASSES["balanced"]
    with pytest.raises(ValueError, match="unknown EMNIST split"):
        EMNIST("klingon")


def test_emnist_rejects_labels_outside_the_split(tmp_path):
    _write_emnist(tmp_path, "digits", {"train": np.array([0, 10]), "test": np.array([1])})
    with pytest.raises(ValueError, match="10 classes"):
        EMNIST("digits", cache_dir=str(tmp_path), download=False).load()


def test_emnist_extracts_split_from_downloaded_archive(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    upright = _write_emnist(
        staging, "digits", {"train": np.array([3, 1, 4]), "test": np.array([1, 5])}
    )
    server = tmp_path / "server"
    server.mkdir()
    with zipfile.ZipFile(server / "gzip.zip", "w") as zf:
        for path in staging.iterdir():
            zf.write(path, f"gzip/{path.name}")
    digest = hashlib.sha256((server / "gzip.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(emnist, "ARCHIVE", RemoteFile("gzip.zip", sha256=digest))
    cache = tmp_path / "cache"
    data = EMNIST("digits", cache_dir=str(cache), mirrors=[server.as_uri()]).load()
    np.testing.assert_array_equal(data.test.images, upright["test"])
    assert data.train.labels.tolist() == [3, 1, 4]
    assert sorted(p.name for p in (cache / "gzip").iterdir()) == sorted(
        split_files("digits").values()
    )


def test_emnist_offline_error_names_archive_and_split_files(tmp_path):
    cache = tmp_path / "emnist"
    with pytest.raises(DownloadError) as info:
        EMNIST("balanced", cache_dir=str(cache), mirrors=[OFFLINE]).load()
    message = str(info.value)
    assert "gzip.zip" in message and emnist.ARCHIVE.sha256 in message
    assert str(cache) in message and "emnist-balanced-test-labels-idx1-ubyte.gz" in message


# --------------------------------------------------------------------------- CSV

HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def _write_csv(path: Path, images: np.ndarray, labels=None) -> Path:
    rows = [HEADER if labels is not None else HEADER.removeprefix("label,")]
    for i, image in enumerate(images):
        values = [str(v) for v in image.ravel()]
        rows.append(",".join(([str(labels[i])] if labels is not None else []) + values))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_kaggle_layout(tmp_path):
    images = _glyphs(5)
    labels = [3, 1, 4, 1, 9]
    train = _write_csv(tmp_path / "train.csv", images, labels)
    test = _write_csv(tmp_path / "test.csv", images[:2], [7, 0])
    data = CSVSource(str(train), str(test)).load()
    assert data.classes == tuple("0123456789")
    np.testing.assert_array_equal(data.train.images, images)
    assert data.train.labels.tolist() == labels and data.train.labels.dtype == np.int64
    assert data.test.labels.tolist() == [7, 0]


def test_csv_unlabelled_test_set_is_refused(tmp_path):
    train = _write_csv(tmp_path / "train.csv", _glyphs(2), [0, 1])
    test = _write_csv(tmp_path / "test.csv", _glyphs(2))
    with pytest.raises(CSVFormatError, match="test.csv.*unlabelled.*cannot be used to evaluate"):
        CSVSource(str(train), str(test)).load()


def test_csv_errors_name_file_line_and_column(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", _glyphs(3), [0, 1, 2])
    lines = path.read_text().splitlines()
    good = "\n".join(lines) + "\n"

    lines[3] = lines[3].replace(",0,", ",x,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CSVFormatError, match=r"bad.csv: line 4, column 'pixel\d+': 'x'"):
        CSVSource(str(path)).load()

    lines = good.splitlines()
    cells = lines[2].split(",")
    cells[11] = "300"
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CSVFormatError, match="line 3, column 'pixel10': value 300 is outside"):
        CSVSource(str(path)).load()

    lines = good.splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CSVFormatError, match="line 2 has 784 values"):
        CSVSource(str(path)).load()

    short = tmp_path / "short.csv"
    short.write_text("label,pixel0,pixel1\n1,0,0\n")
    with pytest.raises(CSVFormatError, match="expected 784 pixel columns"):
        CSVSource(str(short)).load()

    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n")
    with pytest.raises(CSVFormatError, match="empty.csv: no data rows"):
        CSVSource(str(empty)).load()


def test_csv_label_beyond_classes(tmp_path):
    path = _write_csv(tmp_path / "train.csv", _glyphs(2), [0, 5])
    with pytest.raises(CSVFormatError, match="line 3: label 5 but only 3 classes"):
        CSVSource(str(path), classes=["a", "b", "c"]).load()


def test_csv_polarity(tmp_path):
    images = _glyphs(4)
    path = _write_csv(tmp_path / "dark_on_light.csv", 255 - images, [0, 1, 0, 1])
    np.testing.assert_array_equal(CSVSource(str(path)).load().train.images, images)
    kept = CSVSource(str(path), invert=False).load().train.images
    np.testing.assert_array_equal(kept, 255 - images)
    light = _write_csv(tmp_path / "normal.csv", images, [0, 1, 0, 1])
    np.testing.assert_array_equal(
        CSVSource(str(light), invert=True).load().train.images, 255 - images
    )


# --------------------------------------------------------------------------- image folder


def _stroke(size: tuple[int, int], ink: int, paper: int, mode: str = "L") -> Image.Image:
    """A '7'-like stroke, `ink` on `paper`."""
    width, height = size
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    line = max(2, width // 10)
    draw.line([(width * 0.25, height * 0.2), (width * 0.75, height * 0.2)], fill=ink, width=line)
    draw.line([(width * 0.75, height * 0.2), (width * 0.4, height * 0.85)], fill=ink, width=line)
    return image.convert(mode)


def _make_tree(root: Path) -> None:
    for folder in ("train/0", "train/1", "val/1", "test/0"):
        (root / folder).mkdir(parents=True)
    _stroke((28, 28), 255, 0).save(root / "train/0/white_on_black.png")
    _stroke((50, 37), 0, 255, "RGB").save(root / "train/0/black_on_white.jpg", quality=95)
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), mask=_stroke((40, 40), 255, 0))  # opaque black ink only
    rgba.save(root / "train/1/transparent.png")
    _stroke((64, 64), 0, 255).save(root / "train/1/scan.bmp")
    (root / "train/1/broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (root / "train/1/notes.txt").write_text("ignored: not an image")
    _stroke((32, 32), 30, 220, "P").save(root / "val/1/palette.gif")
    _stroke((28, 28), 255, 0).save(root / "test/0/test.png")


def _assert_mnist_like(images: np.ndarray) -> None:
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    for image in images:
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert border.mean() < 10, "background must be black"
        assert image.max() > 200, "ink must be white"


def test_image_folder_mixed_formats_and_corrupt_file(tmp_path):
    _make_tree(tmp_path)
    source = ImageFolderSource(str(tmp_path), num_workers=2)
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 .*broken\.png"):
        data = source.load()
    assert data.classes == ("0", "1")
    assert data.train.labels.tolist() == [0, 0, 1, 1]  # sorted by class, then file name
    assert len(data.val) == 1 and data.val.labels.tolist() == [1]
    assert data.test.labels.tolist() == [0]
    for split in (data.train, data.val, data.test):
        _assert_mnist_like(split.images)
    assert [p.name for p, _ in source.skipped] == ["broken.png"]
    # A 7 drawn either polarity, any size, ends up looking alike.
    a, b = data.train.images[:2].astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.7


def test_image_folder_all_unreadable_raises(tmp_path):
    (tmp_path / "train" / "x").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "train" / "x" / f"{i}.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="none of the 3 images"):
        ImageFolderSource(str(tmp_path)).load()


def test_image_folder_rejects_classes_missing_from_train(tmp_path):
    _make_tree(tmp_path)
    (tmp_path / "test" / "9").mkdir()
    with pytest.raises(ValueError, match=r"class folders \['9'\]"):
        ImageFolderSource(str(tmp_path)).load()


def test_image_folder_flat_layout(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _stroke((30, 30), 255, 0).save(tmp_path / name / "img.png")
    data = ImageFolderSource(str(tmp_path)).load()
    assert data.classes == ("a", "b") and data.train.labels.tolist() == [0, 1]
    assert data.val is None and data.test is None


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderSource(str(tmp_path / "nope")).load()
