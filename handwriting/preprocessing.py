"""Turn any image (file, upload, drawing-canvas RGBA, array) into the model's
28x28 input -- the ONE implementation shared by training, evaluation and the
app, so a digit drawn in the browser is normalised exactly the way MNIST was.

Pipeline (``prepare_image``): load -> grey in [0, 1] (alpha composited so
transparent pixels are background) -> white ink on black (background found
from the border) -> background subtracted and contrast stretched -> emptiness
check -> MNIST-style normalisation (crop to ink, longer side to 20 px keeping
the aspect ratio, centre of mass at the centre of a 28x28 field).

Loading and grey conversion (``load_image``, ``to_gray``, ``ImageError``) live in
``grey_image.py``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from handwriting.grey_image import (
    ImageError,
    ImageSource,
    load_image,
    to_gray,
)

SIZE = 28
BOX = 20
# MNIST digits have their centre of mass at pixel index (14, 14) of the 28x28 field
# (mean over the test set is 13.99, 14.00), so that is where ours go too.
_MNIST_COM = 14.0
# Below this contrast between ink and background an image is treated as blank:
# JPEG noise, paper texture and stray anti-aliasing stay under it.
DEFAULT_CONTRAST = 0.15
# Minimum fraction of pixels that must be ink (after background removal).
DEFAULT_MIN_INK = 5e-4
_MIN_INK_PIXELS = 4


class EmptyImageError(ValueError):
    """The image is readable but holds no (or too little) ink to classify."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or "The image is empty: there is (almost) no ink on it. Draw a digit first."
        )


# --------------------------------------------------------------------------- ink


def _border(gray: np.ndarray) -> np.ndarray:
    """Pixels of a thin frame around the image (about 3% of the side, at least 1 px)."""
    h, w = gray.shape
    t = max(1, min(h, w) // 32)
    if 2 * t >= h or 2 * t >= w:
        return gray.ravel()
    return np.concatenate(
        [gray[:t].ravel(), gray[-t:].ravel(), gray[t:-t, :t].ravel(), gray[t:-t, -t:].ravel()]
    )


def background_level(gray: np.ndarray) -> float:
    """Background intensity, estimated as the median of the border pixels."""
    return float(np.median(_border(gray))) if gray.size else 0.0


def to_white_on_black(gray: np.ndarray) -> np.ndarray:
    """Normalise polarity to MNIST's white ink on black.

    The background is the border median; it is "light" when it lies above the
    midpoint of the image's intensity range (so grey paper with dark ink is
    inverted, grey background with white ink is not); for a flat image it is
    light when above 0.5.
    """
    gray = np.asarray(gray, dtype=np.float32)
    if gray.size == 0:
        return gray
    bg = background_level(gray)
    lo, hi = float(gray.min()), float(gray.max())
    midpoint = (lo + hi) / 2.0 if hi - lo > 1e-6 else 0.5
    return (1.0 - gray) if bg > midpoint else gray


def _ink_only(gray_wob: np.ndarray) -> tuple[np.ndarray, float]:
    """Subtract the background, return (ink in [0, 1] stretched to full contrast, contrast)."""
    ink = np.clip(gray_wob - background_level(gray_wob), 0.0, 1.0)
    contrast = float(ink.max()) if ink.size else 0.0
    if contrast > 0.0:
        ink = ink / contrast
    return ink.astype(np.float32), contrast


def has_ink(
    gray: np.ndarray, threshold: float = DEFAULT_CONTRAST, min_ink: float = DEFAULT_MIN_INK
) -> bool:
    """Whether a grey image (either polarity) carries enough ink to classify.

    Ink must differ from the background by at least ``threshold`` and cover at
    least ``min_ink`` of the image (and a few pixels); this rejects blank
    canvases, blank paper and noise.
    """
    ink, contrast = _ink_only(to_white_on_black(gray))
    return _enough_ink(ink, contrast, threshold, min_ink)


def _enough_ink(ink: np.ndarray, contrast: float, threshold: float, min_ink: float) -> bool:
    if contrast < threshold:
        return False
    count = int(np.count_nonzero(ink > 0.5))
    return count >= max(_MIN_INK_PIXELS, min_ink * ink.size)


# --------------------------------------------------------------------------- MNIST-style centring


def _ink_bbox(ink: np.ndarray, noise: float) -> tuple[int, int, int, int] | None:
    """Bounding box (top, bottom, left, right; exclusive ends) of the ink, ignoring
    faint pixels and specks much smaller than the drawing so one dust grain
    cannot stretch the box."""
    mask = ink > noise
    if not mask.any():
        return None
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        keep = sizes >= max(1.0, 0.01 * sizes.sum())
        if keep.any():  # all specks (salt-and-pepper noise): keep them all rather than none
            mask = keep[labels - 1] & mask
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def center_like_mnist(
    gray_white_on_black: np.ndarray, box: int = BOX, size: int = SIZE
) -> np.ndarray:
    """Normalise like MNIST: crop to the ink, scale the longer side to ``box``
    (aspect ratio kept, anti-aliased), then place in a ``size`` x ``size`` field
    with the centre of mass at the centre -- shifted back inside if that would
    cut the digit off. Returns float32 in [0, 1]; all zeros when there is no ink."""
    ink = np.clip(np.asarray(gray_white_on_black, dtype=np.float32), 0.0, 1.0)
    out = np.zeros((size, size), dtype=np.float32)
    peak = float(ink.max()) if ink.size else 0.0
    bbox = _ink_bbox(ink, noise=0.1 * peak) if peak > 0 else None
    if bbox is None:
        return out
    top, bottom, left, right = bbox
    crop = ink[top:bottom, left:right]
    h, w = crop.shape
    factor = box / max(h, w)
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
    # BOX (area averaging) when shrinking: anti-aliased without ringing; bilinear when enlarging.
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(crop)).resize((new_w, new_h), resample=resample)
    )
    small = np.clip(small, 0.0, None)
    top_peak = float(small.max())
    if top_peak <= 0:
        return out
    # Thin strokes fade when shrunk a lot; MNIST strokes are at full intensity.
    small = np.clip(small / top_peak, 0.0, 1.0).astype(np.float32)

    com_y, com_x = ndimage.center_of_mass(small)
    centre = _MNIST_COM * size / SIZE
    y0 = int(np.clip(round(centre - com_y), 0, size - new_h))
    x0 = int(np.clip(round(centre - com_x), 0, size - new_w))
    out[y0 : y0 + new_h, x0 : x0 + new_w] = small
    return out


