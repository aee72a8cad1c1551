"""Plain containers that every data source returns, so the data module never
needs to know where images came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

IMAGE_SIZE = 28
# What a training pool may be: images, pen strokes (drawn anew each epoch), or a weighted
# mix of both (handwriting.data.mix.MixedPool); each has len() and subset().
TrainPool = Any


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
    train: TrainPool
    val: LabeledImages | None = None
    test: LabeledImages | None = None
    # Writers of val/test images, when known: per-writer accuracy, writer-disjoint checks.
    val_writers: np.ndarray | None = None
    test_writers: np.ndarray | None = None


@dataclass(frozen=True)
class StrokeSet:
    """Pen trajectories with labels and writers, kept as strokes so training can draw
    them anew every epoch. ``strokes[i]`` is a tuple of (N, 2) float arrays (x right,
    y down); ``writers[i]`` names who wrote it (splits are made by writer)."""

    strokes: tuple[tuple[np.ndarray, ...], ...]
    labels: np.ndarray
    writers: np.ndarray
    style: Any = None  # handwriting.render.StrokeStyle used to draw them for training
    # Share of drawings drawn anew each time they are served in training (1: every time);
    # the rest reuse their last drawing, which bounds the drawing cost per epoch.
    refresh: float = 1.0

    def __post_init__(self) -> None:
        if not (len(self.strokes) == len(self.labels) == len(self.writers)):
            raise ValueError(
                f"strokes, labels and writers differ in length: "
                f"{len(self.strokes)}, {len(self.labels)}, {len(self.writers)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> StrokeSet:
        indices = np.asarray(indices, dtype=np.int64)
        return StrokeSet(
            tuple(self.strokes[i] for i in indices), self.labels[indices],
            self.writers[indices], self.style, self.refresh,
        )
