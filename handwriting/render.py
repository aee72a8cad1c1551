"""Draw pen trajectories the way the app's canvas draws them.

Real drawings are the data the app exists for, and a pen trajectory is more than
its pixels: it can be drawn again with another pen width, size, slant or wobble.
This module is the one place that turns strokes (lists of (x, y) points, y down)
into what the model sees, so training data, held-out evaluation, benchmarks and
the browser fidelity test cannot drift apart:

1. ``place_strokes``: random size and position on the canvas (plus optional
   stroke-level augmentation: rotation, slant, stretch, point jitter);
2. ``draw_canvas``: the canvas picture, as streamlit-drawable-canvas returns it
   (RGBA, transparent background, white ink): fabric.js's free-drawing brush
   smooths the points with quadratic curves through their midpoints and strokes
   them with round caps and joins;
3. ``prepare_canvas`` (preprocessing.py) then makes the 28x28 input, as in the app.

``render_input`` does 1-3 for training: the same placement and pen, drawn on a
smaller raster (the preprocessing scales the drawing to 20 px anyway), which is
several times faster than a full 280x280 canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from handwriting.preprocessing import center_like_mnist, prepare_canvas

Strokes = Sequence[np.ndarray]  # each (N, 2): x right, y down, any units
Range = float | Sequence[float]  # a value, or (low, high) to draw uniformly from

# The app's single-digit canvas and its stroke-width slider (app/streamlit_app.py).
CANVAS_SIZE = 280
STROKE_WIDTHS = (8.0, 40.0)
_CURVE_STEPS = 8  # points per quadratic segment when flattening fabric's path


@dataclass(frozen=True)
class StrokeStyle:
    """How a trajectory is put on the canvas. Ranges are drawn uniformly per drawing.

    ``size``: the drawing's longer side as a fraction of the canvas side (people fill
    anything from a third to most of the box). ``stroke_width``: pen width in canvas
    pixels (the app's slider range). The rest is stroke-level augmentation for
    training (0 = off): rotation and slant in degrees, horizontal ``stretch`` factor,
    and ``jitter``, a per-point wobble as a fraction of the drawing's size.
    """

    canvas_size: int = CANVAS_SIZE
    stroke_width: Range = STROKE_WIDTHS
    size: Range = (0.35, 0.85)
    rotate_deg: float = 0.0
    slant_deg: float = 0.0
    stretch: Range = 1.0
    jitter: float = 0.0
    paths: bool = True  # False: each stroke is a cloud of centre-line points (a thinned scan)

    def __post_init__(self) -> None:
        widths = _bounds(self.stroke_width, "stroke_width")
        sizes = _bounds(self.size, "size")
        stretches = _bounds(self.stretch, "stretch")
        if self.canvas_size < 28:
            raise ValueError(f"canvas_size must be >= 28 px, got {self.canvas_size}")
        if widths[0] <= 0 or widths[1] >= self.canvas_size / 2:
            raise ValueError(f"stroke_width must be in (0, canvas_size/2), got {self.stroke_width}")
        if not 0 < sizes[0] <= sizes[1] <= 1:
            raise ValueError(f"size must be a fraction in (0, 1], got {self.size}")
        if stretches[0] <= 0:
            raise ValueError(f"stretch must be > 0, got {self.stretch}")
        if not 0 <= self.rotate_deg < 90 or not 0 <= self.slant_deg < 60:
            raise ValueError("rotate_deg must be in [0, 90) and slant_deg in [0, 60)")
        if not 0 <= self.jitter < 0.2:
            raise ValueError(f"jitter must be in [0, 0.2), got {self.jitter}")


def _bounds(value: Range, name: str) -> tuple[float, float]:
    values = [value] * 2 if isinstance(value, int | float) else list(value)
    if len(values) != 2:
        raise ValueError(f"{name} must be a value or (low, high), got {value!r}")
    low, high = (float(v) for v in values)
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    return low, high


def _draw(value: Range, rng: np.random.Generator) -> float:
    low, high = _bounds(value, "range")
    return low if low == high else float(rng.uniform(low, high))


def _check(strokes: Strokes) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        raise ValueError("no strokes to draw (every stroke is empty)")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("stroke points must be finite numbers")
    return arrays


def place_strokes(
    strokes: Strokes, rng: np.random.Generator, style: StrokeStyle = StrokeStyle()
) -> tuple[list[np.ndarray], float]:
    """Strokes in canvas pixels, and the pen width: augmented, sized and placed at random
    so that the whole drawing (pen included) stays on the canvas."""
    arrays = _check(strokes)
    points = np.concatenate(arrays)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    extent = max(float((points.max(axis=0) - points.min(axis=0)).max()), 1e-6)
    angle = np.deg2rad(rng.uniform(-style.rotate_deg, style.rotate_deg))
    slant = np.tan(np.deg2rad(rng.uniform(-style.slant_deg, style.slant_deg)))
    stretch = _draw(style.stretch, rng)
    cos, sin = np.cos(angle), np.sin(angle)
    # x' = R @ Slant @ diag(stretch, 1) @ x  (slant leans the top to the right for > 0).
    matrix = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, -slant], [0.0, 1.0]])
    matrix = matrix @ np.diag([stretch, 1.0])
    moved = [(a - centre) @ matrix.T for a in arrays]
    if style.jitter > 0:
        moved = [m + rng.normal(0.0, style.jitter * extent, m.shape) for m in moved]

    canvas, pen = style.canvas_size, _draw(style.stroke_width, rng)
    allpts = np.concatenate(moved)
    low, high = allpts.min(axis=0), allpts.max(axis=0)
    span = max(float((high - low).max()), 1e-6)
    room = canvas - pen - 2.0
    factor = min(_draw(style.size, rng) * canvas, room) / span
    size = (high - low) * factor
    origin = np.array([rng.uniform(pen / 2 + 1, max(pen / 2 + 1, canvas - pen / 2 - 1 - s))
                       for s in size])
    return [(m - low) * factor + origin for m in moved], pen


def fabric_path(points: np.ndarray) -> np.ndarray:
    """The polyline fabric.js's PencilBrush actually strokes for ``points``: a quadratic
    curve from each midpoint to the next with the recorded point as control, a straight
    line to the last point; repeated points and the second-to-last point are dropped, as
    fabric does."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) > 1:
        keep = np.concatenate([[True], np.any(np.diff(pts, axis=0) != 0, axis=1)])
        pts = pts[keep]
    if len(pts) >= 2:
        # fabric's PencilBrush.decimatePoints (distance 0.4 px) loops to len - 1, so it never
        # keeps the second-to-last point (measured in the browser: tests/test_render_fidelity.py).
        kept = [pts[0]]
        for point in pts[1:-2]:
            if ((point - kept[-1]) ** 2).sum() >= 0.16:
                kept.append(point)
        pts = np.array([*kept, pts[-1]])
    if len(pts) < 3:
        return pts
    mids = (pts[:-1] + pts[1:]) / 2
    starts = np.concatenate([pts[:1], mids[:-1]])
    t = np.linspace(0.0, 1.0, _CURVE_STEPS + 1)[1:, None, None]  # (K, 1, 1)
    curves = (1 - t) ** 2 * starts + 2 * (1 - t) * t * pts[:-1] + t**2 * mids  # (K, M, 2)
    return np.concatenate([pts[:1], curves.transpose(1, 0, 2).reshape(-1, 2), pts[-1:]])


def _densify(path: np.ndarray, spacing: float = 0.5) -> np.ndarray:
    """Points along a polyline at most ``spacing`` apart (vectorised: no per-segment loop)."""
    if len(path) < 2:
        return path
    starts, deltas = path[:-1], np.diff(path, axis=0)
    counts = np.ceil(np.linalg.norm(deltas, axis=1) / spacing).astype(int) + 1
    segment = np.repeat(np.arange(len(starts)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    fraction = (offsets / np.repeat(counts, counts))[:, None]
    return np.concatenate([starts[segment] + deltas[segment] * fraction, path[-1:]])


def _stroke_mask(
    strokes: list[np.ndarray], pen: float, shape: tuple[int, int], paths: bool = True
) -> np.ndarray:
    """Anti-aliased ink coverage (float32 in [0, 1]) of round-pen strokes.

    A round pen covers exactly the points within pen/2 of the path, which gives round
    caps and joins for free: the path is sampled every half pixel, a Euclidean distance
    transform gives each pixel's distance to it, and coverage falls from 1 to 0 across
    the one pixel at the edge (as a browser's anti-aliasing does). Several times faster
    than drawing the shapes, which matters when training data is redrawn every epoch.
    """
    height, width = shape
    centre = np.zeros(shape, dtype=bool)
    for stroke in strokes:
        dense = _densify(fabric_path(stroke)) if paths else stroke
        cols, rows = np.round(dense - 0.5).astype(int).T
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        centre[rows[inside], cols[inside]] = True
    if not centre.any():
        return np.zeros(shape, dtype=np.float32)
    distance = ndimage.distance_transform_edt(~centre)
    return np.clip(pen / 2.0 - distance + 0.5, 0.0, 1.0).astype(np.float32)


def draw_ink(placed: Sequence[np.ndarray], pen: float, shape: tuple[int, int]) -> np.ndarray:
    """Ink coverage (float32 (H, W) in [0, 1]) of strokes already in canvas pixels, drawn
    with fabric's smoothing and a round pen of width ``pen``: the canvas's alpha channel
    for a canvas of any shape (the number canvas is 700x200, not square)."""
    return _stroke_mask([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in placed], pen, shape)


def draw_canvas(
    placed: list[np.ndarray], pen: float, canvas_size: int = CANVAS_SIZE, paths: bool = True
) -> np.ndarray:
    """The canvas image (H, W, 4) uint8 for strokes already in canvas pixels: white ink on a
    transparent background (the app's upload is opaque black; ``prepare_canvas`` reads
    both the same way)."""
    alpha = np.round(_stroke_mask(placed, pen, (canvas_size, canvas_size), paths) * 255).astype(np.uint8)
    out = np.zeros((canvas_size, canvas_size, 4), dtype=np.uint8)
    out[..., :3] = np.where(alpha[..., None] > 0, 255, 0).astype(np.uint8)
    out[..., 3] = alpha
    return out


def render_canvas(
    strokes: Strokes, rng: np.random.Generator, style: StrokeStyle = StrokeStyle()
) -> np.ndarray:
    """A trajectory as the app's canvas would show it (RGBA, see ``draw_canvas``)."""
    placed, pen = place_strokes(strokes, rng, style)
    return draw_canvas(placed, pen, style.canvas_size, style.paths)


def render_app_input(
    strokes: Strokes, rng: np.random.Generator, style: StrokeStyle = StrokeStyle()
) -> np.ndarray:
    """The exact app path: full canvas, then ``prepare_canvas``: (28, 28) float32."""
    return prepare_canvas(render_canvas(strokes, rng, style))


def render_input(
    strokes: Strokes, rng: np.random.Generator, style: StrokeStyle = StrokeStyle(), raster: int = 64
) -> np.ndarray:
    """Like ``render_app_input`` but drawn on a raster about ``raster`` px across instead
    of the whole canvas: the same placement, pen-to-drawing ratio and MNIST-style
    centring, several times faster (for re-rendering training data every epoch)."""
    placed, pen = place_strokes(strokes, rng, style)
    points = np.concatenate(placed)
    low = points.min(axis=0) - pen / 2 - 1
    span = float((points.max(axis=0) + pen / 2 + 1 - low).max())
    factor = raster / span
    side = int(np.ceil(raster)) + 2
    small = [(p - low) * factor for p in placed]
    return center_like_mnist(_stroke_mask(small, pen * factor, (side, side), style.paths))


def render_many(
    strokes: Sequence[Strokes],
    seed: int | np.random.Generator,
    style: StrokeStyle = StrokeStyle(),
    *,
    exact: bool = True,
) -> np.ndarray:
    """(N, 28, 28) uint8 inputs for many trajectories, reproducible from ``seed``.
    ``exact=True`` goes through the full canvas (evaluation); False uses ``render_input``."""
    rng = np.random.default_rng(seed)
    render = render_app_input if exact else render_input
    out = np.empty((len(strokes), 28, 28), dtype=np.uint8)
    for i, drawing in enumerate(strokes):
        out[i] = np.round(render(drawing, rng, style) * 255.0).astype(np.uint8)
    return out
