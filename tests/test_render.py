"""The canvas-faithful stroke renderer (handwriting/render.py): fabric.js's smoothing,
the round pen, placement on the canvas, and the fast training raster against the exact
app path. Strokes are made up here; no data files are needed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from handwriting.render import (
    CANVAS_SIZE,
    StrokeStyle,
    draw_canvas,
    fabric_path,
    place_strokes,
    render_app_input,
    render_canvas,
    render_input,
    render_many,
)

_T = np.linspace(0.0, 2 * np.pi, 30)
# Trajectories in arbitrary units (x right, y down), as a parser or the canvas gives them.
SHAPES = {
    "zero": [np.stack([100 + 50 * np.cos(_T), 250 + 80 * np.sin(_T)], axis=1)],
    "one": [np.array([[5.0, 0.0], [5.0, 20.0]])],
    "seven": [np.array([[0.0, 0.0], [10.0, 0.0], [3.0, 14.0]])],
    "four": [np.array([[7.0, 14.0], [7.0, 0.0], [0.0, 9.0], [10.0, 9.0]]),
             np.array([[8.0, 12.0], [8.0, 13.0]])],
    "dash": [np.array([[0.0, 0.0], [30.0, 1.0]])],  # wide and flat: the extreme aspect
}
# Measured bound (2 x 5 shapes x 8 seeds): the 64 px training raster differs from the full
# 280 px canvas path by at most 0.078 mean absolute pixel value (pixels in [0, 1]).
RASTER_VS_CANVAS_MAX_MEAN_ABS = 0.10


def _inside_hull(points: np.ndarray, hull_of: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    hull = ConvexHull(hull_of)
    return np.all(points @ hull.equations[:, :-1].T + hull.equations[:, -1] <= tol, axis=1)


def _ink_box(image: np.ndarray, threshold: float = 0.0) -> tuple[int, int]:
    rows = np.nonzero((image > threshold).any(axis=1))[0]
    cols = np.nonzero((image > threshold).any(axis=0))[0]
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


# --------------------------------------------------------------------------- fabric_path


def test_fabric_path_runs_from_first_to_last_point_inside_the_convex_hull():
    rng = np.random.default_rng(3)
    for _ in range(5):
        points = rng.uniform(0, 100, size=(12, 2))
        path = fabric_path(points)
        np.testing.assert_array_equal(path[0], points[0])
        np.testing.assert_array_equal(path[-1], points[-1])
        assert len(path) > len(points)  # curves, flattened
        assert _inside_hull(path, points).all()
        # fabric's quadratic segments end on the midpoints of consecutive points, after its
        # decimation dropped the second-to-last point
        kept = np.delete(points, -2, axis=0)
        mids = (kept[:-1] + kept[1:]) / 2
        assert all(np.isclose(path, mid).all(axis=1).any() for mid in mids)


def test_fabric_path_drops_repeated_points_and_keeps_short_strokes():
    a, b, c = [0.0, 0.0], [5.0, 5.0], [10.0, 0.0]
    np.testing.assert_array_equal(fabric_path(np.array([a, a, b, b, b, c, c])),
                                  fabric_path(np.array([a, b, c])))
    np.testing.assert_array_equal(fabric_path(np.array([a, b])), [a, b])
    np.testing.assert_array_equal(fabric_path(np.array([b])), [b])
    np.testing.assert_array_equal(fabric_path(np.array([b, b, b])), [b])  # a dot


# --------------------------------------------------------------------------- the canvas


def test_canvas_is_rgba_white_ink_on_transparent():
    image = render_canvas(SHAPES["zero"], np.random.default_rng(0))
    assert image.shape == (CANVAS_SIZE, CANVAS_SIZE, 4) and image.dtype == np.uint8
    alpha, rgb = image[..., 3], image[..., :3]
    assert (rgb[alpha == 0] == 0).all()  # background: fully transparent
    assert (rgb[alpha > 0] == 255).all()  # ink: white, edges anti-aliased in alpha only
    assert (alpha == 255).any() and ((alpha > 0) & (alpha < 255)).any()
    assert 0.01 < (alpha > 0).mean() < 0.5


def test_a_wider_pen_leaves_more_ink():
    placed, _ = place_strokes(SHAPES["seven"], np.random.default_rng(0),
                              StrokeStyle(stroke_width=8.0, size=0.6))
    ink = [int(draw_canvas(placed, pen)[..., 3].sum()) for pen in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)]
    assert ink == sorted(ink) and len(set(ink)) == len(ink), ink


@pytest.mark.parametrize("pen", [8.0, 20.0, 39.0])
def test_a_single_point_is_a_disc_of_the_pen_diameter(pen):
    image = draw_canvas([np.array([[140.3, 139.7]])], pen)
    alpha = image[..., 3].astype(np.float64) / 255
    height, width = _ink_box(alpha, threshold=0.5)
    assert abs(height - pen) <= 1 and abs(width - pen) <= 1, (height, width)
    row = int(np.argmax(alpha.sum(axis=1)))
    assert alpha[row].sum() == pytest.approx(pen, abs=1.0)  # coverage across the middle
    assert alpha.sum() == pytest.approx(math.pi * pen**2 / 4, rel=0.03)  # round, not square


def test_line_ends_are_round_caps():
    pen = 20.0
    alpha = draw_canvas([np.array([[100.0, 140.0], [180.0, 140.0]])], pen)[..., 3]
    height, width = _ink_box(alpha, threshold=127)
    assert abs(width - (80 + pen)) <= 1 and abs(height - pen) <= 1  # caps reach pen/2 beyond
    # a square cap would ink the corner of the box; a round one leaves it empty
    assert alpha[140 - 9, 180 + 9] == 0 and alpha[140, 180 + 9] > 0


@pytest.mark.parametrize(("size", "width"), [(0.85, 40.0), (1.0, 40.0), (1.0, 139.0), (0.05, 8.0)])
@pytest.mark.parametrize("shape", ["zero", "one", "dash", "four"])
def test_drawing_stays_on_the_canvas_for_extreme_sizes_and_pens(size, width, shape):
    """Nothing is cut off: drawn on a larger canvas (shifted by 10 px), all of the ink
    still lies inside the 280 px square, and the canvas holds all of it."""
    style = StrokeStyle(size=size, stroke_width=width)
    for seed in range(4):
        placed, pen = place_strokes(SHAPES[shape], np.random.default_rng(seed), style)
        alpha = draw_canvas(placed, pen)[..., 3].astype(np.int64)
        larger = draw_canvas([p + 10 for p in placed], pen, CANVAS_SIZE + 20)[..., 3]
        inside = larger[10:-10, 10:-10].astype(np.int64)
        assert larger.sum() == inside.sum(), f"ink beyond the canvas edge (seed {seed})"
        assert alpha.sum() == inside.sum() and alpha.max() == 255


# --------------------------------------------------------------------------- placement


@pytest.mark.parametrize(("size", "width", "expected"), [
    (0.5, 8.0, 140.0),
    (0.35, 40.0, 98.0),
    (0.85, 40.0, 238.0),
    (1.0, 40.0, 238.0),  # capped by the room the pen leaves: 280 - 40 - 2
])
def test_placed_drawing_has_the_asked_size(size, width, expected):
    augmented = StrokeStyle(size=size, stroke_width=width, rotate_deg=10, slant_deg=15,
                            stretch=(0.85, 1.15), jitter=0.01)
    for style in (StrokeStyle(size=size, stroke_width=width), augmented):
        for shape in ("zero", "seven", "four", "dash"):
            placed, pen = place_strokes(SHAPES[shape], np.random.default_rng(1), style)
            points = np.concatenate(placed)
            longer = float((points.max(axis=0) - points.min(axis=0)).max())
            assert pen == width
            assert longer == pytest.approx(expected, abs=1e-6), (shape, style)
            assert points.min() >= pen / 2 + 1 - 1e-9
            assert points.max() <= CANVAS_SIZE - pen / 2 - 1 + 1e-9


def test_placement_draws_size_and_pen_from_the_ranges():
    style = StrokeStyle(size=(0.35, 0.85), stroke_width=(8.0, 40.0))
    rng = np.random.default_rng(0)
    pens, sides = [], []
    for _ in range(40):
        placed, pen = place_strokes(SHAPES["zero"], rng, style)
        points = np.concatenate(placed)
        pens.append(pen)
        sides.append(float((points.max(axis=0) - points.min(axis=0)).max()) / CANVAS_SIZE)
    assert 8.0 <= min(pens) < 12 and 36 < max(pens) <= 40.0
    assert 0.35 - 1e-9 <= min(sides) < 0.45 and 0.75 < max(sides) <= 0.85 + 1e-9


def test_placement_is_reproducible_from_the_seed():
    style = StrokeStyle(rotate_deg=10, slant_deg=15, stretch=(0.85, 1.15), jitter=0.01)
    first, pen1 = place_strokes(SHAPES["four"], np.random.default_rng(7), style)
    again, pen2 = place_strokes(SHAPES["four"], np.random.default_rng(7), style)
    other, pen3 = place_strokes(SHAPES["four"], np.random.default_rng(8), style)
    assert pen1 == pen2 and len(first) == len(again) == 2
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert pen1 != pen3 or not np.allclose(first[0], other[0])
    np.testing.assert_array_equal(render_canvas(SHAPES["four"], np.random.default_rng(7), style),
                                  render_canvas(SHAPES["four"], np.random.default_rng(7), style))
    assert not np.array_equal(render_canvas(SHAPES["four"], np.random.default_rng(7), style),
                              render_canvas(SHAPES["four"], np.random.default_rng(8), style))


def test_bad_strokes_are_refused():
    with pytest.raises(ValueError, match="no strokes"):
        place_strokes([np.zeros((0, 2))], np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite"):
        place_strokes([np.array([[0.0, 0.0], [np.nan, 1.0]])], np.random.default_rng(0))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"stroke_width": 0.0}, "stroke_width"),
    ({"stroke_width": (10.0, 5.0)}, "stroke_width"),
    ({"stroke_width": 140.0}, "stroke_width"),
    ({"size": 0.0}, "size"),
    ({"size": 1.2}, "size"),
    ({"size": (0.8, 0.4)}, "size"),
    ({"stretch": 0.0}, "stretch"),
    ({"stretch": (1.2, 0.8)}, "stretch"),
    ({"rotate_deg": 90.0}, "rotate_deg"),
    ({"slant_deg": -1.0}, "slant_deg"),
    ({"jitter": 0.3}, "jitter"),
    ({"canvas_size": 20}, "canvas_size must be"),  # not blamed on the default pen widths
    ({"size": (0.3, 0.5, 0.7)}, "size"),  # a range is (low, high)
    ({"stroke_width": float("nan")}, "stroke_width"),
    ({"stretch": float("nan")}, "stretch"),
])
def test_style_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        StrokeStyle(**kwargs)


# --------------------------------------------------------------------------- model inputs


@pytest.mark.parametrize("shape", ["zero", "one", "seven", "four"])
def test_training_raster_matches_the_app_path(shape):
    for seed in range(8):
        fast = render_input(SHAPES[shape], np.random.default_rng(seed))
        exact = render_app_input(SHAPES[shape], np.random.default_rng(seed))
        for image in (fast, exact):
            assert image.shape == (28, 28) and image.dtype == np.float32
            assert image.min() >= 0.0 and image.max() == pytest.approx(1.0)
            assert max(_ink_box(image)) == 20  # MNIST: the longer side scaled to 20 px
        assert np.abs(fast - exact).mean() < RASTER_VS_CANVAS_MAX_MEAN_ABS, seed
        shift = np.subtract(ndimage.center_of_mass(fast), ndimage.center_of_mass(exact))
        assert np.abs(shift).max() <= 1.0 + 1e-3, (seed, shift)  # rounding: at most 1 px


@pytest.mark.parametrize("exact", [True, False])
def test_render_many_is_reproducible_uint8(exact):
    drawings = [SHAPES[name] for name in ("zero", "one", "seven", "four")]
    images = render_many(drawings, 5, exact=exact)
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8
    assert (images.reshape(4, -1).max(axis=1) == 255).all()
    np.testing.assert_array_equal(images, render_many(drawings, 5, exact=exact))
    np.testing.assert_array_equal(images, render_many(drawings, np.random.default_rng(5), exact=exact))
    assert not np.array_equal(images, render_many(drawings, 6, exact=exact))
    # one drawing after another from one generator: the i-th image is the i-th draw
    rng = np.random.default_rng(5)
    render = render_app_input if exact else render_input
    expected = [np.round(render(d, rng) * 255).astype(np.uint8) for d in drawings]
    np.testing.assert_array_equal(images, np.stack(expected))
