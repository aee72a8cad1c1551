"""Real drawings: data=pendigits split by writer, data=mix with weights, the drawn/*
scores of every run and promotion on drawn/val_acc.

CI has no pen-digit files, so every test writes its own small UNIPEN file: 8 writers x
10 digits x 2 samples of simple class shapes (a circle for 0, a line for 1, polylines
for the others) with a per-writer slant and width and per-point noise. A file that is
not UCI's fails the cache's checksum, so it is read through ``pendigits.unipen_file``
(PenDigits(unipen_file=...), read as is); the cache path (cache_dir + checksum) is tested
by registering the file's checksum in ``pendigits.FILES``. No test touches the network.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image, ImageDraw

from handwriting.cli import build_parser
from handwriting.config import register_configs
from handwriting.data import pen_source, pendigits
from handwriting.data.datamodule import HandwritingDataModule
from handwriting.data.download import DownloadError, RemoteFile
from handwriting.data.folder import ImageFolderSource
from handwriting.data.mix import MixedPool, MixedSource, RenderedStrokes
from handwriting.data.pen_source import TRAIN_STYLE, PenDigits, split_writers
from handwriting.data.pendigits import TRAIN_FILE
from handwriting.data.types import LabeledImages, SourceData, StrokeSet
from handwriting.drawn import DrawnEvaluation
from handwriting.promotion import promote
from handwriting.render import render_input
from handwriting.runs import Candidate, best_run, find_runs, rank_runs
from handwriting.training import train
from tests.faults import failing_writes
from tests.helpers import make_run_dir

ROOT = Path(__file__).resolve().parents[1]
DIGITS = tuple("0123456789")
WRITERS = [f"tra-{w}" for w in range(1, 9)]
SPLIT = {"val_writers": 2, "test_writers": 2}  # 8 writers: 4 train, 2 val, 2 test

# ---------------------------------------------------------------- synthetic UNIPEN data

_T = np.linspace(0.0, 2 * np.pi, 25)
# Unit box, x right, y UP (tablet coordinates, as in the UCI files): strokes per digit.
SHAPES: dict[int, list[np.ndarray]] = {
    0: [np.stack([0.5 + 0.4 * np.cos(_T), 0.5 + 0.5 * np.sin(_T)], axis=1)],
    1: [np.array([[0.5, 1.0], [0.5, 0.0]])],
    2: [np.array([[0, 1], [1, 1], [1, 0.5], [0, 0], [1, 0]], dtype=float)],
    3: [np.array([[0, 1], [1, 1], [0.4, 0.5], [1, 0], [0, 0]], dtype=float)],
    4: [np.array([[0.7, 0], [0.7, 1], [0, 0.3]], dtype=float), np.array([[0, 0.3], [1, 0.3]])],
    5: [np.array([[1, 1], [0, 1], [0, 0.5], [1, 0.5], [1, 0], [0, 0]], dtype=float)],
    6: [np.array([[1, 1], [0, 0.5], [0, 0], [1, 0], [1, 0.5], [0, 0.5]], dtype=float)],
    7: [np.array([[0, 1], [1, 1], [0.3, 0]], dtype=float)],
    8: [np.stack([0.5 + 0.35 * np.sin(2 * _T), 0.5 + 0.5 * np.cos(_T)], axis=1)],
    9: [np.array([[1, 0.5], [0, 0.5], [0, 1], [1, 1], [1, 0]], dtype=float)],
}


def _densify(polyline: np.ndarray, per_segment: int = 6) -> np.ndarray:
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    pieces = [a + (b - a) * t for a, b in zip(polyline[:-1], polyline[1:], strict=True)]
    return np.concatenate([*pieces, polyline[-1:]])


def unipen_text(writers: int = 8, samples: int = 2, seed: int = 0) -> str:
    """A UNIPEN file in the UCI layout: .SEGMENT / .COMMENT <label> <writer> <index> / strokes."""
    rng = np.random.default_rng(seed)
    lines = [".INCLUDE dene.doc", '.LEXICON "0" "1" "2" "3" "4" "5" "6" "7" "8" "9"',
             ".HIERARCHY DIGIT", ""]
    for writer in range(1, writers + 1):
        slant, width = rng.uniform(-0.2, 0.2), rng.uniform(0.6, 1.0)
        for sample in range(samples):
            for label in range(10):
                lines += [f'.SEGMENT DIGIT {writer}-{sample}-{label} ? "{label}"',
                          f".COMMENT {label} {writer} {sample}"]
                for stroke in SHAPES[label]:
                    points = stroke if len(stroke) > 10 else _densify(stroke)
                    x = (points[:, 0] - 0.5) * width + points[:, 1] * slant
                    xy = np.stack([250 + 200 * x, 50 + 300 * points[:, 1]], axis=1)
                    xy += rng.normal(0.0, 3.0, xy.shape)
                    lines.append(".PEN_DOWN")
                    lines += [f" {round(a)} {round(b)}" for a, b in xy]
                    lines.append(".PEN_UP")
                lines += [".DT 100", ""]
    return "\n".join(lines) + "\n"


SYNTHETIC = unipen_text().encode()


def write_pen_dir(folder: Path, content: bytes = SYNTHETIC) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TRAIN_FILE).write_bytes(content)
    return folder


def pen_source_at(folder: Path, **kwargs) -> PenDigits:
    """The synthetic file in ``folder`` as ``pendigits.unipen_file``."""
    return PenDigits(unipen_file=str(folder / TRAIN_FILE), download=False, **(SPLIT | kwargs))


def cached_source(folder: Path, **kwargs) -> PenDigits:
    """The same file as if it were UCI's, in the cache ``folder`` (needs ``registered``)."""
    return PenDigits(cache_dir=str(folder), download=False, **(SPLIT | kwargs))


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache accepts the synthetic file as UCI's training file."""
    monkeypatch.setitem(pendigits.FILES, TRAIN_FILE, RemoteFile(
        TRAIN_FILE, sha256=hashlib.sha256(SYNTHETIC).hexdigest(), size=len(SYNTHETIC)))


