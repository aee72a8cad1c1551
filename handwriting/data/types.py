"""Plain containers that every data source returns, so the data module never
needs to know where images came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 28


@dataclass(frozen=True)
class LabeledImages:
    """Images as uint8 ``(N, 28, 28)``, white ink on black (MNIST polarity),
    with int64 class indices ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must have shape (N, 28, 28), got {self.images.shape}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels must have shape ({len(self.images)},), got {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> LabeledImages:
        return LabeledImages(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class SourceData:
    """What a source provides. ``train`` is the pool that validation (and test,
    when the source has no official test set) is carved from; ``val``/``test``
    are set only when the source defines them itself (e.g. MNIST's official
    10k test set, or an image folder with ``val/`` and ``test/``)."""

    name: str
    classes: tuple[str, ...]
    train: LabeledImages
    val: LabeledImages | None = None
    test: LabeledImages | None = None
