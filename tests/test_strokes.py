"""Canvas-stroke synthesis: a redrawn digit must look like a canvas drawing
(uniform pen width, RGBA like the app receives) and still like the digit."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from benchmarks.strokes import redraw_as_strokes, skeletonize
from handwriting.preprocessing import prepare_canvas, prepare_image

MNIST_TEST = Path("/work/shared/data/mnist/t10k-images-idx3-ubyte.gz")


def digit(shape: str = "seven", width: int = 3) -> np.ndarray:
    """A synthetic 28x28 uint8 digit (white on black) with the given pen width."""
    image = Image.new("L", (28, 28), 0)
    pen = ImageDraw.Draw(image)
    if shape == "seven":
        pen.line([(7, 6), (21, 6), (12, 23)], fill=255, width=width, joint="curve")
    elif shape == "one":
        pen.line([(14, 4), (12, 24)], fill=255, width=width)
    elif shape == "zero":
        pen.ellipse([7, 4, 21, 24], outline=255, width=width)
    return np.asarray(image)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def blurred(a: np.ndarray) -> np.ndarray:
    """Compare shapes, not pen widths: a canvas pen is not MNIST's pen."""
    return ndimage.gaussian_filter(a, 1.0)


# --------------------------------------------------------------------- skeleton


def test_skeleton_of_a_thick_bar_is_a_thin_centred_line() -> None:
    bar = np.zeros((30, 60), bool)
    bar[10:19, 5:55] = True
    skel = skeletonize(bar)
    assert skel.any() and not (skel & ~bar).any()
    assert skel[:, 15:45].sum(axis=0).max() == 1  # one pixel wide along the middle
    rows = np.nonzero(skel[:, 15:45])[0]
    assert set(rows) <= {13, 14, 15}  # centred in rows 10..18
    assert ndimage.label(skel, np.ones((3, 3)))[1] == 1


def test_skeleton_keeps_topology_and_dots() -> None:
    ring = np.zeros((40, 40), bool)
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    ring[(radius > 9) & (radius < 15)] = True
    ring[2:4, 2:4] = True  # a 2x2 dot that plain Zhang-Suen would erase
    skel = skeletonize(ring)
    labels, count = ndimage.label(skel, np.ones((3, 3)))
    assert count == 2
    assert skel[2:4, 2:4].sum() == 1
    holes = ndimage.label(~skel)[1]
    assert holes == 2, "the ring's hole survives thinning"
    assert skel.sum() < 0.25 * ring.sum()


def test_skeletonize_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        skeletonize(np.zeros((2, 3, 4), bool))


# --------------------------------------------------------------------- canvas output


@pytest.mark.parametrize("background", ["transparent", "black", "white"])
def test_output_is_a_canvas_rgba_image(background: str) -> None:
    ink = (0, 0, 0) if background == "white" else (255, 255, 255)
    out = redraw_as_strokes(
        digit(), np.random.default_rng(0), canvas_size=(200, 300), background=background, ink=ink
    )
    assert out.shape == (200, 300, 4) and out.dtype == np.uint8
    alpha = out[..., 3]
    if background == "transparent":
        untouched = alpha == 0
        assert 0.5 < untouched.mean() < 0.99
        assert not out[untouched].any(), "untouched pixels are (0, 0, 0, 0)"
        assert (out[alpha == 255][:, :3] == ink).all()
        assert ((alpha > 0) & (alpha < 255)).any(), "edges are anti-aliased"
    else:
        assert (alpha == 255).all()
        corner = tuple(out[0, 0, :3])
        assert corner == ((255,) * 3 if background == "white" else (0,) * 3)


def test_size_and_position_follow_the_random_draws() -> None:
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(20):
        alpha = redraw_as_strokes(digit("one"), rng, scale_range=(0.3, 0.9))[..., 3] > 0
        rows, cols = np.nonzero(alpha)
        boxes.append((rows.min(), rows.max(), cols.min(), cols.max()))
    boxes = np.array(boxes)
    heights = boxes[:, 1] - boxes[:, 0]
    assert heights.min() < 0.5 * 280 < heights.max()  # the digit size varies
    assert boxes[:, 0].min() >= 0 and boxes[:, 1].max() < 280  # never cut off
    assert np.ptp(boxes[:, 2]) > 50  # the position varies


@pytest.mark.parametrize("shape", ["seven", "one", "zero"])
def test_stroke_width_is_uniform_whatever_the_original_pen(shape: str) -> None:
    """The distance to the background peaks at half the pen width everywhere
    along the stroke (only the inside of sharp corners fills a little more)."""
    pen = 18
    widths = []
    for source_width in (1, 2, 4):
        rgba = redraw_as_strokes(
            digit(shape, source_width), np.random.default_rng(1), stroke_width=pen
        )
        ink = rgba[..., 3] > 127
        depth = ndimage.distance_transform_edt(ink)[ink]
        half_width = np.percentile(depth, 99)
        widths.append(half_width)
        assert pen / 2 - 1 <= half_width <= pen / 2 + 1.5, (source_width, half_width)
        assert (depth > pen / 2 + 2).mean() < 0.01
    assert max(widths) - min(widths) <= 1.0


def test_stroke_width_range_is_sampled() -> None:
    rng = np.random.default_rng(0)
    widths = {
        round(
            ndimage.distance_transform_edt(
                redraw_as_strokes(digit("one"), rng, stroke_width=(8, 30))[..., 3] > 127
            ).max()
        )
        for _ in range(6)
    }
    assert len(widths) >= 3


def test_same_seed_same_drawing() -> None:
    first = redraw_as_strokes(digit(), np.random.default_rng(42))
    again = redraw_as_strokes(digit(), np.random.default_rng(42))
    other = redraw_as_strokes(digit(), np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("background, ink", [("transparent", (255,) * 3), ("white", (0,) * 3)])
@pytest.mark.parametrize("shape", ["seven", "one", "zero"])
def test_redrawn_digit_through_the_app_path_looks_like_the_original(
    shape: str, background: str, ink: tuple[int, int, int]
) -> None:
    original = prepare_image(digit(shape))
    drawn = prepare_canvas(
        redraw_as_strokes(digit(shape), np.random.default_rng(3), background=background, ink=ink)
    )
    assert drawn.shape == (28, 28)
    assert similarity(blurred(drawn), blurred(original)) > 0.85
    others = [s for s in ("seven", "one", "zero") if s != shape]
    for other in others:
        assert similarity(blurred(drawn), blurred(prepare_image(digit(other)))) < 0.85


def test_empty_digit_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        redraw_as_strokes(np.zeros((28, 28), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="background"):
        redraw_as_strokes(digit(), np.random.default_rng(0), background="blue")


@pytest.mark.skipif(not MNIST_TEST.exists(), reason=f"{MNIST_TEST} not available")
def test_real_mnist_digits_survive_the_round_trip() -> None:
    with gzip.open(MNIST_TEST) as handle:
        data = handle.read(16 + 30 * 784)
    digits = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    originals = np.stack([blurred(prepare_image(d)) for d in digits])
    rng = np.random.default_rng(0)
    drawn = np.stack([blurred(prepare_canvas(redraw_as_strokes(d, rng))) for d in digits])
    scores = np.array([[similarity(a, b) for b in originals] for a in drawn])
    own = np.diag(scores)
    assert own.mean() > 0.85 and own.min() > 0.6
    # Each redrawing is recognisably its own digit: it matches its original best.
    assert (scores.argmax(axis=1) == np.arange(len(digits))).mean() >= 0.8
