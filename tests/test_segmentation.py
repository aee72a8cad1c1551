"""Splitting a drawing of several characters into single characters, left to right.

Shapes are drawn with PIL at canvas-like size (40 px tall, 4 px strokes) so each
case (touching, broken, specks) is exact; real MNIST digits from the packaged
sample check that separated handwriting comes out whole and in order.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from handwriting.data.embedded import EmbeddedMNIST
from handwriting.preprocessing import center_like_mnist
from handwriting.segmentation import Segment, segment_characters

H = 40  # glyph height of the drawn shapes
STROKE = 4


def canvas(width: int, height: int = 80) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (width, height), 0)
    return img, ImageDraw.Draw(img)


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, np.float32) / 255.0


def draw_zero(draw: ImageDraw.ImageDraw, x: int, y: int = 20, w: int = 30) -> None:
    draw.ellipse((x, y, x + w - 1, y + H - 1), outline=255, width=STROKE)


def draw_seven(draw: ImageDraw.ImageDraw, x: int, y: int = 20, w: int = 24) -> None:
    draw.line((x, y + 2, x + w, y + 2), fill=255, width=STROKE)
    draw.line((x + w, y + 2, x + 6, y + H - 1), fill=255, width=STROKE)


def draw_one(draw: ImageDraw.ImageDraw, x: int, y: int = 20) -> None:
    draw.line((x, y, x, y + H - 1), fill=255, width=STROKE)


def boxes(segments: list[Segment]) -> list[tuple[int, int, int, int]]:
    return [s.bbox for s in segments]


def pieces(image: np.ndarray) -> int:
    return ndimage.label(image > 0.35, structure=np.ones((3, 3)))[1]


def ink(image: np.ndarray) -> float:
    return float(np.asarray(image, np.float64).sum())


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    train = EmbeddedMNIST().load().train
    return train.images, train.labels


def first_of(mnist: tuple[np.ndarray, np.ndarray], digit: int, skip: int = 0) -> np.ndarray:
    images, labels = mnist
    return images[np.flatnonzero(labels == digit)[skip]].astype(np.float32) / 255.0


def compose(digits: list[np.ndarray], gap: int, dys: list[int]) -> tuple[np.ndarray, list[int]]:
    """Digits cropped to their ink columns, placed left to right ``gap`` px apart,
    each shifted down by its ``dy``; returns the image and each digit's left edge."""
    crops = []
    for d in digits:
        cols = np.flatnonzero(d.max(axis=0) > 0.05)
        crops.append(d[:, cols[0] : cols[-1] + 1])
    out = np.zeros((28 + 2 * max(map(abs, dys)) + 10, sum(c.shape[1] + gap for c in crops) + 20))
    x, lefts = 10, []
    top = 5 + max(map(abs, dys))
    for crop, dy in zip(crops, dys, strict=True):
        region = out[top + dy : top + dy + 28, x : x + crop.shape[1]]
        np.maximum(region, crop, out=region)
        lefts.append(x)
        x += crop.shape[1] + gap
    return out.astype(np.float32), lefts


# ---------------------------------------------------------------- no ink


def test_empty_and_faint_images_give_no_segments() -> None:
    assert segment_characters(np.zeros((100, 300), np.float32)) == []
    faint = np.random.default_rng(0).uniform(0, 0.05, (100, 300)).astype(np.float32)
    assert segment_characters(faint) == []
    assert segment_characters(np.zeros((0, 0), np.float32)) == []


def test_rejects_colour_input_with_a_pointer_to_to_gray() -> None:
    with pytest.raises(ValueError, match="to_gray"):
        segment_characters(np.zeros((10, 10, 4), np.uint8))


# ---------------------------------------------------------------- separated digits


@pytest.mark.parametrize("dys", [[0, 0, 0, 0], [-8, 6, -3, 8]], ids=["level", "jittered"])
def test_separated_mnist_digits_come_out_whole_and_in_order(
    mnist: tuple[np.ndarray, np.ndarray], dys: list[int]
) -> None:
    digits = [
        first_of(mnist, 2),
        first_of(mnist, 0),
        first_of(mnist, 2, skip=1),
        first_of(mnist, 6),
    ]
    image, lefts = compose(digits, gap=6, dys=dys)
    segments = segment_characters(image)
    assert len(segments) == 4
    x0s = [s.bbox[0] for s in segments]
    assert x0s == sorted(x0s)
    for segment, left, digit in zip(segments, lefts, digits, strict=True):
        assert abs(segment.bbox[0] - left) <= 1
        # The whole digit and nothing else: same ink, same look once centred.
        assert ink(segment.image) == pytest.approx(ink(digit), rel=0.02)
        a, b = center_like_mnist(segment.image), center_like_mnist(digit)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95


def test_segment_crop_matches_its_bbox_and_is_white_on_black() -> None:
    img, draw = canvas(200)
    draw_zero(draw, 20)
    draw_seven(draw, 80)
    segments = segment_characters(as_array(img))
    assert len(segments) == 2
    for s in segments:
        x0, y0, x1, y1 = s.bbox
        assert s.image.shape == (y1 - y0, x1 - x0)
        assert s.image.dtype == np.float32
        assert s.image.max() == pytest.approx(1.0) and s.image.min() == 0.0
        # tight box: ink on every edge
        assert s.image[0].max() > 0 and s.image[-1].max() > 0
        assert s.image[:, 0].max() > 0 and s.image[:, -1].max() > 0
    assert segments[0].bbox[2] <= segments[1].bbox[0]


def test_uint8_input_is_accepted() -> None:
    img, draw = canvas(200)
    draw_zero(draw, 20)
    draw_one(draw, 90)
    as_float = segment_characters(as_array(img))
    as_uint8 = segment_characters(np.asarray(img))
    assert boxes(as_uint8) == boxes(as_float) and len(as_float) == 2


