"""Any image input as one grey float array: files and uploads read safely
(:func:`load_image`), then colour, alpha, bit depth and palette turned into grey in [0, 1]
(:func:`to_gray`). The first half of the pipeline of ``preprocessing.prepare_image``; kept
apart because it is about reading pixels, not about digits. ``handwriting.preprocessing``
re-exports every public name, where callers import them.
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

_ACCEPTED = "PNG, JPEG, BMP, GIF, TIFF or WebP image"

ImageSource = str | Path | bytes | bytearray | BinaryIO


class ImageError(ValueError):
    """The input could not be read as an image (corrupt, truncated, too large, not an image)."""


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
