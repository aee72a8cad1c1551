"""The shared image -> model-input path: MNIST-style normalisation must not
depend on where, how big, how thick or in which polarity/format a digit is."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from handwriting.grey_image import ImageError, load_image, to_gray
from handwriting.preprocessing import (
    EmptyImageError,
    center_like_mnist,
    has_ink,
    prepare_canvas,
    prepare_image,
    to_white_on_black,
)

MNIST_TEST = Path("/work/shared/data/mnist/t10k-images-idx3-ubyte.gz")
# A "7" with a crossbar, as a polyline in a unit box: asymmetric, so a wrong flip/shift shows.
SEVEN = [(0.15, 0.1), (0.85, 0.1), (0.4, 0.95)]
BAR = [(0.35, 0.5), (0.7, 0.5)]


def draw(
    size: tuple[int, int] = (200, 200),
    box: tuple[float, float, float] = (50, 40, 100),
    width: float = 12,
    ink: int = 255,
    paper: int = 0,
) -> np.ndarray:
    """A uint8 drawing of SEVEN (+ a bar) of side box[2] at (x, y) = box[:2]."""
    image = Image.new("L", (size[1], size[0]), paper)
    pen = ImageDraw.Draw(image)
    x, y, side = box
    for line in (SEVEN, BAR):
        points = [(x + u * side, y + v * side) for u, v in line]
        pen.line(points, fill=ink, width=max(1, round(width)), joint="curve")
    return np.asarray(image)


def ink_bbox(image: np.ndarray, level: float = 0.1) -> tuple[int, int]:
    rows, cols = np.nonzero(image > level)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------- loading


def test_load_image_accepts_path_bytes_and_file_object(tmp_path: Path) -> None:
    data = png_bytes(draw())
    path = tmp_path / "digit.png"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data)):
        image = load_image(source)
        assert image.size == (200, 200)
        assert np.array_equal(np.asarray(image), draw())


@pytest.mark.parametrize(
    "data",
    [b"definitely not an image", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
    ids=["text", "empty", "png-magic-only"],
)
def test_corrupt_bytes_raise_image_error(data: bytes) -> None:
    with pytest.raises(ImageError, match="image"):
        load_image(data)
    with pytest.raises(ImageError):
        prepare_image(data)


def test_truncated_file_raises_image_error_naming_the_file(tmp_path: Path) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    data = png_bytes(noisy)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(path)


def test_missing_file_raises_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="pixels"):
        load_image(png_bytes(draw()), max_pixels=100 * 100)
    assert load_image(png_bytes(draw()), max_pixels=200 * 200).size == (200, 200)


# --------------------------------------------------------------------- grey conversion


def test_to_gray_agrees_across_pil_modes_and_arrays() -> None:
    base = draw(size=(40, 40), box=(8, 8, 24), width=3)
    expected = base.astype(np.float32) / 255
    rgb = np.repeat(base[..., None], 3, axis=2)
    rgba = np.dstack([rgb, np.full_like(base, 255)])
    candidates = {
        "L": Image.fromarray(base),
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray(rgba),
        "P": Image.fromarray(rgb).convert("P"),
        "LA": Image.fromarray(base).convert("LA"),
        "I;16": Image.fromarray(base.astype(np.uint16) * 257),
        "I": Image.fromarray(base.astype(np.int32)),
        "F": Image.fromarray(expected),
        "HxW uint8": base,
        "HxW float": expected,
        "HxWx3": rgb,
        "HxWx4": rgba,
        "HxWx4 float": rgba.astype(np.float32) / 255,
    }
    for name, image in candidates.items():
        gray = to_gray(image)
        assert gray.dtype == np.float32 and gray.shape == (40, 40), name
        np.testing.assert_allclose(gray, expected, atol=0.02, err_msg=name)


def test_to_gray_colour_uses_luminance() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert to_gray(red)[0, 0] == pytest.approx(0.299, abs=0.01)


def test_alpha_transparent_pixels_are_background_for_either_ink() -> None:
    reference = prepare_image(draw())
    mask = draw()  # 255 where ink
    for ink in (255, 0):
        rgba = np.zeros((*mask.shape, 4), np.uint8)  # canvas: untouched = (0, 0, 0, 0)
        rgba[..., :3] = np.where(mask[..., None] > 0, ink, 0)
        rgba[..., 3] = mask
        gray = to_gray(rgba)
        background = gray[mask == 0]
        ink_gray = gray[mask == 255]
        assert abs(float(background.mean()) - float(ink_gray.mean())) > 0.9, ink
        np.testing.assert_allclose(prepare_canvas(rgba), reference, atol=1e-5)


def test_to_white_on_black_inverts_only_light_backgrounds() -> None:
    dark = draw().astype(np.float32) / 255
    light = 1 - dark
    np.testing.assert_allclose(to_white_on_black(dark), dark)
    np.testing.assert_allclose(to_white_on_black(light), dark)
    # Grey paper with darker ink is a light background; grey with white ink is not.
    paper = np.where(dark > 0, 0.1, 0.45).astype(np.float32)
    assert to_white_on_black(paper)[0, 0] < to_white_on_black(paper)[dark > 0.5].mean()
    chalk = np.where(dark > 0, 1.0, 0.45).astype(np.float32)
    np.testing.assert_allclose(to_white_on_black(chalk), chalk)


# --------------------------------------------------------------------- MNIST normalisation


def assert_mnist_like(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert max(ink_bbox(out, level=0.0)) <= 20
    com = np.array(ndimage.center_of_mass(out))
    assert np.all(np.abs(com - 14.0) <= 1.0), com


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_position_invariance() -> None:
    outs = [
        prepare_image(draw(size=(300, 300), box=(x, y, 90)))
        for x, y in [(5, 5), (190, 30), (100, 200), (20, 150)]
    ]
    for out in outs:
        assert_mnist_like(out)
        np.testing.assert_allclose(out, outs[0], atol=1e-5)


def test_scale_invariance() -> None:
    reference = prepare_image(draw(size=(200, 200), box=(50, 40, 100), width=12))
    picture = Image.fromarray(draw(size=(200, 200), box=(50, 40, 100), width=12))
    for factor in (0.5, 3.0):
        scaled = picture.resize((round(200 * factor),) * 2, Image.Resampling.BILINEAR)
        out = prepare_image(scaled)
        assert_mnist_like(out)
        assert similarity(out, reference) > 0.95, factor
        assert np.abs(out - reference).mean() < 0.05, factor


@pytest.mark.parametrize("width", [2, 6, 25])
def test_thin_and_thick_strokes_are_centred_and_fit_the_box(width: int) -> None:
    out = prepare_image(draw(size=(250, 250), box=(40, 60, 150), width=width))
    assert_mnist_like(out)
    assert max(ink_bbox(out, level=0.0)) == 20
    assert out.max() == pytest.approx(1.0)  # thin strokes are not left faint


def test_thin_long_stroke_keeps_aspect_ratio() -> None:
    one = np.zeros((300, 300), np.uint8)
    one[40:260, 145:151] = 255  # a "1": 220 tall, 6 wide
    out = prepare_image(one)
    height, width = ink_bbox(out, level=0.0)
    assert height == 20 and width <= 2
    assert_mnist_like(out)


def test_polarity_does_not_matter() -> None:
    white_on_black = draw()
    black_on_white = draw(ink=0, paper=255)
    np.testing.assert_allclose(
        prepare_image(black_on_white), prepare_image(white_on_black), atol=1e-5
    )
    grey_paper = draw(ink=40, paper=200)
    assert similarity(prepare_image(grey_paper), prepare_image(white_on_black)) > 0.99


def test_canvas_backgrounds_and_ink_colours_agree() -> None:
    mask = draw(size=(280, 280), box=(60, 60, 150), width=18)
    reference = prepare_image(mask)
    a = mask[..., None].astype(np.float32) / 255
    variants = {
        "white on black": np.dstack([np.repeat(mask[..., None], 3, 2), np.full_like(mask, 255)]),
        "black on white": np.dstack(
            [np.repeat(255 - mask[..., None], 3, 2), np.full_like(mask, 255)]
        ),
        "blue on transparent": np.dstack(
            [np.where(a > 0, [30, 60, 200], 0).astype(np.uint8), mask]
        ),
    }
    for name, rgba in variants.items():
        out = prepare_canvas(rgba)
        assert similarity(out, reference) > 0.99, name


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((280, 280, 4), np.uint8),  # untouched transparent canvas
        np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)]),
        np.full((100, 100), 255, np.uint8),  # blank paper
        np.full((64, 64), 128, np.uint8),  # flat grey
        np.clip(np.random.default_rng(0).normal(0.8, 0.02, (120, 120)), 0, 1).astype(np.float32),
        np.ones((1, 1), np.uint8) * 255,
    ],
    ids=["transparent", "opaque-black", "white", "grey", "noise", "1x1"],
)
def test_empty_images_raise(image: np.ndarray) -> None:
    assert not has_ink(to_gray(image))
    with pytest.raises(EmptyImageError, match="[Dd]raw"):
        prepare_canvas(image) if image.ndim == 3 else prepare_image(image)


def test_near_empty_single_speck_raises_but_a_small_digit_does_not() -> None:
    speck = np.zeros((280, 280), np.uint8)
    speck[100, 100] = 255
    with pytest.raises(EmptyImageError):
        prepare_image(speck)
    small = draw(size=(280, 280), box=(120, 120, 30), width=4)
    assert has_ink(small.astype(np.float32) / 255)
    assert_mnist_like(prepare_image(small))


@pytest.mark.parametrize("shape", [(10, 5000), (5000, 10)])
def test_extreme_aspect_ratios(shape: tuple[int, int]) -> None:
    image = np.zeros(shape, np.uint8)
    if shape[0] < shape[1]:
        image[3:7, 100:4900] = 255
    else:
        image[100:4900, 3:7] = 255
    out = prepare_image(image)
    height, width = ink_bbox(out, level=0.0)
    long_side, short_side = (width, height) if shape[0] < shape[1] else (height, width)
    assert long_side == 20 and short_side == 1
    assert_mnist_like(out)


def test_center_like_mnist_of_nothing_is_blank() -> None:
    assert not center_like_mnist(np.zeros((50, 50), np.float32)).any()


def test_without_centering_the_frame_is_only_resized() -> None:
    image = draw(size=(280, 280), box=(10, 10, 100), width=14)
    out = prepare_image(image, center=False)
    assert out.shape == (28, 28)
    assert ndimage.center_of_mass(out)[0] < 10  # stays in the top-left corner


def test_prepare_image_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "seven.png"
    path.write_bytes(png_bytes(draw(ink=0, paper=255)))
    np.testing.assert_allclose(prepare_image(path), prepare_image(draw()), atol=1e-5)


@pytest.mark.skipif(not MNIST_TEST.exists(), reason=f"{MNIST_TEST} not available")
def test_real_mnist_digits_are_left_almost_unchanged() -> None:
    with gzip.open(MNIST_TEST) as handle:
        data = handle.read(16 + 200 * 784)
    digits = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    scores = [similarity(prepare_image(d), d.astype(np.float32) / 255) for d in digits]
    assert np.median(scores) > 0.99
    assert np.mean(scores) > 0.97
    assert min(scores) > 0.6


def test_exif_orientation_is_applied() -> None:
    """Phone photos store rotation in EXIF; the digit must come out upright."""
    upright = draw(size=(120, 200), box=(50, 10, 100))
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # as the camera sensor saved it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif)
    loaded = load_image(buffer.getvalue())
    assert loaded.size == (200, 120)
    np.testing.assert_array_equal(np.asarray(loaded), upright)


def test_dust_speck_far_away_does_not_shrink_the_digit() -> None:
    clean = draw(size=(300, 300), box=(40, 40, 120), width=12)
    dusty = clean.copy()
    dusty[290:292, 290:292] = 255  # a 2x2 speck in the far corner
    out = prepare_image(dusty)
    assert max(ink_bbox(out, level=0.05)) == 20
    assert similarity(out, prepare_image(clean)) > 0.95


def test_salt_and_pepper_noise_is_read_not_crashed_on() -> None:
    # Only specks, none 1% of the ink: the speck filter once kept nothing and indexing the
    # empty box raised IndexError inside the app's upload path.
    rng = np.random.default_rng(0)
    noise = ((rng.random((200, 200)) < 0.02) * 255).astype(np.uint8)
    out = prepare_image(noise)
    assert out.shape == (28, 28) and out.max() > 0
