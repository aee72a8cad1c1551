"""Read a row of handwritten characters (a number such as "2026", or letters) with a
single-character model: segment, normalise each character like MNIST, classify all at once.

The model only ever sees one centred 28x28 character, exactly as in training, so any
promoted model reads whole numbers without retraining; what it can read follows its
classes (a letters model reads letters). The string is only as good as the segmentation
(``handwriting.segmentation``): characters are ordered left to right on one line.

    reading = read_number("house_number.png", predictor)
    reading.text, reading.confidence, [c.label for c in reading.characters]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from handwriting.grey_image import load_image, to_gray
from handwriting.preprocessing import (
    DEFAULT_CONTRAST,
    DEFAULT_MIN_INK,
    EmptyImageError,
    background_level,
    center_like_mnist,
    has_ink,
    to_white_on_black,
)
from handwriting.segmentation import segment_characters

EMPTY_MESSAGE = (
    "The image is empty: there is (almost) no ink on it. Write one or more characters "
    "side by side on one line."
)


class Classifier(Protocol):
    """What ``read_number`` needs from a model (``handwriting.inference.Predictor`` fits)."""

    classes: Sequence[str]

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CharacterReading:
    """One segmented character: what the model read, how sure it was, where it was."""

    label: str
    confidence: float
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the input image, ends exclusive
    image: np.ndarray = field(repr=False)  # the 28x28 model input
    probabilities: np.ndarray = field(repr=False)
    classes: Sequence[str] = field(repr=False)
    strokes: tuple[int, int] | None = None  # read from strokes: the run [start, end) drawn

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]


@dataclass(frozen=True)
class NumberReading:
    """A whole row: ``text`` is the characters' labels joined left to right.

    ``confidence`` is the product of the per-character confidences (the chance that
    every character is right, if the model is calibrated and errors are independent);
    ``min_confidence`` points at the weakest character. ``ink`` is the white-on-black
    float image that was segmented (what Tesseract should read for a fair comparison).
    """

    text: str
    characters: tuple[CharacterReading, ...]
    confidence: float
    min_confidence: float
    classes: Sequence[str] = field(repr=False)
    ink: np.ndarray = field(repr=False)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.characters]

    @property
    def images(self) -> np.ndarray:
        """(N, 28, 28) model inputs, left to right."""
        return np.stack([c.image for c in self.characters])

    @property
    def bboxes(self) -> list[tuple[int, int, int, int]]:
        return [c.bbox for c in self.characters]


def line_ink(
    image: Any, *, contrast: float = DEFAULT_CONTRAST, min_ink: float = DEFAULT_MIN_INK
) -> np.ndarray:
    """Any image (path, bytes, PIL, canvas RGBA, grey array; either polarity) -> float32
    (H, W) white ink on black in [0, 1], background removed and contrast stretched, so
    grey paper and faint pencil segment like a clean canvas. Raises EmptyImageError when
    there is too little ink (the same rule as the single-character path)."""
    if not isinstance(image, Image.Image | np.ndarray):
        if isinstance(image, str | Path | bytes | bytearray) or hasattr(image, "read"):
            image = load_image(image)
        else:
            raise TypeError(
                f"read_number expects a path, bytes, PIL image or array, got {type(image).__name__}"
            )
    gray = to_gray(image)
    if gray.size == 0 or not has_ink(gray, threshold=contrast, min_ink=min_ink):
        raise EmptyImageError(EMPTY_MESSAGE)
    white_on_black = to_white_on_black(gray)
    ink = np.clip(white_on_black - background_level(white_on_black), 0.0, 1.0)
    return (ink / float(ink.max())).astype(np.float32)


def read_number(
    image: Any,
    predictor: Classifier,
    *,
    segmentation: Mapping[str, Any] | None = None,
    contrast: float = DEFAULT_CONTRAST,
    min_ink: float = DEFAULT_MIN_INK,
) -> NumberReading:
    """Read a row of characters left to right.

    ``image``: a path, bytes, PIL image, canvas RGBA (H, W, 4) or grey (H, W) array, in
    either polarity -- or a ``stroke_format.StrokeDrawing`` (a canvas's strokes), which is
    read by its strokes (``stroke_reading.read_strokes``: touching and overlapping
    characters are grouped by drawing order). ``segmentation``: keyword arguments for
    ``segmentation.segment_characters`` (thresholds, merge and split rules).
    Raises EmptyImageError when there is no ink or no character is found.
    """
    from handwriting.stroke_format import StrokeDrawing

    if isinstance(image, StrokeDrawing):
        from handwriting.stroke_reading import read_strokes  # imports this module

        return read_strokes(image, predictor)
    ink = line_ink(image, contrast=contrast, min_ink=min_ink)
    segments = segment_characters(ink, **dict(segmentation or {}))
    if not segments:
        raise EmptyImageError(EMPTY_MESSAGE)
    inputs = np.stack([center_like_mnist(s.image) for s in segments]).astype(np.float32)
    probs = np.asarray(predictor.probabilities(inputs), dtype=np.float64)
    classes = list(predictor.classes)
    if probs.shape != (len(segments), len(classes)):
        raise ValueError(
            f"the model returned probabilities of shape {probs.shape} for {len(segments)} "
            f"characters and {len(classes)} classes"
        )
    best = probs.argmax(axis=1)
    characters = tuple(
        CharacterReading(
            label=classes[int(k)],
            confidence=float(p[k]),
            bbox=tuple(int(v) for v in segment.bbox),  # type: ignore[arg-type]
            image=image28,
            probabilities=p,
            classes=classes,
        )
        for segment, image28, p, k in zip(segments, inputs, probs, best, strict=True)
    )
    confidences = np.array([c.confidence for c in characters])
    return NumberReading(
        text="".join(c.label for c in characters),
        characters=characters,
        confidence=float(np.prod(confidences)),
        min_confidence=float(confidences.min()),
        classes=classes,
        ink=ink,
    )
