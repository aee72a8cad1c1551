"""Turn any image (file, upload, drawing-canvas RGBA, array) into the model's
28x28 input -- the ONE implementation shared by training, evaluation and the
app, so a digit drawn in the browser is normalised exactly the way MNIST was.

Pipeline (``prepare_image``): load -> grey in [0, 1] (alpha composited so
transparent pixels are background) -> white ink on black (background found
from the border) -> background subtracted and contrast stretched -> emptiness
check -> MNIST-style normalisation (crop to ink, longer side to 20 px keeping
the aspect ratio, centre of mass at the centre of a 28x28 field).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

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
_ACCEPTED = "PNG, JPEG, BMP, GIF, TIFF or WebP image"

ImageSource = str | Path | bytes | bytearray | BinaryIO


class ImageError(ValueError):
    """The input could not be read as an image (corrupt, truncated, too large, not an image)."""


class EmptyImageError(ValueError):
    """The image is readable but holds no (or too little) ink to classify."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or "The image is empty: there is (almost) no ink on it. Draw a digit first."
        )


# --------------------------------------------------------------------------- loading


def _describe(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return f"'{source}'"
    if isinstance(source, bytes | bytearray):
        return f"the uploaded data ({len(source):,} bytes)"
    name = getattr(source, "name", None)
    return f"'{name}'" if isinstance(name, str) else "the uploaded file"


def _plain(exc: BaseException) -> str:
    """PIL's message without object reprs ("<_io.BytesIO object at 0x7f...>"): they tell a
    reader nothing and leak internals into the page."""
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc)).strip(" :")
    return text or type(exc).__name__


def load_image(
    source: ImageSource,
    max_pixels: int = 25_000_000,
    *,
    name: str | None = None,
    formats: Sequence[str] | None = None,
    accepted: str = _ACCEPTED,
) -> Image.Image:
    """Open, verify and fully decode an image, so every failure surfaces here as
    ``ImageError`` (with the source named) instead of deep inside the pipeline.

    ``max_pixels`` guards against decompression bombs: images with more pixels
    are refused before their pixel data is decoded. ``name``: how messages call the
    source (an upload's file name instead of "the uploaded data"); ``formats``: PIL format
    names to try (None: all PIL knows), so a server decodes only what it offers;
    ``accepted``: how messages name those formats.
    """
    what = f"'{name}'" if name else _describe(source)
    start = what[0].upper() + what[1:]
    try:
        if isinstance(source, str | Path):
            path = Path(source)
            if path.is_dir():
                raise ImageError(f"Cannot read image {what}: it is a folder, not an image file.")
            if not path.is_file():
                raise ImageError(f"Cannot read image {what}: no such file.")
            data = path.read_bytes()
        elif isinstance(source, bytes | bytearray):
            data = bytes(source)
        else:
            data = source.read()
            if not isinstance(data, bytes):
                raise ImageError(f"Cannot read image from {what}: open it in binary mode ('rb').")
    except OSError as exc:
        raise ImageError(f"Cannot read image {what}: {exc.strerror or _plain(exc)}") from exc
    if not data:
        raise ImageError(f"{start} is empty (0 bytes). Expected a {accepted}.")

    allowed = list(formats) if formats is not None else None
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check replaces PIL's global bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=allowed) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{start} is {width}x{height} pixels ({width * height:,}), more than "
                        f"the {max_pixels:,} allowed. Downscale it (a digit needs only a few "
                        "hundred pixels per side) and try again."
                    )
                probe.verify()  # structural check (e.g. PNG CRCs); leaves `probe` unusable
            image = Image.open(io.BytesIO(data), formats=allowed)
            image.load()  # decodes pixels: truncated files fail here
            image = ImageOps.exif_transpose(image)  # phone photos: honour the EXIF orientation
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{start} is too large to decode safely. Downscale it and try again.") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(
            f"{start} could not be read as an image: it is not a {accepted}, or it is damaged."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(
            f"{start} could not be read as an image: the file is damaged or cut short "
            f"({_plain(exc)}). Expected a complete {accepted}."
        ) from exc
    return image


# --------------------------------------------------------------------------- grey + polarity

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's "L"


def _to_unit(array: np.ndarray) -> np.ndarray:
    """Scale any numeric array to float32 in [0, 1] based on its dtype (or range)."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    out = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if out.size == 0:
        return out
    lo, hi = float(out.min()), float(out.max())
    if lo >= 0.0 and hi <= 1.0:
        return out
    if np.issubdtype(array.dtype, np.integer) or lo >= 0.0:
        # Integer types other than uint8/uint16 (PIL mode "I") or floats in 0..255 / 0..65535.
        for top in (255.0, 65535.0):
            if lo >= 0.0 and hi <= top:
                return out / top
    return (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)


def unit_gray(image: np.ndarray, caller: str) -> np.ndarray:
    """One grey (H, W) image as float32 in [0, 1] (integer input is 0..255, NaN is 0), for
    code that takes white-on-black ink as it is; ``caller`` names it in the shape error."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(
            f"{caller} expects one grey (H, W) image, got shape {arr.shape}; "
            "convert colour/RGBA input with handwriting.preprocessing.to_gray first"
        )
    scale = 255.0 if np.issubdtype(arr.dtype, np.integer) else 1.0
    return np.clip(np.nan_to_num(arr.astype(np.float32) / scale), 0.0, 1.0)


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Grey from colour + alpha, with transparent pixels as BACKGROUND.

    A transparent pixel has no meaningful colour (the drawing canvas stores
    (0, 0, 0, 0)), so it is given the colour opposite to the visible ink: if the
    opaque pixels are light, the background is black, else white. A fully
    opaque image is unaffected.
    """
    grey = rgb @ _LUMA if rgb.ndim == 3 else rgb
    weight = float(alpha.sum())
    if weight <= 0.0:  # nothing visible at all: a blank image
        return np.zeros_like(grey)
    if np.all(alpha >= 1.0):
        return grey
    ink_level = float((grey * alpha).sum() / weight)
    background = 0.0 if ink_level >= 0.5 else 1.0
    return grey * alpha + background * (1.0 - alpha)


def to_gray(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or array (HxW, HxWx1/2/3/4; uint8, uint16, bool or float)
    -> float32 (H, W) in [0, 1]. Alpha is composited so transparency is background."""
    if isinstance(image, Image.Image):
        if image.mode == "P":
            has_alpha = "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        elif image.mode == "PA":
            image = image.convert("RGBA")
        elif image.mode not in {"L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F", "1"}:
            # CMYK, YCbCr, LAB, HSV, ...: let PIL convert them to colour.
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        if image.mode.startswith("I;16"):
            array = np.asarray(image).astype(np.uint16)
        else:
            array = np.asarray(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(f"to_gray expects a PIL image or a numpy array, got {type(image).__name__}")

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.ascontiguousarray(_to_unit(array), dtype=np.float32)
    if array.ndim != 3 or array.shape[2] not in (2, 3, 4):
        raise ImageError(
            f"Cannot interpret an array of shape {array.shape} as an image: expected (H, W), "
            "(H, W, 3) RGB or (H, W, 4) RGBA."
        )
    unit = _to_unit(array)
    channels = array.shape[2]
    if channels == 3:
        grey = unit @ _LUMA
    elif channels == 4:
        grey = _composite(unit[:, :, :3], unit[:, :, 3])
    else:  # LA
        grey = _composite(unit[:, :, 0], unit[:, :, 1])
    return np.ascontiguousarray(np.clip(grey, 0.0, 1.0), dtype=np.float32)


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
