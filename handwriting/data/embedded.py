"""10,000 real MNIST digits shipped inside the package, so that training, tests and
the demo work offline right after install. See EMBEDDED_DATA.md for provenance;
scripts/build_embedded_data.py regenerates the file byte for byte."""

from __future__ import annotations

import hashlib
import io
from importlib import resources

import numpy as np

from handwriting.data.types import LabeledImages, SourceData

RESOURCE = "mnist_embedded.npz"
EXPECTED_SHA256 = "92bbd7acd4319486ecec582f89a851523eea2afd276d9800c2c07a3aca40492b"
CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))


class EmbeddedDataError(RuntimeError):
    """The packaged sample is missing or damaged."""


def _read_resource() -> bytes:
    resource = resources.files("handwriting.data").joinpath(RESOURCE)
    try:
        return resource.read_bytes()
    except FileNotFoundError as error:
        raise EmbeddedDataError(
            f"handwriting/data/{RESOURCE} is missing from the installed package; reinstall "
            "handwriting (pip install --force-reinstall handwriting), or in a source checkout "
            "run: python scripts/build_embedded_data.py"
        ) from error


class EmbeddedMNIST:
    """The packaged MNIST sample: all 10,000 images as ``train``, no test set
    (the data module carves validation/test from it)."""

    def load(self) -> SourceData:
        data = _read_resource()
        digest = hashlib.sha256(data).hexdigest()
        if digest != EXPECTED_SHA256:
            raise EmbeddedDataError(
                f"handwriting/data/{RESOURCE} is corrupt (sha256 {digest}, expected "
                f"{EXPECTED_SHA256}); reinstall handwriting (pip install --force-reinstall "
                "handwriting), or in a source checkout run: python scripts/build_embedded_data.py"
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            train = LabeledImages(npz["images"], npz["labels"].astype(np.int64))
        return SourceData(name="embedded", classes=CLASSES, train=train)
