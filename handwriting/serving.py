"""One entry point for every front end: ``read`` a drawing, a canvas, strokes or a picture
-- one character or a whole line -- with the model, and Tesseract's reading of the same
input beside it, as one ``Reading``.

Why one entry point: the app, the CLI and the HTTP API must read an input the same way
(same preparation, same segmentation, same Tesseract input), and a front end should not
need to pick among parallel functions per input kind. Kept free of Streamlit so every
decision is unit-tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from handwriting.inference import Prediction, Predictor
from handwriting.ocr import OcrResult, TesseractReader
from handwriting.preprocessing import EmptyImageError, canvas_array, prepare_image
from handwriting.reading import NumberReading, read_number
from handwriting.render import draw_ink
from handwriting.stroke_format import StrokeDrawing
from handwriting.stroke_reading import read_strokes
from handwriting.tesseract_binary import TesseractUnavailable

Source = StrokeDrawing | Image.Image | np.ndarray | str | Path | None
NOTHING_SENT = "The canvas returned no image yet. Draw something first."


@dataclass(frozen=True)
class Reading:
    """What the model read from one input and what Tesseract read from the same input.

    Exactly one of ``prediction`` (one character: its probabilities, verdict, junk score)
    and ``number`` (a line: its characters, boxes and the ink that was segmented) is set.
    ``ocr`` is None when Tesseract could not run; ``ocr_note`` then says why.
    """

    prediction: Prediction | None = None
    number: NumberReading | None = None
    ocr: OcrResult | None = None
    ocr_note: str | None = None

    def __post_init__(self) -> None:
        if (self.prediction is None) == (self.number is None):
            raise ValueError("a Reading holds either one character's prediction or a number")

    @property
    def text(self) -> str:
        """What the model reads: one label, or the whole line."""
        return self.prediction.label if self.prediction is not None else self.number.text

    @property
    def image(self) -> np.ndarray:
        """What the model (and Tesseract) saw: the 28x28 input, or the line's ink."""
        return self.prediction.image if self.prediction is not None else self.number.ink

    @property
    def agrees(self) -> bool | None:
        """Whether Tesseract read the same text (None when it read nothing)."""
        if self.ocr is None or self.ocr.rejected:
            return None
        return self.ocr.text == self.text


def tesseract_whitelist(classes: Sequence[str]) -> str:
    """Restrict Tesseract to the model's classes, so both answer the same question."""
    chars = [c for c in classes if len(c) == 1 and not c.isspace() and c not in "\"'"]
    return "".join(dict.fromkeys(chars)) or "0123456789"


def make_reader(classes: Sequence[str]) -> TesseractReader:
    return TesseractReader(whitelist=tesseract_whitelist(classes))


def read_with_tesseract(
    image: np.ndarray, reader: TesseractReader | None, line: bool = False
) -> tuple[OcrResult | None, str | None]:
    """(result, None), or (None, why not) when Tesseract is missing or fails: the app goes on.
    ``line=True`` reads a whole row (``read_line``) instead of one character."""
    if reader is None:
        return None, "Tesseract comparison is switched off."
    try:
        return (reader.read_line(image) if line else reader.read_char(image)), None
    except TesseractUnavailable as exc:
        return None, f"Tesseract is not available, so there is no comparison. {exc}"
    except Exception as exc:  # pytesseract raises several types; none may stop the app
        return None, f"Tesseract failed on this image ({type(exc).__name__}: {exc})."


def _pixels(source: Image.Image | np.ndarray | str | Path | None, empty_message: str
            ) -> Image.Image | np.ndarray | str | Path:
    """A picture or an image file as it is, or a canvas's RGBA array checked (None: the
    canvas sent nothing)."""
    if isinstance(source, Image.Image | str | Path):
        return source
    if source is None or np.ndim(source) == 3:
        return canvas_array(source, empty_message)
    return np.asarray(source)


def read(
    predictor: Predictor,
    source: Source,
    *,
    number: bool = False,
    tesseract: TesseractReader | None = None,
    empty_message: str = NOTHING_SENT,
) -> Reading:
    """Read ``source`` -- strokes (``StrokeDrawing``), a canvas's RGBA array, any image
    array, a PIL picture (an upload checked first with ``uploads.checked``) or an image
    file's path -- as one character, or
    as a whole line with ``number=True`` (strokes grouped by ``stroke_reading``, pixels
    segmented by ``reading``). Raises EmptyImageError (``empty_message`` when a canvas
    sent nothing yet) for a blank input."""
    if number:
        if isinstance(source, StrokeDrawing):
            line = read_strokes(source, predictor)
        else:
            line = read_number(_pixels(source, empty_message), predictor)
        ocr, note = read_with_tesseract(line.ink, tesseract, line=True)
        return Reading(number=line, ocr=ocr, ocr_note=note)
    if isinstance(source, StrokeDrawing):
        if not source.strokes:
            raise EmptyImageError(empty_message)
        image28 = prepare_image(draw_ink(list(source.strokes), source.stroke_width,
                                         (source.height, source.width)))
    else:
        image28 = prepare_image(_pixels(source, empty_message))
    prediction = predictor.predict(image28)
    ocr, note = read_with_tesseract(prediction.image, tesseract)
    return Reading(prediction=prediction, ocr=ocr, ocr_note=note)
