"""Re-draw scanned digits the way a drawing canvas would show them.

MNIST digits are pen scans: strokes vary in width and darkness. A digit drawn
with a mouse or finger in the app's canvas is a uniform-width, full-colour
stroke on a (usually transparent) RGBA canvas, typically much larger than
28x28. ``redraw_as_strokes`` turns a 28x28 digit into such a canvas image by
thinning it to a one-pixel skeleton and stroking that skeleton with a round
pen -- the input for the drawn-digit robustness benchmark, and optionally for
training-side augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from handwriting.preprocessing import prepare_canvas

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


def redraw_dataset(images: np.ndarray, rng: np.random.Generator, **kwargs: object) -> np.ndarray:
    """Canvas versions of many digits, already through the app's preprocessing:
    ``(N, 28, 28)`` digits -> ``(N, 28, 28)`` float32 model inputs, as if each digit
    had been drawn in the app (keyword arguments go to ``redraw_as_strokes``)."""
    return np.stack(
        [prepare_canvas(redraw_as_strokes(image, rng, **kwargs)) for image in images]
    ).astype(np.float32)
