"""The official MNIST set (60,000 training and 10,000 test digits), fetched once
into a cache folder and verified against the published checksums."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from handwriting.data.download import RemoteFile, default_data_dir, ensure_files
from handwriting.data.idx import read_idx
from handwriting.data.types import LabeledImages, SourceData

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FILES: tuple[RemoteFile, ...] = (
    RemoteFile("train-images-idx3-ubyte.gz", md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    RemoteFile("train-labels-idx1-ubyte.gz", md5="d53e105ee54ea40749a09fcbcd1e9432"),
    RemoteFile("t10k-images-idx3-ubyte.gz", md5="9fb629c4189551a2d022fa330f9573f3"),
    RemoteFile("t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c"),
)
CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))


def read_split(images_path: Path, labels_path: Path) -> LabeledImages:
    """Pair an IDX image file with its label file, checking they belong together."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images (N, 28, 28), got {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(
            f"{labels_path}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{len(images)} images in {images_path}"
        )
    return LabeledImages(images, labels.astype(np.int64))


class MNIST:
    """Official MNIST. ``cache_dir`` defaults to ``$HANDWRITING_DATA_DIR/mnist`` or
    ``~/.cache/handwriting/mnist``; with ``download=False`` the files must already
    be there. ``mirrors`` overrides the download locations (e.g. an internal mirror)."""

    def __init__(
        self,
        cache_dir: str | None = None,
        download: bool = True,
        mirrors: Sequence[str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_data_dir("mnist")
        self.explicit_dir = bool(cache_dir)  # then $HANDWRITING_DATA_DIR is not used: hints say so
        self.download = download
        self.mirrors = tuple(mirrors) if mirrors else MIRRORS

    def load(self) -> SourceData:
        # Parsing all four files takes ~0.2 s, so no parsed-array cache is kept.
        paths = ensure_files(
            FILES, self.cache_dir, self.mirrors, download=self.download, dataset="MNIST",
            explicit_dir=self.explicit_dir,
        )
        train = read_split(paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"])
        test = read_split(paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"])
        return SourceData(name="mnist", classes=CLASSES, train=train, test=test)
