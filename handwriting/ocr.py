"""Tesseract baseline: the off-the-shelf OCR a trained model has to beat.

Tesseract is built for printed text lines, not for one handwritten glyph on a
28x28 canvas, so each image is redrawn the way it reads best (measured on MNIST,
see ``DEFAULT_RENDER``): dark ink on a white page, cropped to the ink and resized
to a glyph height of about 20 px (close to the text-line size its LSTM was
trained on), lightly smoothed, with a wide white margin. ``--psm 10`` (single
character) is used for one glyph and ``--psm 7`` (single line) for a row.

Restricting the output to digits with ``tessedit_char_whitelist`` makes the LSTM
answer "nothing" for about half of MNIST, so single characters are decoded from
Tesseract's own per-symbol alternatives instead (see ``TesseractReader``):
on 300 held-out MNIST test digits this reads 64% correctly against 35-39% with
the whitelist. Tesseract remains a weak reader of handwriting; that is the point
of having it as a baseline.

Tesseract runs as one subprocess per call (~50-100 ms), so batches go through
a small thread pool. Finding the executable is ``tesseract_binary.py``'s job.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar
from xml.etree import ElementTree

import numpy as np
import pytesseract
from PIL import Image, ImageFilter

from handwriting.grey_image import unit_gray
from handwriting.tesseract_binary import TesseractUnavailable, tesseract_cmd

T = TypeVar("T")

@dataclass(frozen=True)
class OcrResult:
    """What Tesseract read. ``confidence`` is in [0, 1] (None when Tesseract gave
    none); ``rejected`` means nothing usable was read and ``text`` is then ``""``."""

    text: str
    confidence: float | None
    rejected: bool

    @classmethod
    def reject(cls) -> OcrResult:
        return cls(text="", confidence=None, rejected=True)


@dataclass(frozen=True)
class RenderOptions:
    """How a white-on-black glyph is redrawn for Tesseract."""

    glyph_height: int = 20  # height of the ink (or of the whole image without crop), px
    crop: bool = True  # cut to the ink's bounding box first, so glyph_height is the glyph's
    pad: int = 40  # white margin, px; Tesseract misreads glyphs that touch the border
    blur: float = 0.5  # Gaussian radius after resizing; smooths the pixel staircase
    binarize: bool = False  # hard threshold at 0.5 after blurring
    thicken: int = 0  # MinFilter size (odd, 0 = off) to fatten thin strokes


# Defaults measured on MNIST test digits (200 to choose / 300 others to confirm),
# accuracy with "choices" decoding and psm 10, before zero-confidence
# alternatives were dropped (dropping them costs 0.02: 0.640 on the 300):
#   glyph cropped to 20 px, blur 0.5 ........ 0.735 / 0.663  (kept)
#   glyph cropped to 20 px, blur 1.0 ........ 0.720 / 0.637
#   whole 28x28 canvas scaled to 24 px ...... 0.710 / 0.650
#   glyph cropped to 100 px ................. 0.480 / 0.547
#   binarized -0.08, strokes thickened -0.10, psm 8 or 13 ~0.15 (on the 200)
# "whitelist" decoding: 0.347 (20 px) to 0.393 (canvas at 24 px) on the 300.
# Bigger glyphs, which one might expect to help, hurt: Tesseract's LSTM was
# trained on text lines of roughly 20-40 px, which is what it sees here.
DEFAULT_RENDER = RenderOptions()


def render_for_tesseract(image: np.ndarray, options: RenderOptions = DEFAULT_RENDER) -> Image.Image:
    """Redraw a white-on-black image (float in [0, 1] or uint8) as dark ink on a white page."""
    ink = unit_gray(image, "render_for_tesseract")
    if options.crop:
        rows, cols = np.nonzero(ink > 0.1)
        if rows.size:
            ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    page = Image.fromarray(np.round((1.0 - ink) * 255).astype(np.uint8), mode="L")
    h, w = ink.shape
    scale = options.glyph_height / max(h, 1)
    page = page.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    if options.blur > 0:
        page = page.filter(ImageFilter.GaussianBlur(options.blur))
    if options.binarize:
        page = page.point(lambda v: 255 if v >= 128 else 0)
    if options.thicken and options.thicken > 1:
        page = page.filter(ImageFilter.MinFilter(options.thicken | 1))
    if options.pad > 0:
        padded = Image.new("L", (page.width + 2 * options.pad, page.height + 2 * options.pad), 255)
        padded.paste(page, (options.pad, options.pad))
        page = padded
    return page


_CONF = re.compile(r"x_confs\s+([\d.]+)")


def _parse_choices(hocr: bytes) -> list[list[tuple[str, float]]]:
    """Per-symbol LSTM alternatives from hOCR made with ``lstm_choice_mode=2``:
    one list of ``(char, confidence 0..100)`` per recognised symbol position."""
    try:
        root = ElementTree.fromstring(hocr)
    except ElementTree.ParseError:
        return []
    positions = []
    for el in root.iter():
        if not str(el.get("id", "")).startswith("lstm_choices_"):
            continue
        alts = []
        for child in el:
            match = _CONF.search(child.get("title", ""))
            text = "".join(child.itertext())
            if match and text:
                alts.append((text, float(match.group(1))))
        positions.append(alts)
    return positions


class TesseractReader:
    """Reads single characters or one line of characters with Tesseract.

    Characters are restricted to ``whitelist`` in one of two ways (``char_decoding``):

    - ``"choices"`` (default for single characters): run Tesseract unrestricted with
      ``lstm_choice_mode=2`` and keep the most confident whitelisted character
      among the alternatives its LSTM listed for the glyph. Measured on MNIST this
      reads far more digits than the whitelist, because with
      ``tessedit_char_whitelist`` the LSTM decoder often prefers "no character"
      over an unlikely-looking digit and returns nothing.
    - ``"whitelist"``: ``tessedit_char_whitelist`` via ``image_to_data``.

    Lines always use the whitelist: per-symbol alternatives would turn every
    speck Tesseract sees into an extra digit.

    Anything outside the whitelist, or no text at all, comes back as
    ``OcrResult(text="", rejected=True)``.
    """

    def __init__(
        self,
        whitelist: str = "0123456789",
        psm_char: int = 10,
        psm_line: int = 7,
        upscale: int = DEFAULT_RENDER.glyph_height,  # glyph height in px Tesseract sees
        pad: int = DEFAULT_RENDER.pad,
        timeout: float = 10.0,
        *,
        blur: float = DEFAULT_RENDER.blur,
        binarize: bool = DEFAULT_RENDER.binarize,
        thicken: int = DEFAULT_RENDER.thicken,
        crop: bool = DEFAULT_RENDER.crop,
        char_decoding: Literal["choices", "whitelist"] = "choices",
        choice_iterations: int = 20,
        lang: str = "eng",
    ) -> None:
        if not whitelist:
            raise ValueError("whitelist must name at least one character")
        if any(c.isspace() or c in "\"'" for c in whitelist):
            raise ValueError("whitelist must not contain whitespace or quotes")
        if char_decoding not in ("choices", "whitelist"):
            raise ValueError(
                f"char_decoding must be 'choices' or 'whitelist', got {char_decoding!r}"
            )
        self.whitelist = whitelist
        self.psm_char = psm_char
        self.psm_line = psm_line
        self.timeout = timeout
        self.char_decoding = char_decoding
        self.choice_iterations = choice_iterations
        self.lang = lang
        self.render = RenderOptions(
            glyph_height=upscale, pad=pad, blur=blur, binarize=binarize, thicken=thicken, crop=crop
        )
        # Tesseract's OpenMP threads only add overhead on tiny images and
        # oversubscribe the CPU when several processes run in parallel.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    def _call(
        self, fn: Callable[..., T], page: Image.Image, config: str, **kwargs: object
    ) -> T | None:
        """Run one pytesseract function; None on timeout, TesseractUnavailable when it cannot run."""
        cmd = tesseract_cmd()
        try:
            return fn(page, lang=self.lang, config=config, timeout=self.timeout, **kwargs)
        except pytesseract.TesseractNotFoundError as err:
            raise TesseractUnavailable(cmd, "not found") from err
        except pytesseract.TesseractError as err:
            if "Failed loading language" in str(err.message):
                raise TesseractUnavailable(
                    cmd, f"language data {self.lang!r} missing: {str(err.message).strip()}"
                ) from err
            raise
        except RuntimeError as err:  # pytesseract signals its timeout this way
            if "timeout" in str(err).lower():
                return None
            raise

    def _read_whitelisted(self, page: Image.Image, psm: int) -> OcrResult:
        config = f"--psm {psm} -c tessedit_char_whitelist={self.whitelist}"
        data = self._call(
            pytesseract.image_to_data, page, config, output_type=pytesseract.Output.DICT
        )
        if data is None:
            return OcrResult.reject()
        words = [
            (str(t).strip(), float(c))
            for t, c in zip(data["text"], data["conf"], strict=True)
            if str(t).strip()
        ]
        text = "".join(t for t, _ in words)
        if not text or any(ch not in self.whitelist for ch in text):
            return OcrResult.reject()
        confs = [c for _, c in words if c >= 0]
        confidence = min(confs) / 100.0 if confs else None
        return OcrResult(text=text, confidence=confidence, rejected=False)

    def _read_best_choice(self, page: Image.Image, psm: int) -> OcrResult:
        config = (
            f"--psm {psm} -c lstm_choice_mode=2 -c lstm_choice_iterations={self.choice_iterations}"
        )
        hocr = self._call(pytesseract.image_to_pdf_or_hocr, page, config, extension="hocr")
        if hocr is None:
            return OcrResult.reject()
        candidates = [
            (conf, ch)
            for alts in _parse_choices(hocr)
            for ch, conf in alts
            # x_confs 0 marks an alternative the LSTM gave no weight (it turns an "A" into "4")
            if len(ch) == 1 and ch in self.whitelist and conf > 0
        ]
        if not candidates:
            return OcrResult.reject()
        conf, ch = max(candidates)
        return OcrResult(text=ch, confidence=min(max(conf / 100.0, 0.0), 1.0), rejected=False)

    def read_char(self, image28: np.ndarray) -> OcrResult:
        """Read one white-on-black character image (float in [0, 1], usually 28x28)."""
        arr = unit_gray(image28, "read_char")
        if not np.any(arr > 0.1):
            return OcrResult.reject()  # blank canvas; Tesseract would only guess
        page = render_for_tesseract(arr, self.render)
        if self.char_decoding == "choices":
            return self._read_best_choice(page, self.psm_char)
        result = self._read_whitelisted(page, self.psm_char)
        if not result.rejected and len(result.text) != 1:
            return OcrResult.reject()  # one glyph cannot be two characters
        return result

    def read_chars(
        self, images: Sequence[np.ndarray] | np.ndarray, workers: int = 2
    ) -> list[OcrResult]:
        """``read_char`` over many images, in order, ``workers`` subprocesses at a time."""
        items = list(images)
        if workers <= 1 or len(items) <= 1:
            return [self.read_char(im) for im in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.read_char, items))

    def read_line(self, gray_white_on_black: np.ndarray) -> OcrResult:
        """Read one row of characters (white ink on black, float (H, W) in [0, 1])."""
        arr = unit_gray(gray_white_on_black, "read_line")
        if not np.any(arr > 0.1):
            return OcrResult.reject()
        return self._read_whitelisted(render_for_tesseract(arr, self.render), self.psm_line)