# --------------------------------------------------------------------------- full paths


def prepare_image(
    image: Image.Image | np.ndarray | ImageSource,
    *,
    center: bool = True,
    min_ink: float = DEFAULT_MIN_INK,
    contrast: float = DEFAULT_CONTRAST,
) -> np.ndarray:
    """Any image (path, bytes, file object, PIL image or array; either polarity)
    -> the model's float32 (28, 28) input, white on black in [0, 1].

    ``center=False`` only resizes the whole frame to 28x28 (for images that are
    already MNIST-like). Raises ``ImageError`` for unreadable input and
    ``EmptyImageError`` when there is (almost) no ink.
    """
    if not isinstance(image, Image.Image | np.ndarray):
        image = load_image(image)
    gray = to_gray(image)
    if gray.size == 0:
        raise EmptyImageError("The image has no pixels. Draw or upload a digit.")
    ink, level = _ink_only(to_white_on_black(gray))
    if not _enough_ink(ink, level, contrast, min_ink):
        raise EmptyImageError()
    if center:
        return center_like_mnist(ink)
    resized = Image.fromarray(ink).resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def prepare_canvas(rgba: np.ndarray) -> np.ndarray:
    """The app's path: streamlit-drawable-canvas ``image_data`` (H, W, 4) uint8
    -> (28, 28) float32 model input.

    Works for light strokes on a dark or transparent background and for dark
    strokes on a light or transparent background: transparency is composited
    as background, then polarity follows the border. Raises ``EmptyImageError``
    for an empty canvas.
    """
    return prepare_image(canvas_array(rgba))


def canvas_array(
    rgba: np.ndarray | None, empty_message: str = "The canvas returned no image yet. Draw a digit first."
) -> np.ndarray:
    """The canvas's ``image_data`` as an (H, W, 3|4) array; ``EmptyImageError`` (with
    ``empty_message``) before the canvas has sent anything, ``ImageError`` for another shape."""
    if rgba is None:
        raise EmptyImageError(empty_message)
    array = np.asarray(rgba)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"Canvas data must be an (H, W, 4) RGBA array, got shape {array.shape}.")
    return array