@pytest.fixture(scope="module")
def shared_pen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder whose held-out drawings are rendered once, for the tests that only read."""
    return write_pen_dir(tmp_path_factory.mktemp("pendigits"))


@pytest.fixture(scope="module")
def pen_data(shared_pen_dir: Path) -> SourceData:
    return pen_source_at(shared_pen_dir).load()


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# --------------------------------------------------------------------------- split_writers


def test_split_writers_is_disjoint_complete_and_seeded():
    writers = [f"w{i % 10}" for i in range(57)]  # repeated, as one per digit
    train, val, test = split_writers(writers, 3, 2, seed=0)
    assert (len(train), len(val), len(test)) == (5, 3, 2)
    assert set(train) | set(val) | set(test) == set(writers)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert train == sorted(train) and val == sorted(val) and test == sorted(test)
    assert split_writers(writers, 3, 2, seed=0) == (train, val, test)
    assert split_writers(list(reversed(writers)), 3, 2, seed=0) == (train, val, test)
    assert split_writers(writers, 3, 2, seed=1) != (train, val, test)
    assert split_writers(writers, 3, 0, seed=0)[2] == []


@pytest.mark.parametrize(("val", "test"), [(5, 5), (9, 1), (10, 0), (0, 2), (2, -1)])
def test_split_writers_refuses_impossible_counts(val, test):
    with pytest.raises(ValueError, match=rf"cannot hold out {val} validation and {test} test "
                                         r"writers out of 10: at least one writer must stay"):
        split_writers([f"w{i}" for i in range(10)], val, test, seed=0)


def test_too_many_held_out_writers_names_the_setting_to_change(tmp_path):
    """The hint must name `pendigits.*`, the one place for these settings: changing
    data.source.* alone would split the data differently from the drawn/* evaluation."""
    with pytest.raises(ValueError, match="out of 8") as info:
        pen_source_at(write_pen_dir(tmp_path), val_writers=4, test_writers=4).load()
    assert "pendigits.val_writers" in str(info.value)
    with pytest.raises(ValueError, match="val_writers must be >= 1"):
        PenDigits(val_writers=0)


# --------------------------------------------------------------------------- PenDigits


def test_cache_only_trusts_uci_bytes_but_unipen_file_reads_any(tmp_path):
    with pytest.raises(DownloadError, match="cached copy is corrupt"):
        cached_source(write_pen_dir(tmp_path / "cache")).load()
    assert len(pen_source_at(tmp_path / "cache").load().train) == 80


def test_verified_cache_and_unipen_file_give_the_same_data(tmp_path, registered, pen_data):
    data = cached_source(write_pen_dir(tmp_path)).load()
    assert data.train.writers.tolist() == pen_data.train.writers.tolist()
    np.testing.assert_array_equal(data.val.images, pen_data.val.images)
    np.testing.assert_array_equal(data.test.labels, pen_data.test.labels)


def test_unipen_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.tra"))):
        PenDigits(unipen_file=str(tmp_path / "nope.tra")).load()
    with pytest.raises(ValueError, match="official_test"):
        PenDigits(unipen_file=str(tmp_path / "x.tra"), official_test=True)


def _same_size_edit(content: bytes) -> bytes:
    """Other coordinates, same number of bytes (3 <-> 4 in every point line)."""
    lines = content.decode().splitlines(keepends=True)
    swap = str.maketrans("34", "43")
    return "".join(line.translate(swap) if line.startswith(" ") else line
                   for line in lines).encode()


def test_an_edited_file_is_not_served_stale_cached_drawings(tmp_path):
    """unipen_file is the user's own file: edited in place (same size), its held-out
    drawings must be drawn anew, not read from the cache of the old content."""
    edited = _same_size_edit(SYNTHETIC)
    assert len(edited) == len(SYNTHETIC) and edited != SYNTHETIC
    folder = write_pen_dir(tmp_path / "edited")
    pen_source_at(folder).load()  # caches the old drawings
    (folder / TRAIN_FILE).write_bytes(edited)
    served = pen_source_at(folder).load()
    fresh = pen_source_at(write_pen_dir(tmp_path / "fresh", edited)).load()
    np.testing.assert_array_equal(served.val.images, fresh.val.images)
    np.testing.assert_array_equal(served.test.images, fresh.test.images)


def test_load_splits_by_writer(pen_data):
    data = pen_data
    assert data.name == "pendigits" and data.classes == DIGITS
    assert isinstance(data.train, StrokeSet) and data.train.style == TRAIN_STYLE
    train_w = set(data.train.writers.tolist())
    val_w, test_w = set(data.val_writers.tolist()), set(data.test_writers.tolist())
    assert (len(train_w), len(val_w), len(test_w)) == (4, 2, 2)
    assert not (train_w & val_w or train_w & test_w or val_w & test_w)
    assert train_w | val_w | test_w == set(WRITERS)
    expected = split_writers(WRITERS, 2, 2, seed=0)
    assert (sorted(train_w), sorted(val_w), sorted(test_w)) == expected
    assert (len(data.train), len(data.val), len(data.test)) == (80, 40, 40)  # 20 per writer
    for part, writers in ((data.val, data.val_writers), (data.test, data.test_writers)):
        assert isinstance(part, LabeledImages) and part.images.dtype == np.uint8
        assert len(writers) == len(part)
        assert np.bincount(part.labels, minlength=10).tolist() == [4] * 10
        assert (part.images.reshape(len(part), -1).max(axis=1) == 255).all()
    assert split_writers(WRITERS, 2, 2, seed=1) != expected  # split_seed picks other writers


def test_held_out_drawings_are_rendered_once_and_cached(tmp_path, monkeypatch):
    folder = write_pen_dir(tmp_path)
    first = pen_source_at(folder).load()
    cached = sorted(p.name for p in folder.glob("rendered-*.npz"))
    assert len(cached) == 2 and cached[0].startswith("rendered-test-")
    assert not list(folder.glob(".*.tmp"))

    def no_rendering(*args, **kwargs):
        raise AssertionError("held-out drawings rendered again instead of read from the cache")

    monkeypatch.setattr(pen_source, "render_many", no_rendering)
    second = pen_source_at(folder).load()
    np.testing.assert_array_equal(first.val.images, second.val.images)
    np.testing.assert_array_equal(first.test.images, second.test.images)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    with pytest.raises(AssertionError, match="rendered again"):  # other drawings: other cache
        pen_source_at(folder, render_seed=1).load()


def test_corrupt_cache_is_ignored_and_redrawn_the_same(tmp_path, caplog):
    folder = write_pen_dir(tmp_path)
    first = pen_source_at(folder).load()
    for npz in folder.glob("rendered-*.npz"):
        npz.write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING):
        again = pen_source_at(folder).load()
    assert "unreadable cache" in caplog.text
    np.testing.assert_array_equal(first.val.images, again.val.images)


def test_unwritable_cache_folder_still_loads_and_leaves_nothing(tmp_path, monkeypatch):
    folder = write_pen_dir(tmp_path / "readonly")
    monkeypatch.setenv("HANDWRITING_DATA_DIR", str(tmp_path / "user-cache"))
    if os.geteuid() == 0:  # root writes anyway: creating a file there fails instead
        failing_writes(monkeypatch, folder, code=errno.EROFS, creating=True)
    folder.chmod(0o555)
    try:
        data = pen_source_at(folder).load()
        assert len(data.val) == 40 and len(data.test) == 40
        assert [p.name for p in folder.iterdir()] == [TRAIN_FILE]
        # The drawings were cached in the user's data cache instead, whole.
        cached = sorted((tmp_path / "user-cache" / "pendigits").glob("rendered-*.npz"))
        assert len(cached) == 2 and not list((tmp_path / "user-cache").rglob("*.tmp"))
    finally:
        folder.chmod(0o755)


def test_failed_rename_removes_the_temp_file(tmp_path, monkeypatch):
    folder = write_pen_dir(tmp_path / "pen")

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setenv("HANDWRITING_DATA_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setattr(os, "replace", refuse)  # every rename fails: beside the data and in the cache
    data = pen_source_at(folder).load()
    assert len(data.test) == 40
    assert [p.name for p in folder.iterdir()] == [TRAIN_FILE]


def test_datamodule_on_pen_digits(shared_pen_dir):
    torch.manual_seed(0)
    dm = HandwritingDataModule(pen_source_at(shared_pen_dir), split={"train": None}, batch_size=16)
    dm.setup()
    assert dm.sizes() == {"train": 80, "val": 40, "test": 40}
    assert isinstance(dm.dataset("train"), RenderedStrokes) and dm._train_weights is None
    loader = dm.train_dataloader()
    x, y = next(iter(loader))
    assert x.shape == (16, 784) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    # each epoch draws every trajectory once, anew: the epochs' total ink differs
    ink = [sum(float(batch.sum()) for batch, _ in loader) for _ in range(2)]
    assert ink[0] != ink[1]
    again = HandwritingDataModule(pen_source_at(shared_pen_dir), split={"train": None})
    again.setup()  # the held-out drawings now come from the cache: same evaluation data
    assert again.fingerprint == dm.fingerprint


# --------------------------------------------------------------------------- training pools


def test_rendered_strokes_are_redrawn_each_time(pen_data):
    dataset = RenderedStrokes(pen_data.train, seed=0)
    assert len(dataset) == 80
    x1, y1 = dataset[[0, 5, 9]]
    x2, y2 = dataset[[0, 5, 9]]
    assert x1.shape == (3, 784) and x1.dtype == torch.float32
    assert float(x1.min()) >= 0 and float(x1.max()) <= 1
    assert torch.equal(y1, y2) and y1.tolist() == pen_data.train.labels[[0, 5, 9]].tolist()
    assert not torch.equal(x1[0], x2[0])  # same trajectory, another drawing of it
    torch.testing.assert_close(RenderedStrokes(pen_data.train, seed=0)[[0, 5, 9]][0], x1)
    view = dataset.eval_view()
    assert torch.equal(view.tensors[0], dataset.eval_view().tensors[0])  # fixed for reports


class ImagesStub:
    """An MNIST-like source in memory. Every image has its whole top row inked: a mark no
    drawing centred like MNIST (ink within 20 px) can have."""

    def __init__(self, n: int = 100, classes: tuple[str, ...] = DIGITS) -> None:
        self.n, self.classes = n, classes

    def load(self) -> SourceData:
        images = np.zeros((self.n, 28, 28), dtype=np.uint8)
        images[:, 0, :] = 255
        images[:, 8:20, 12:16] = 200
        labels = np.arange(self.n, dtype=np.int64) % len(self.classes)
        return SourceData("stub", self.classes, LabeledImages(images, labels))


def _is_stub(x: torch.Tensor) -> torch.Tensor:
    return x.view(-1, 28, 28)[:, 0, :].min(dim=1).values == 1.0


def _mix(pen: PenDigits, weight: float = 5.0, test_from: str = "mnist", **extra) -> MixedSource:
    parts = {
        "mnist": {"source": ImagesStub(), "split": {"train": None, "val": 10, "test": 10}},
        "pen": {"source": pen, "split": {"train": None}, "weight": weight},
    }
    return MixedSource(parts | extra, test_from=test_from)


def test_mixed_source_keeps_each_part_split(shared_pen_dir, pen_data):
    data = _mix(pen_source_at(shared_pen_dir)).load()
    assert data.name == "mix(mnist+pen)" and data.classes == DIGITS
    assert isinstance(data.train, MixedPool) and data.train.names == ("mnist", "pen")
    assert data.train.weights == (1.0, 5.0)
    stub_pool, pen_pool = data.train.pools
    assert len(stub_pool) == 80 and isinstance(pen_pool, StrokeSet) and len(pen_pool) == 80
    assert set(pen_pool.writers.tolist()) == set(pen_data.train.writers.tolist())
    assert len(data.val) == 10 + 40  # the union of both parts' validation sets
    val_stub = _is_stub(torch.from_numpy(data.val.images.astype(np.float32) / 255))
    assert int(val_stub.sum()) == 10
    np.testing.assert_array_equal(data.val.images[~val_stub.numpy()], pen_data.val.images)
    assert len(data.test) == 10 and bool(_is_stub(torch.from_numpy(
        data.test.images.astype(np.float32) / 255)).all())
    from_pen = _mix(pen_source_at(shared_pen_dir), test_from="pen").load()
    np.testing.assert_array_equal(from_pen.test.images, pen_data.test.images)


@pytest.mark.parametrize(("weight", "expected"), [(5.0, 5 / 6), (1.0, 1 / 2)])
def test_weights_set_how_often_each_part_is_drawn(shared_pen_dir, weight, expected):
    torch.manual_seed(0)
    dm = HandwritingDataModule(_mix(pen_source_at(shared_pen_dir), weight=weight), batch_size=64)
    dm.setup()
    assert dm.sizes()["train"] == 160  # 80 stub images + 80 pen trajectories
    np.testing.assert_array_equal(dm._train_weights, [1.0] * 80 + [weight] * 80)
    pen, total = 0, 0
    loader = dm.train_dataloader()
    for _ in range(3):  # epochs
        for x, y in loader:
            assert len(x) == len(y)
            pen += int((~_is_stub(x)).sum())
            total += len(x)
    assert total == 3 * 160
    assert pen / total == pytest.approx(expected, abs=0.06), (pen, total)


def _digit_png(path: Path, digit: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("L", (60, 60), 255)
    draw = ImageDraw.Draw(image)
    if digit == "7":
        draw.line([(15, 12), (45, 12), (25, 50)], fill=0, width=5)
    else:
        draw.line([(15, 12), (45, 12), (25, 30), (45, 48), (15, 48)], fill=0, width=5)
    image.save(path)


def test_parts_are_matched_by_class_name(shared_pen_dir, tmp_path):
    root = tmp_path / "drawings"
    for digit, count in (("3", 2), ("7", 3)):
        for i in range(count):
            _digit_png(root / digit / f"{i}.png", digit)
    drawings = {"source": ImageFolderSource(str(root)), "split": None, "weight": 4.0}
    data = _mix(pen_source_at(shared_pen_dir), drawings=drawings).load()
    assert data.train.names == ("mnist", "pen", "drawings")
    assert data.train.pools[2].labels.tolist() == [3, 3, 7, 7, 7]  # not 0 and 1
    assert len(data.val) == 50  # split: null = all of it for training


def test_test_set_of_a_part_with_fewer_classes_is_relabelled_too(shared_pen_dir, tmp_path):
    """test_from a folder that holds only 3s and 7s: its test labels must be 3 and 7 in the
    common class list, as its training and validation labels are."""
    root = tmp_path / "drawings"
    for split, count in (("train", 3), ("test", 1)):
        for digit in ("3", "7"):
            for i in range(count):
                _digit_png(root / split / digit / f"{i}.png", digit)
    drawings = {"source": ImageFolderSource(str(root)), "split": {"train": None, "val": 2}}
    data = _mix(pen_source_at(shared_pen_dir), test_from="drawings", drawings=drawings).load()
    assert data.classes == DIGITS
    assert sorted(data.train.pools[2].labels.tolist() + data.val.labels[-2:].tolist()) == \
        [3, 3, 3, 7, 7, 7]
    assert sorted(data.test.labels.tolist()) == [3, 7]


def test_optional_part_whose_folder_is_missing_is_skipped(shared_pen_dir, tmp_path, caplog):
    missing = {"source": ImageFolderSource(str(tmp_path / "no-drawings-yet")), "split": None,
               "required": False}
    with caplog.at_level(logging.WARNING):
        data = _mix(pen_source_at(shared_pen_dir), drawings=missing).load()
    assert data.train.names == ("mnist", "pen")
    assert "'drawings' skipped" in caplog.text and "no-drawings-yet" in caplog.text
    required = {"source": ImageFolderSource(str(tmp_path / "no-drawings-yet")), "split": None}
    with pytest.raises(FileNotFoundError, match="no-drawings-yet"):
        _mix(pen_source_at(shared_pen_dir), drawings=required).load()


def test_missing_pen_files_skip_an_optional_part_and_stop_a_required_one(tmp_path):
    stub_part = {"mnist": {"source": ImagesStub(), "split": {"val": 10, "test": 10}}}
    pen = cached_source(tmp_path / "empty")
    data = MixedSource(stub_part | {"pen": {"source": pen, "required": False}},
                       test_from="mnist").load()
    assert data.train.names == ("mnist",)
    with pytest.raises(DownloadError):
        MixedSource(stub_part | {"pen": {"source": pen}}, test_from="mnist").load()


@pytest.mark.parametrize(("pen_part", "test_from", "names"), [
    ({"weight": 0}, "mnist", "data.source.parts.pen.weight"),
    ({"weight": -1.0}, "mnist", "data.source.parts.pen.weight"),
    ({"weight": float("nan")}, "mnist", "data.source.parts.pen.weight"),
    ({"weight": "heavy"}, "mnist", "data.source.parts.pen.weight"),
    ({"weight": None}, "mnist", "data.source.parts.pen.weight"),
    ({"wieght": 2.0}, "mnist", "wieght"),
    ({}, "mnist_official", "data.source.test_from"),
    ({"split": {"trian": 10}}, "mnist", "trian"),
])
def test_bad_mix_settings_name_the_key(pen_part, test_from, names, tmp_path):
    parts = {"mnist": {"source": ImagesStub(), "split": {"val": 10, "test": 10}},
             "pen": {"source": ImagesStub()} | pen_part}
    with pytest.raises(ValueError, match=re.escape(names)):
        MixedSource(parts, test_from=test_from).load()


def test_mix_without_parts_or_source_is_refused():
    with pytest.raises(ValueError, match="parts is empty"):
        MixedSource({}, test_from="mnist")
    with pytest.raises(ValueError, match=r"parts\.pen needs 'source'"):
        MixedSource({"pen": {"weight": 2.0}}, test_from="pen")


# --------------------------------------------------------------------------- drawn/*


class Linear(torch.nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_no_files_means_no_scores_and_an_explanation(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    empty = tmp_path / "empty-cache"
    drawn = DrawnEvaluation(PenDigits(cache_dir=str(empty), download=True))
    assert drawn.source.download is False  # scoring never downloads
    assert drawn.score(Linear(), list(DIGITS), None, tmp_path / "report") == {}
    assert drawn.unavailable and "pen-digit files" in drawn.unavailable
    assert drawn.fingerprint() is None
    assert not (tmp_path / "report" / "drawn.json").exists()


def test_explanation_names_the_cache_folder(tmp_path):
    empty = tmp_path / "empty-cache"
    drawn = DrawnEvaluation(PenDigits(cache_dir=str(empty)))
    assert drawn.data() is None
    assert str(empty) in drawn.unavailable, drawn.unavailable


def test_explanation_gives_a_command_that_exists(tmp_path):
    """The advertised `handwriting ...` command must be one the CLI takes (argparse exits on
    an unknown command or argument)."""
    drawn = DrawnEvaluation(PenDigits(cache_dir=str(tmp_path / "empty")))
    drawn.data()
    command = re.search(r"`handwriting ([^`]+)`", drawn.unavailable)
    assert command, drawn.unavailable
    args = build_parser().parse_args(command[1].split())
    assert args.dataset == "pendigits"


def test_advertised_download_fills_the_folder_the_run_reads(tmp_path):
    """With pendigits.cache_dir set, the advertised command must download there: into the
    default folder, the next run would still find nothing."""
    cache = tmp_path / "my-pen-cache"
    drawn = DrawnEvaluation(PenDigits(cache_dir=str(cache)))
    drawn.data()
    command = re.search(r"`handwriting ([^`]+)`", drawn.unavailable)
    assert command, drawn.unavailable
    args = build_parser().parse_args(command[1].split())
    assert args.cache_dir and Path(args.cache_dir) == cache, command[0]


def test_disabled_evaluation_never_loads(monkeypatch):
    def refuse(self):
        raise AssertionError("loaded although disabled")

    monkeypatch.setattr(PenDigits, "load", refuse)
    drawn = DrawnEvaluation(PenDigits(cache_dir="/nowhere"), enabled=False)
    assert drawn.score(Linear(), list(DIGITS), None) == {}
    assert drawn.unavailable == "drawn.enabled=false"


def test_scores_per_writer_and_writes_drawn_json(tmp_path):
    folder = write_pen_dir(tmp_path / "pen")
    source = pen_source_at(folder, val_writers=2, test_writers=3)
    data = source.load()
    drawn = DrawnEvaluation(source)
    metrics = drawn.score(Linear(seed=1), list(DIGITS), data.train, tmp_path / "report")
    assert {"drawn/acc", "drawn/worst_writer_acc", "drawn/median_writer_acc", "drawn/val_acc",
            "drawn/val_worst_writer_acc"} <= set(metrics)
    assert metrics["drawn/size"] == 60 and metrics["drawn/writers"] == 3
    assert 0 <= metrics["drawn/worst_writer_acc"] <= metrics["drawn/median_writer_acc"] <= 1
    saved = json.loads((tmp_path / "report" / "drawn.json").read_text())
    assert saved["metrics"] == metrics
    assert saved["test_writers"] == sorted(set(data.test_writers.tolist()))
    assert saved["val_writers"] == sorted(set(data.val_writers.tolist()))
    per_writer = saved["per_writer_accuracy"]
    assert sorted(per_writer) == saved["test_writers"]
    assert min(per_writer.values()) == metrics["drawn/worst_writer_acc"]
    assert float(np.median(list(per_writer.values()))) == metrics["drawn/median_writer_acc"]
    assert np.mean(list(per_writer.values())) == pytest.approx(metrics["drawn/acc"])  # 20 each
    # the same numbers, computed here from the cached test drawings
    with torch.no_grad():
        predicted = Linear(seed=1)(torch.from_numpy(
            data.test.images.reshape(60, -1).astype(np.float32) / 255)).argmax(1).numpy()
    errors = int((predicted != data.test.labels).sum())
    assert metrics["drawn/acc"] == pytest.approx(1 - errors / 60)
    confusions = saved["top_confusions"]
    assert confusions and all(c["true"] != c["predicted"] for c in confusions)
    counts = [c["count"] for c in confusions]
    assert counts == sorted(counts, reverse=True) and sum(counts) <= errors
    assert set(saved["per_class_accuracy"]) == set(DIGITS)
    assert drawn.fingerprint() == DrawnEvaluation(pen_source_at(folder, val_writers=2,
                                                                test_writers=3)).fingerprint()
    assert drawn.fingerprint() != DrawnEvaluation(pen_source_at(folder, val_writers=2,
                                                                test_writers=3,
                                                                render_seed=1)).fingerprint()


def test_a_model_trained_on_strokes_reads_unseen_writers(pen_data, shared_pen_dir):
    """Training drawings (fast raster, augmented strokes) and held-out drawings (exact canvas
    path) must look alike: shapes learnt from 4 writers are read in 2 others' drawings."""
    rng = np.random.default_rng(0)
    x = np.stack([render_input(s, rng, pen_data.train.style).ravel()
                  for _ in range(4) for s in pen_data.train.strokes])
    y = torch.from_numpy(np.tile(pen_data.train.labels, 4))
    model = Linear(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), y).backward()
        optimizer.step()
    metrics = DrawnEvaluation(pen_source_at(shared_pen_dir)).score(model, list(DIGITS), pen_data.train)
    assert metrics["drawn/acc"] >= 0.8 and metrics["drawn/val_acc"] >= 0.8, metrics


def test_training_on_a_held_out_writer_is_refused(pen_data, shared_pen_dir):
    drawn = DrawnEvaluation(pen_source_at(shared_pen_dir))
    leaked = str(pen_data.test_writers[0])
    pool = StrokeSet(pen_data.train.strokes[:1], pen_data.train.labels[:1], np.array([leaked]))
    with pytest.raises(ValueError, match=re.escape(leaked)):
        drawn.score(Linear(), list(DIGITS), pool)
    val_writer = str(pen_data.val_writers[0])
    mixed = MixedPool(("mnist", "pen"), (ImagesStub().load().train, StrokeSet(
        pen_data.train.strokes[:1], pen_data.train.labels[:1], np.array([val_writer]))), (1.0, 1.0))
    with pytest.raises(ValueError, match=re.escape(val_writer)):
        drawn.score(Linear(), list(DIGITS), mixed)
    assert drawn.score(Linear(), list(DIGITS), pen_data.train)  # its own training writers: fine


def test_a_model_of_other_classes_is_not_scored(shared_pen_dir):
    drawn = DrawnEvaluation(pen_source_at(shared_pen_dir))
    assert drawn.score(Linear(), list("abcdefghij"), None) == {}
    assert "not the digits" in drawn.unavailable


# --------------------------------------------------------------------------- promotion


def drawn_run(run_dir: Path, val_acc: float, drawn_val: float | None, fingerprint: str = "data-a",
              drawn_fingerprint: str | None = "drawings-1", seed: int = 0) -> Path:
    """A finished run (tests/helpers.make_run_dir) that was also scored on real drawings."""
    make_run_dir(run_dir, val_acc, fingerprint=fingerprint, seed=seed)
    summary = json.loads((run_dir / "run.json").read_text())
    if drawn_val is not None:
        summary["metrics"] |= {"drawn/val_acc": drawn_val, "drawn/acc": 0.5}
        summary["drawn_fingerprint"] = drawn_fingerprint
    else:
        summary["drawn_unavailable"] = "no pen-digit files"
    (run_dir / "run.json").write_text(json.dumps(summary))
    return run_dir


def _promote(run_dir: Path, target: Path):
    return promote(Candidate.from_run_dir(run_dir), target)


def test_higher_drawn_val_acc_wins_even_on_other_training_data(tmp_path):
    target = tmp_path / "promoted"
    assert _promote(drawn_run(tmp_path / "a", 0.95, 0.70, "data-a"), target).promoted
    better = _promote(drawn_run(tmp_path / "b", 0.80, 0.85, "data-b", seed=1), target)
    assert better.promoted and "drawn/val_acc" in better.reason, better.reason
    meta = json.loads((target / "model.json").read_text())
    assert meta["data_fingerprint"] == "data-b" and meta["drawn_fingerprint"] == "drawings-1"
    worse = _promote(drawn_run(tmp_path / "c", 0.99, 0.80, "data-b", seed=2), target)
    assert not worse.promoted and "drawn/val_acc" in worse.reason
    equal = _promote(drawn_run(tmp_path / "d", 0.99, 0.85, "data-a", seed=3), target)
    assert not equal.promoted
    assert json.loads((target / "model.json").read_text())["metrics"]["drawn/val_acc"] == 0.85


def test_other_drawings_fall_back_to_val_acc_on_the_same_data(tmp_path):
    target = tmp_path / "promoted"
    assert _promote(drawn_run(tmp_path / "a", 0.90, 0.70, drawn_fingerprint="drawings-1"), target).promoted
    higher_drawn = _promote(drawn_run(tmp_path / "b", 0.85, 0.99, drawn_fingerprint="drawings-2"), target)
    assert not higher_drawn.promoted and "val/acc" in higher_drawn.reason
    higher_val = _promote(drawn_run(tmp_path / "c", 0.95, 0.10, drawn_fingerprint="drawings-2"), target)
    assert higher_val.promoted and higher_val.reason.startswith("val/acc")
    other_data = _promote(drawn_run(tmp_path / "d", 0.99, 0.99, "data-b", "drawings-3"), target)
    assert not other_data.promoted and "--force" in other_data.reason


def test_without_drawn_scores_on_either_side_the_old_rule_holds(tmp_path):
    target = tmp_path / "promoted"
    assert _promote(drawn_run(tmp_path / "old", 0.90, None), target).promoted
    scored = _promote(drawn_run(tmp_path / "new", 0.85, 0.99), target)
    assert not scored.promoted and "val/acc" in scored.reason
    assert _promote(drawn_run(tmp_path / "newer", 0.93, 0.50), target).promoted
    unscored = _promote(drawn_run(tmp_path / "unscored", 0.92, None, "data-b"), target)
    assert not unscored.promoted and "--force" in unscored.reason


def _candidate(name: str, val_acc: float, drawn_val: float | None, drawn_fp: str | None = "d1",
               data_fp: str = "data-a") -> Candidate:
    metrics = {"val/acc": val_acc, "val/loss": 1 - val_acc}
    if drawn_val is not None:
        metrics["drawn/val_acc"] = drawn_val
    return Candidate(Path(name) / "best.ckpt", metrics, {}, data_fp, Path(name),
                     drawn_fingerprint=drawn_fp if drawn_val is not None else None)


def _names(candidates: list[Candidate]) -> list[str]:
    return [c.run_dir.name for c in candidates]


def test_rank_runs_uses_drawn_val_acc_only_when_every_run_has_it():
    a, b, c = _candidate("a", 0.99, 0.60), _candidate("b", 0.80, 0.90), _candidate("c", 0.90, 0.75)
    assert _names(rank_runs([a, b, c])) == ["b", "c", "a"]
    assert best_run([a, b, c]).run_dir.name == "b"
    unscored = _candidate("d", 0.95, None)
    assert _names(rank_runs([a, b, c, unscored])) == ["a", "d", "c", "b"]
    other = _candidate("e", 0.85, 0.99, drawn_fp="d2")
    assert _names(rank_runs([a, b, c, other])) == ["a", "c", "e", "b"]
    no_fingerprint = Candidate(Path("f/best.ckpt"), {"val/acc": 0.5, "drawn/val_acc": 1.0}, {},
                               "data-a", Path("f"))
    assert no_fingerprint.drawn_score is None
    assert _names(rank_runs([a, b, no_fingerprint])) == ["a", "b", "f"]


def test_best_run_of_a_sweep_reads_drawn_scores_from_run_json(tmp_path):
    drawn_run(tmp_path / "sweep" / "0", 0.99, 0.60, "data-a")
    drawn_run(tmp_path / "sweep" / "1", 0.80, 0.90, "data-b", seed=1)
    assert best_run(find_runs(tmp_path / "sweep")).run_dir.name == "1"


# --------------------------------------------------------------------------- train.py

SMALL_RUN = ["trainer.max_epochs=2", "logger=csv", "promote.enabled=false",
             "pendigits.val_writers=2", "pendigits.test_writers=2"]


def compose_cfg(*overrides: str, output_dir: str = "/tmp/unused"):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"paths.output_dir={output_dir}", *overrides])


def test_data_and_drawn_evaluation_share_the_pendigits_settings(tmp_path):
    """`pendigits:` is the one place: data=pendigits, data=mix's pen part and the drawn/*
    evaluation hold out the same writers, so a run can never train on a held-out one."""
    settings = [f"pendigits.cache_dir={tmp_path}", f"pendigits.unipen_file={tmp_path}/my.tra",
                "pendigits.val_writers=3", "pendigits.test_writers=5", "pendigits.split_seed=7",
                "pendigits.render_seed=2"]
    keys = ("cache_dir", "unipen_file", "official_test", "val_writers", "test_writers",
            "split_seed", "render_seed")
    drawn_source = compose_cfg(*settings).drawn.source
    assert [drawn_source[k] for k in keys] == [
        str(tmp_path), f"{tmp_path}/my.tra", False, 3, 5, 7, 2]
    assert drawn_source.download is False
    pen = compose_cfg("data=pendigits", *settings).data.source
    mixed = compose_cfg("data=mix", *settings).data.source.parts.pendigits.source
    for source in (pen, mixed):
        assert [source[k] for k in keys] == [drawn_source[k] for k in keys]
    drawn = instantiate(compose_cfg(*settings).drawn, _convert_="all")
    assert isinstance(drawn, DrawnEvaluation) and drawn.source.val_writers == 3


def test_command_line_config_reads_a_unipen_file(shared_pen_dir, pen_data):
    """What `python train.py data=pendigits pendigits.unipen_file=<file>` builds."""
    cfg = compose_cfg("data=pendigits", f"pendigits.unipen_file={shared_pen_dir / TRAIN_FILE}",
                      *SMALL_RUN)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup()
    assert datamodule.sizes() == {"train": 80, "val": 40, "test": 40}
    drawn = instantiate(cfg.drawn, _convert_="all")
    np.testing.assert_array_equal(drawn.data().test.images, pen_data.test.images)


@pytest.mark.slow  # trains one epoch in-process as long as the check comes after training
def test_a_leaking_split_is_refused_before_training(tmp_path):
    """data.source.split_seed changed alone: the data holds out other writers than drawn/*
    does. That must stop the run before any epoch, not after the whole training."""
    pen_dir = write_pen_dir(tmp_path / "pen")
    cfg = compose_cfg("data=pendigits", f"pendigits.unipen_file={pen_dir / TRAIN_FILE}",
                      "data.source.split_seed=3", *SMALL_RUN, "trainer.max_epochs=1",
                      output_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="both trained on and held out"):
        train(cfg)
    assert not list((tmp_path / "run").rglob("*.ckpt")), "trained before refusing"


def run_train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_pendigits_run_is_scored_on_drawings(tmp_path):
    pen_dir = write_pen_dir(tmp_path / "pen")
    run_dir = tmp_path / "run"
    result = run_train("data=pendigits", f"pendigits.unipen_file={pen_dir / TRAIN_FILE}",
                       "data.source.download=false", *SMALL_RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "run.json").read_text())
    metrics = summary["metrics"]
    assert summary["sizes"] == {"train": 80, "val": 40, "test": 40}
    assert 0 <= metrics["drawn/acc"] <= 1 and "drawn/val_acc" in metrics
    assert summary["drawn_fingerprint"] and summary["drawn_unavailable"] is None
    # same pendigits.* settings: the drawn evaluation holds out the data's own val/test writers
    assert metrics["drawn/acc"] == pytest.approx(metrics["test/acc"])
    assert metrics["drawn/val_acc"] == pytest.approx(metrics["val/acc"])
    assert (run_dir / "report" / "drawn.json").is_file()
    assert "real drawings by held-out writers" in result.stdout


@pytest.mark.slow
def test_embedded_run_without_pen_files_says_why_it_was_not_scored(tmp_path):
    empty = tmp_path / "empty-pen-cache"
    empty.mkdir()
    run_dir = tmp_path / "run"
    result = run_train("data.split.train=500", "data.split.val=100", "data.split.test=100",
                       f"pendigits.cache_dir={empty}", *SMALL_RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "run.json").read_text())
    assert not any(key.startswith("drawn/") for key in summary["metrics"])
    assert summary["drawn_fingerprint"] is None
    assert isinstance(summary["drawn_unavailable"], str) and "pen-digit" in summary["drawn_unavailable"]
    assert list(empty.iterdir()) == []  # nothing downloaded
    assert not (run_dir / "report" / "drawn.json").exists()


def test_cli_scores_a_promoted_model_on_held_out_writers(tmp_path, capsys):
    """`handwriting drawn`: the same scores as a run, for any saved model; a clear error
    (exit 2) when there are no drawings to score on."""
    from handwriting.cli import main
    from tests.browser_helpers import write_promoted_model

    write_promoted_model(tmp_path / "model")
    pen = write_pen_dir(tmp_path / "pen") / TRAIN_FILE
    # The default split (4 validation, 6 test writers) needs more than the 8 synthetic ones.
    (tmp_path / "pen" / TRAIN_FILE).write_bytes(unipen_text(writers=12, samples=1).encode())
    assert main(["drawn", "--model", str(tmp_path / "model"), "--unipen-file", str(pen)]) == 0
    assert "real drawings by held-out writers" in capsys.readouterr().out
    assert main(["drawn", "--model", str(tmp_path / "model"),
                 "--cache-dir", str(tmp_path / "empty")]) == 2
    assert "handwriting download pendigits" in capsys.readouterr().err
