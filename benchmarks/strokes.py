"""Re-draw scanned digits the way a drawing canvas would show them.

MNIST digits are pen scans: strokes vary in width and darkness. A digit drawn
with a mouse or finger in the app's canvas is a uniform-width, full-colour
stroke on a (usually transparent) RGBA canvas, typically much larger than
28x28. ``redraw_as_strokes`` turns a 28x28 digit into such a canvas image by
thinning it to a one-pixel skeleton and stroking that skeleton with a round
pen -- the input for the drawn-digit robustness benchmark (canvas_robustness.py) and
for ``RedrawnTrainingMix``, the data source of the ``*_redrawn_*`` experiments. Research
code: the product's own training-side redraw is ``handwriting.data.redraw``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from handwriting.preprocessing import BOX, prepare_canvas

Background = str  # "transparent" | "black" | "white"
_BACKGROUNDS = {"transparent": None, "black": (0, 0, 0), "white": (255, 255, 255)}
# 8-neighbour offsets P2..P9 of Zhang & Suen (1984): N, NE, E, SE, S, SW, W, NW.
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
# Half of the 8-neighbourhood, so each pair of touching pixels gives one segment.
_FORWARD = ((0, 1), (1, -1), (1, 0), (1, 1))


def skeletonize(binary: np.ndarray) -> np.ndarray:
    """One-pixel-wide skeleton of a binary image (Zhang-Suen thinning, vectorised).

    Every connected component keeps at least one pixel, so dots and tiny blobs
    (which Zhang-Suen can erase entirely) survive as a single point.
    """
    image = np.asarray(binary, dtype=bool)
    if image.ndim != 2:
        raise ValueError(f"skeletonize expects a 2-D binary image, got shape {image.shape}")
    skel = np.pad(image, 1).astype(np.uint8)
    h, w = image.shape

    def neighbours() -> list[np.ndarray]:
        return [skel[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in _NEIGHBOURS]

    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = neighbours()
            centre = skel[1:-1, 1:-1]
            count = sum(p[i].astype(np.int8) for i in range(8))
            transitions = sum(
                ((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int8) for i in range(8)
            )
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if step == 0:
                extra = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
            else:
                extra = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
            remove = (centre == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & extra
            if remove.any():
                centre[remove] = 0
                changed = True

    result = skel[1:-1, 1:-1].astype(bool)
    labels, n = ndimage.label(image, structure=np.ones((3, 3), dtype=bool))
    if n:
        kept = np.zeros(n + 1, dtype=bool)
        kept[np.unique(labels[result])] = True
        for component in np.flatnonzero(~kept[1:]) + 1:
            ys, xs = np.nonzero(labels == component)
            middle = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
            result[ys[middle], xs[middle]] = True
    return result


def skeleton_segments(skeleton: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 2) as (x, y) and segments (M, 2, 2) joining 8-neighbour skeleton pixels."""
    skel = np.asarray(skeleton, dtype=bool)
    ys, xs = np.nonzero(skel)
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    padded = np.pad(skel, 1)
    h, w = skel.shape
    segments = []
    for dy, dx in _FORWARD:
        linked = skel & padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        sy, sx = np.nonzero(linked)
        start = np.stack([sx, sy], axis=1)
        segments.append(np.stack([start, start + (dx, dy)], axis=1))
    return points, np.concatenate(segments).astype(np.float64)


def _pick(value: float | Sequence[float], rng: np.random.Generator) -> float:
    if isinstance(value, int | float):
        return float(value)
    low, high = (float(v) for v in value)
    return float(rng.uniform(low, high))


def redraw_as_strokes(
    digit28: np.ndarray,
    rng: np.random.Generator,
    canvas_size: tuple[int, int] = (280, 280),
    stroke_width: float | Sequence[float] = 18,
    scale_range: tuple[float, float] = (0.3, 0.9),
    background: Background = "transparent",
    ink: tuple[int, int, int] = (255, 255, 255),
    *,
    upsample: int = 4,
    threshold: float = 0.35,
    antialias: bool = True,
) -> np.ndarray:
    """Re-draw a white-on-black digit (28x28, uint8 or float in [0, 1]) as a
    canvas drawing: uniform round-pen strokes along its skeleton, at a random
    size (``scale_range`` x the shorter canvas side) and position.

    Returns RGBA uint8 of shape ``(height, width, 4)`` for ``canvas_size=(height, width)``,
    like streamlit-drawable-canvas: with ``background="transparent"`` untouched
    pixels are (0, 0, 0, 0); "black"/"white" give an opaque canvas.
    ``stroke_width`` is in canvas pixels, a number or a (min, max) range.
    """
    if background not in _BACKGROUNDS:
        raise ValueError(f"background must be one of {sorted(_BACKGROUNDS)}, got {background!r}")
    digit = np.asarray(digit28, dtype=np.float32)
    if digit.ndim != 2:
        raise ValueError(f"digit must be a 2-D image, got shape {digit.shape}")
    if digit.max() > 1.0:
        digit = digit / 255.0
    if digit.max() <= 0:
        raise ValueError("The digit is empty (no ink), nothing to redraw.")

    # Thin on an enlarged copy: the skeleton then follows the stroke smoothly.
    big = ndimage.zoom(digit, upsample, order=1)
    skeleton = skeletonize(big > threshold * float(big.max()))
    points, segments = skeleton_segments(skeleton)

    height, width = canvas_size
    pen = _pick(stroke_width, rng)
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = float(max(hi - lo)) if len(points) > 1 else 0.0
    target = _pick(scale_range, rng) * min(height, width)
    # Scale so the skeleton's longer side spans `target`, but never beyond the canvas.
    room = min(height, width) - pen - 2
    factor = min(target, room) / extent if extent > 0 else 1.0
    size = (hi - lo) * factor
    x0 = rng.uniform(pen / 2 + 1, max(pen / 2 + 1, width - pen / 2 - 1 - size[0]))
    y0 = rng.uniform(pen / 2 + 1, max(pen / 2 + 1, height - pen / 2 - 1 - size[1]))
    offset = np.array([x0, y0]) - lo * factor

    # Draw the pen mask, supersampled 2x for anti-aliased edges like a browser canvas.
    ss = 2 if antialias else 1
    mask = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(mask)
    radius = pen * ss / 2.0
    for (xa, ya), (xb, yb) in (segments * factor + offset) * ss:
        draw.line([(xa, ya), (xb, yb)], fill=255, width=max(1, round(pen * ss)))
    for x, y in (points * factor + offset) * ss:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    if ss > 1:
        mask = mask.resize((width, height), Image.Resampling.BOX)
    alpha = np.asarray(mask, dtype=np.uint8)

    colour = np.asarray(ink, dtype=np.float32)
    out = np.zeros((height, width, 4), dtype=np.uint8)
    back = _BACKGROUNDS[background]
    if back is None:
        out[..., :3] = np.where(alpha[..., None] > 0, colour, 0).astype(np.uint8)
        out[..., 3] = alpha
    else:
        a = alpha[..., None].astype(np.float32) / 255.0
        out[..., :3] = np.round(colour * a + np.asarray(back, np.float32) * (1 - a)).astype(
            np.uint8
        )
        out[..., 3] = 255
    return out