def test_neighbour_reaching_into_the_box_is_blanked_out() -> None:
    # A slanted "1" whose top reaches into the next digit's box without touching it.
    one, draw_1 = canvas(200)
    draw_1.line((56, 20, 36, 59), fill=255, width=STROKE)
    zero, draw_0 = canvas(200)
    draw_zero(draw_0, 56, w=26)
    both = np.maximum(as_array(one), as_array(zero))
    assert pieces(both) == 2
    segments = segment_characters(both)
    assert len(segments) == 2
    assert segments[0].bbox[2] > segments[1].bbox[0]  # the boxes do overlap
    assert ink(segments[0].image) == pytest.approx(ink(as_array(one)), rel=1e-6)
    assert ink(segments[1].image) == pytest.approx(ink(as_array(zero)), rel=1e-6)


# ---------------------------------------------------------------- specks


def test_specks_are_ignored() -> None:
    img, draw = canvas(220)
    draw_zero(draw, 20)
    draw_seven(draw, 90)
    clean = segment_characters(as_array(img))
    for x, y in [(5, 5), (70, 40), (150, 70), (200, 30), (60, 75)]:
        draw.rectangle((x, y, x + 1, y + 1), fill=255)  # 2x2 dust
    noisy = segment_characters(as_array(img))
    assert boxes(noisy) == boxes(clean)
    assert len(noisy) == 2


# ---------------------------------------------------------------- merging


def broken_zero() -> np.ndarray:
    img, draw = canvas(120)
    draw_zero(draw, 30)
    arr = as_array(img)
    arr[38:42, :] = 0  # cut through both sides: two separate arcs
    assert pieces(arr) == 2
    return arr


def test_broken_stroke_is_merged_into_one_character() -> None:
    segments = segment_characters(broken_zero())
    assert len(segments) == 1
    assert segments[0].bbox == (30, 20, 60, 60)


def test_pen_lifted_four_and_cut_seven_are_one_character_each() -> None:
    img, draw = canvas(200)
    # "4" in strokes that do not touch: an open "L", and the bar above and below it.
    draw.line((36, 20, 22, 46), fill=255, width=STROKE)
    draw.line((22, 46, 52, 46), fill=255, width=STROKE)
    draw.line((44, 20, 44, 40), fill=255, width=STROKE)
    draw.line((44, 52, 44, 59), fill=255, width=STROKE)
    draw_seven(draw, 110)
    arr = as_array(img)
    arr[40:44, 110:140] = 0  # a gap through the 7's diagonal
    assert pieces(arr) == 5
    segments = segment_characters(arr)
    assert len(segments) == 2
    assert segments[0].bbox[0] <= 21 and segments[0].bbox[2] >= 52
    assert segments[0].bbox[1] <= 20 and segments[0].bbox[3] >= 59
    assert segments[1].bbox[0] >= 105 and segments[1].bbox[3] >= 58


def test_merge_can_be_made_stricter() -> None:
    # The halves overlap fully in x but are 4 px apart vertically: forbid any gap.
    assert len(segment_characters(broken_zero(), merge_gap=-0.5, split_wide=False)) == 2


# ---------------------------------------------------------------- splitting


@pytest.mark.parametrize("count", [2, 3])
def test_touching_characters_are_split(count: int) -> None:
    img, draw = canvas(200)
    lefts = [20 + i * 27 for i in range(count)]  # 30 px wide: neighbours overlap by 3 px
    for x in lefts:
        draw_zero(draw, x)
    arr = as_array(img)
    assert pieces(arr) == 1  # really touching
    segments = segment_characters(arr)
    assert len(segments) == count
    for segment, left in zip(segments, lefts, strict=True):
        assert abs(segment.bbox[0] - left) <= 3
        assert abs(segment.bbox[2] - (left + 30)) <= 3
        assert segment.bbox[3] - segment.bbox[1] == H
    # every pixel goes to exactly one character
    assert sum(ink(s.image) for s in segments) == pytest.approx(ink(arr), rel=1e-6)


def test_touching_pair_among_separate_digits() -> None:
    img, draw = canvas(260)
    draw_one(draw, 20)
    draw_zero(draw, 50)
    draw_zero(draw, 77)  # touches the previous zero
    draw_seven(draw, 130)
    arr = as_array(img)
    assert pieces(arr) == 3
    segments = segment_characters(arr)
    assert [s.bbox[0] for s in segments] == pytest.approx([18, 50, 77, 130], abs=3)


def test_split_can_be_turned_off() -> None:
    img, draw = canvas(200)
    draw_zero(draw, 20)
    draw_zero(draw, 47)
    arr = as_array(img)
    assert len(segment_characters(arr)) == 2
    assert len(segment_characters(arr, split_wide=False)) == 1


def test_wide_character_with_a_thin_extension_is_not_cut() -> None:
    # A "7" with a bar 1.5x as long as the digit is tall: wide, but cutting it
    # would leave a short fragment (the bar's end), so it stays one character.
    img, draw = canvas(200)
    draw.line((20, 22, 80, 22), fill=255, width=STROKE)
    draw.line((30, 22, 24, 59), fill=255, width=STROKE)
    segments = segment_characters(as_array(img))
    assert len(segments) == 1
    assert segments[0].bbox[2] - segments[0].bbox[0] > 1.4 * H


def test_large_canvas_is_fast_enough() -> None:
    img, draw = canvas(1400, 400)
    for i in range(12):
        draw.ellipse((40 + i * 110, 100, 120 + i * 110, 300), outline=255, width=18)
    segments = segment_characters(as_array(img))
    assert len(segments) == 12
