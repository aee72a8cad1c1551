"""Uploaded pictures: what is accepted, and the check every upload passes before anything
of it is shown or read.

Why a module of its own: the app used to show an upload (``st.image``) before checking it,
so a 0-byte file, a text file renamed ``.png`` or a cut-off PNG put a traceback in the page
and an 8000x8000 picture went to the browser before the pixel limit refused it. Here a file
is checked once -- name, size, format, pixel count, full decode -- and either comes back as
a decoded image (plus a small preview that is safe to send to a browser) or as one
``UploadError`` whose message is written for the person who uploaded it: no Python object
reprs, no formats the uploader would refuse anyway, and what to do instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from handwriting.grey_image import ImageError, load_image

# What the file picker offers and what the server accepts. A digit needs a few hundred
# pixels per side; the limits only stop accidents and decompression bombs.
UPLOAD_TYPES: tuple[str, ...] = ("png", "jpg", "jpeg", "bmp", "gif", "webp")
# PIL decoders tried for an upload: only the formats offered (a TIFF renamed .png is
# refused like any other file that is not one of them).
PIL_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
ACCEPTED_TEXT = "PNG, JPEG, BMP, GIF or WebP picture"
MAX_UPLOAD_MB = 5
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
PREVIEW_SIDE = 560  # px: the longest side of what the page shows of an upload


class UploadError(ValueError):
    """An uploaded file that is not a usable image (wrong type, too big, corrupt)."""


def check_upload(
    name: str,
    data: bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
    allowed: Sequence[str] = UPLOAD_TYPES,
) -> Image.Image:
    """Validate an upload and decode it; every problem becomes an UploadError that says
    what was wrong and what is accepted (the app shows it and keeps running)."""
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in allowed:
        raise UploadError(
            f"'{name}' is not a supported image type. Upload one of: {', '.join(sorted(allowed))}."
        )
    if not data:
        raise UploadError(f"'{name}' is empty (0 bytes). Upload a picture of a digit.")
    if len(data) > max_bytes:
        raise UploadError(
            f"'{name}' is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB. Crop or downscale it: a digit needs only a few "
            "hundred pixels per side."
        )
    try:
        return load_image(data, max_pixels=max_pixels, name=name, formats=PIL_FORMATS,
                          accepted=ACCEPTED_TEXT)
    except ImageError as exc:
        raise UploadError(str(exc)) from exc


def preview(image: Image.Image, side: int = PREVIEW_SIDE) -> Image.Image:
    """A copy no larger than ``side`` px on its longest side, in RGB(A): what the page shows
    of an upload, so a large photo is not sent back to the browser at full size."""
    small = image.copy()
    small.thumbnail((side, side))
    return small if small.mode in ("RGB", "RGBA", "L") else small.convert("RGBA")


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed ``check_upload``: its name, the decoded image and a preview."""

    name: str
    image: Image.Image
    preview: Image.Image


def checked(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> CheckedUpload:
    """``check_upload`` and ``preview`` in one step: the only way the app gets at an upload.
    Raises UploadError."""
    image = check_upload(name, data, max_bytes=max_bytes)
    return CheckedUpload(name, image, preview(image))