# The app's stroke-width slider runs from 8 to 40 px (default 20) on a 280 px canvas.
PEN_BUCKETS: tuple[tuple[float, float], ...] = ((8, 14), (14, 20), (20, 28), (28, 40))


def _ink_extent(canvas: np.ndarray) -> float:
    """Longer side of the drawn ink's bounding box (canvas pixels)."""
    alpha = canvas[..., 3] if canvas[..., 3].min() < 255 else canvas[..., :3].max(axis=2)
    ys, xs = np.nonzero(alpha > 127)
    if len(ys) == 0:
        return float("nan")
    return float(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))


def redraw_digits(
    images: np.ndarray,
    seed: int = 0,
    buckets: tuple[tuple[float, float], ...] = PEN_BUCKETS,
    canvas_size: int = 280,
    scale_range: tuple[float, float] = (0.3, 0.9),
    background: str = "black",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Redraw digits as canvas drawings and read them back through the app's preprocessing.

    Digits are spread evenly over the pen-width buckets (seeded shuffle), the pen width is
    uniform inside the bucket, size and position as ``redraw_as_strokes`` draws them.
    ``background="black"`` with white ink is what the app's canvas gives. Returns
    (float32 (N, 28, 28) model inputs, pen width, bucket index, stroke width in the input).
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected (N, 28, 28) images, got {images.shape}")
    rng = np.random.default_rng(seed)
    n = len(images)
    bucket = rng.permutation(np.arange(n) % len(buckets)).astype(np.int64)
    drawn = np.empty((n, 28, 28), dtype=np.float32)
    pen = np.empty(n, dtype=np.float64)
    width_in = np.empty(n, dtype=np.float64)
    for i in range(n):
        lo, hi = buckets[bucket[i]]
        pen[i] = rng.uniform(lo, hi)
        canvas = redraw_as_strokes(
            images[i], rng, canvas_size=(canvas_size, canvas_size), stroke_width=pen[i],
            scale_range=scale_range, background=background,
        )
        drawn[i] = prepare_canvas(canvas)
        width_in[i] = pen[i] * BOX / _ink_extent(canvas)
    return drawn, pen, bucket, width_in


class RedrawnTrainingMix:
    """Data source of the ``*_redrawn_*`` experiments (a training-side fix for drawings that
    ``data.redraw`` has since replaced): the standard split of ``data`` (conf/data/<data>.yaml),
    with a ``fraction`` of the training digits added a second time as canvas redraws.
    Validation and test are untouched, so test accuracy stays comparable with the plain
    runs. The redraws are cached as .npz in ``cache_dir`` (they cost ~20 ms each). Used
    with ``data.split.train=null`` (the whole mixed pool is the training set), as
    experiments/experiment/*_redrawn_*.yaml do.
    """

    def __init__(self, data: str = "embedded", fraction: float = 0.5, seed: int = 1234,
                 mnist_dir: str | None = None, cache_dir: str | None = None) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.data, self.fraction, self.seed = data, float(fraction), int(seed)
        self.mnist_dir = Path(mnist_dir) if mnist_dir else None
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def load(self) -> Any:
        from benchmarks.common import load_data_config
        from handwriting.data.types import LabeledImages, SourceData

        datamodule = load_data_config(self.data, self.mnist_dir)
        splits = datamodule.splits
        train = splits.train
        count = int(round(self.fraction * len(train)))
        index = np.sort(np.random.default_rng(self.seed).choice(len(train), count, replace=False))
        cache = (self.cache_dir / f"redrawn_{self.data}_{datamodule.fingerprint}_{count}_{self.seed}.npz"
                 if self.cache_dir else None)
        if cache is not None and cache.is_file():
            drawn = np.load(cache)["images"]
        else:
            inputs = redraw_digits(train.images[index], seed=self.seed)[0]
            drawn = np.round(inputs * 255).astype(np.uint8)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(cache, images=drawn)
        mixed = LabeledImages(np.concatenate([train.images, drawn]),
                              np.concatenate([train.labels, train.labels[index]]))
        return SourceData(f"{datamodule.source_name}+redrawn{self.fraction:g}",
                          tuple(datamodule.classes), train=mixed, val=splits.val, test=splits.test)
