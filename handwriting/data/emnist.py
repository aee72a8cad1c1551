"""EMNIST (Cohen et al., 2017): handwritten digits and letters from NIST Special
Database 19, in MNIST format. Only the official NIST archive is downloaded; the
four files a split needs are extracted from it once and kept in the cache.

Two quirks are handled here so nothing downstream has to know about them:
the images are stored transposed relative to MNIST, and the ``letters`` split
numbers its classes from 1 (there is no class 0).
"""

from __future__ import annotations

import shutil
import string
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from handwriting.atomic import atomic_file
from handwriting.data.download import (
    DATA_DIR_ENV,
    DownloadError,
    RemoteFile,
    default_data_dir,
    ensure_files,
)
from handwriting.data.mnist import read_split
from handwriting.data.types import LabeledImages, SourceData

ARCHIVE = RemoteFile(
    "gzip.zip",
    sha256="fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
    size=561_753_746,
)
MIRRORS: tuple[str, ...] = ("https://biometrics.nist.gov/cs_links/EMNIST/",)

# Classes merged in bymerge/balanced because upper and lower case look alike.
_MERGED = set("cijklmopsuvwxyz")
_DIGITS = tuple(string.digits)
_UPPER = tuple(string.ascii_uppercase)
_LOWER = tuple(string.ascii_lowercase)
SPLIT_CLASSES: dict[str, tuple[str, ...]] = {
    "byclass": _DIGITS + _UPPER + _LOWER,
    "bymerge": _DIGITS + _UPPER + tuple(c for c in _LOWER if c not in _MERGED),
    "balanced": _DIGITS + _UPPER + tuple(c for c in _LOWER if c not in _MERGED),
    # Upper and lower case share one class; EMNIST labels them 1..26.
    "letters": _UPPER,
    "digits": _DIGITS,
    "mnist": _DIGITS,
}
_LABEL_OFFSET = {"letters": 1}


def split_files(split: str) -> dict[str, str]:
    """Names of the four gzipped IDX files of ``split`` inside the archive's ``gzip/``."""
    return {
        f"{part}_{kind}": f"emnist-{split}-{part}-{kind}-ubyte.gz"
        for part in ("train", "test")
        for kind in ("images-idx3", "labels-idx1")
    }


def _read_emnist(images_path: Path, labels_path: Path, split: str) -> LabeledImages:
    raw = read_split(images_path, labels_path)
    # EMNIST stores each image transposed; transposing back gives MNIST orientation.
    images = np.ascontiguousarray(raw.images.transpose(0, 2, 1))
    labels = raw.labels - _LABEL_OFFSET.get(split, 0)
    n_classes = len(SPLIT_CLASSES[split])
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{labels_path}: labels span {labels.min()}..{labels.max()} after shifting, but "
            f"the {split!r} split has {n_classes} classes; is this the right file?"
        )
    return LabeledImages(images, labels)


class EMNIST:
    """One EMNIST split with its official train/test partition.

    ``cache_dir`` defaults to ``$HANDWRITING_DATA_DIR/emnist`` or
    ``~/.cache/handwriting/emnist``. The split's files are looked for in
    ``cache_dir/gzip/`` (or directly in ``cache_dir``); when absent they are
    extracted from ``cache_dir/gzip.zip``, which is downloaded (562 MB) if needed.
    """

    def __init__(
        self,
        split: str = "letters",
        cache_dir: str | None = None,
        download: bool = True,
        mirrors: Sequence[str] | None = None,
    ) -> None:
        if split not in SPLIT_CLASSES:
            raise ValueError(
                f"unknown EMNIST split {split!r}; choose one of {sorted(SPLIT_CLASSES)}"
            )
        self.split = split
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_data_dir("emnist")
        self.download = download
        self.mirrors = tuple(mirrors) if mirrors else MIRRORS

    def load(self) -> SourceData:
        paths = self._split_paths()
        train = _read_emnist(paths["train_images-idx3"], paths["train_labels-idx1"], self.split)
        test = _read_emnist(paths["test_images-idx3"], paths["test_labels-idx1"], self.split)
        return SourceData(
            name=f"emnist-{self.split}",
            classes=SPLIT_CLASSES[self.split],
            train=train,
            test=test,
        )

    def _split_paths(self) -> dict[str, Path]:
        names = split_files(self.split)
        for folder in (self.cache_dir / "gzip", self.cache_dir):
            paths = {key: folder / name for key, name in names.items()}
            if all(path.is_file() for path in paths.values()):
                return paths
        try:
            archive = ensure_files(
                [ARCHIVE], self.cache_dir, self.mirrors, download=self.download, dataset="EMNIST"
            )["gzip.zip"]
        except DownloadError as error:
            listed = "\n".join(f"  {name}" for name in names.values())
            raise DownloadError(
                f"{error}\nAlternatively, place the {self.split!r} split's files, taken from "
                f"the archive's gzip/ folder, in {self.cache_dir / 'gzip'}:\n{listed}"
            ) from None  # the message already holds the first one's: say it once
        return self._extract(archive, names)

    def _extract(self, archive: Path, names: dict[str, str]) -> dict[str, Path]:
        """Copy the split's members out of the archive, each atomically."""
        target_dir = self.cache_dir / "gzip"
        target_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        with zipfile.ZipFile(archive) as zf:
            for key, name in names.items():
                target = target_dir / name
                try:
                    with atomic_file(target) as out, zf.open(f"gzip/{name}") as member:
                        shutil.copyfileobj(member, out)
                except KeyError as error:
                    raise DownloadError(
                        f"{archive} has no gzip/{name}; the archive is not the official EMNIST "
                        f"gzip.zip. Delete it and retry, or set {DATA_DIR_ENV}."
                    ) from error
                paths[key] = target
        return paths
