"""Labelled 28x28 images from CSV files in the Kaggle "Digit Recognizer" layout:
a header row, a ``label`` column and 784 pixel columns (row-major, 0-255).

Parsing uses numpy's C reader (about 1 s for Kaggle's 42,000 rows); only when that
fails is the file re-scanned line by line, to say exactly which line and column
is wrong.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from handwriting.data.types import IMAGE_SIZE, LabeledImages, SourceData
from handwriting.model import MAX_CLASSES

log = logging.getLogger(__name__)
N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
_BORDER = 2  # width of the frame used to guess the background colour


class CSVFormatError(ValueError):
    """The CSV file does not have the expected layout or values."""


def check_label_range(path: Path, labels: np.ndarray) -> None:
    """Refuse a class count that the labels do not bear out. Classes are 0..largest label,
    so one stray label (1000 among digits) would make 1001 classes, most without a single
    image, and a model, a report and a confusion matrix that size. Digit sets (up to 10
    classes) may leave classes out; above that, at least half must occur."""
    count = int(labels.max()) + 1
    present = len(np.unique(labels))
    if count > MAX_CLASSES or (count > 10 and 2 * present < count):
        row = int(np.argmax(labels))
        raise CSVFormatError(
            f"{path}: line {row + 2}: label {labels[row]} would make {count} classes (labels "
            f"0-{count - 1}), but only {present} different labels occur in the file"
            + (f" and at most {MAX_CLASSES} classes are supported" if count > MAX_CLASSES else "")
            + ". Fix that label, or name the classes (data.source.classes=[...]) if they are meant."
        )


def looks_inverted(images: np.ndarray) -> bool:
    """True when the images are dark ink on a light background: the frame around
    a centred character is background, so its mean brightness reveals polarity."""
    frame = np.ones(images.shape[1:], dtype=bool)
    frame[_BORDER:-_BORDER, _BORDER:-_BORDER] = False
    return bool(images[:, frame].mean() > 127.5) if len(images) else False


def _read_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise CSVFormatError(f"{path}: the file is empty; expected a header row")
    return [name.strip() for name in header]


def _locate_problem(path: Path, header: list[str]) -> str:
    """Find the first malformed line for an actionable message."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            line = reader.line_num
            if not row:
                return f"line {line} is empty"
            if len(row) != len(header):
                return f"line {line} has {len(row)} values but the header has {len(header)} columns"
            for name, value in zip(header, row, strict=True):
                try:
                    number = int(value)
                except ValueError:
                    return f"line {line}, column {name!r}: {value!r} is not an integer"
                if not -(2**31) <= number < 2**31:
                    return f"line {line}, column {name!r}: {value} is far out of range"
    return "unknown problem"


def _load_table(path: Path, header: list[str]) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": see below
            table = np.loadtxt(
                path,
                delimiter=",",
                skiprows=1,
                dtype=np.int32,
                ndmin=2,
                comments=None,
                encoding="utf-8-sig",
            )
    except (ValueError, OverflowError) as error:
        raise CSVFormatError(f"{path}: {_locate_problem(path, header)} ({error})") from error
    if len(table) == 0:
        raise CSVFormatError(f"{path}: no data rows after the header")
    return table


def _read_csv(path: Path, label_column: str, require_labels: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (uint8 images (N, 28, 28), int64 labels (N,))."""
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    header = _read_header(path)
    if label_column not in header:
        if require_labels:
            raise CSVFormatError(
                f"{path}: no {label_column!r} column (columns start {header[:3]}); "
                "set label_column to the name of the column holding the class"
            )
        raise CSVFormatError(
            f"{path}: no {label_column!r} column, so this test set is unlabelled (like "
            "Kaggle's test.csv) and cannot be used to evaluate a model. Leave test_path "
            "unset (a test split is then carved from the training CSV); to label the file, "
            "run a trained model on it instead."
        )
    label_index = header.index(label_column)
    pixel_names = [name for i, name in enumerate(header) if i != label_index]
    if len(pixel_names) != N_PIXELS:
        raise CSVFormatError(
            f"{path}: expected {N_PIXELS} pixel columns besides {label_column!r} (28x28), "
            f"found {len(pixel_names)}"
        )
    table = _load_table(path, header)
    labels = table[:, label_index]
    pixels = np.delete(table, label_index, axis=1)
    if pixels.min() < 0 or pixels.max() > 255:
        bad = np.argwhere((pixels < 0) | (pixels > 255))
        row, col = bad[0]
        raise CSVFormatError(
            f"{path}: line {row + 2}, column {pixel_names[col]!r}: value {pixels[row, col]} "
            f"is outside 0-255 ({len(bad)} such values in the file)"
        )
    if labels.min() < 0:
        row = int(np.argmin(labels))
        raise CSVFormatError(f"{path}: line {row + 2}: negative label {labels[row]}")
    images = pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return images, labels.astype(np.int64)


class CSVSource:
    """Train (and optionally test) images from Kaggle-style CSV files.

    ``classes`` names the label values 0..K-1; by default they are "0".."K-1" with
    K = largest training label + 1. ``invert``: True/False forces flipping dark-on-
    light images to white-on-black; None decides per file from the border brightness.
    """

    def __init__(
        self,
        train_path: str,
        test_path: str | None = None,
        label_column: str = "label",
        invert: bool | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.train_path = Path(train_path).expanduser()
        self.test_path = Path(test_path).expanduser() if test_path else None
        self.label_column = label_column
        self.invert = invert
        self.classes = tuple(str(name) for name in classes) if classes is not None else None

    def _polarity(self, images: np.ndarray, path: Path) -> np.ndarray:
        invert = looks_inverted(images) if self.invert is None else self.invert
        if invert:
            if self.invert is None:
                log.info("%s looks like dark ink on a light background; inverting it", path)
            return 255 - images
        return images

    def _split(self, path: Path, classes: tuple[str, ...] | None) -> LabeledImages:
        images, labels = _read_csv(path, self.label_column, require_labels=path == self.train_path)
        if classes is not None and labels.max() >= len(classes):
            row = int(np.argmax(labels))
            raise CSVFormatError(
                f"{path}: line {row + 2}: label {labels[row]} but only {len(classes)} classes "
                f"({', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''})"
            )
        return LabeledImages(self._polarity(images, path), labels)

    def load(self) -> SourceData:
        train = self._split(self.train_path, self.classes)
        if self.classes is None:
            check_label_range(self.train_path, train.labels)
        classes = self.classes or tuple(str(i) for i in range(int(train.labels.max()) + 1))
        test = self._split(self.test_path, classes) if self.test_path else None
        return SourceData(name="csv", classes=classes, train=train, test=test)
