"""What a reading means for a person, in words: an answer, "not sure", or "not a digit";
and the words around it (what to draw, what an empty canvas means, Tesseract's answer).

One home for these texts so the app, the CLI and the HTTP API say the same thing. The
verdict itself is decided by the model's calibration (``calibration.py``); this module
only words it. A "not sure" answer shows the two best guesses instead of one
confident-looking wrong digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from handwriting.calibration import NOT_A_DIGIT, NOT_SURE
from handwriting.inference import Prediction

if TYPE_CHECKING:  # types only: reading and ocr import heavier modules
    from handwriting.ocr import OcrResult
    from handwriting.reading import CharacterReading


def percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def best_guesses(prediction: Prediction, k: int = 2) -> str:
    """ "4 (48 %) or 9 (41 %)" """
    return " or ".join(f"{label} ({percent(p)})" for label, p in prediction.top_k(k))


def headline(prediction: Prediction) -> str:
    """The short answer: "7", "4 or 9?" or "not a digit"-like text for a metric tile."""
    if prediction.verdict == NOT_A_DIGIT:
        return "—"
    if prediction.verdict == NOT_SURE:
        return " or ".join(label for label, _ in prediction.top_k(2)) + "?"
    return prediction.label


def explanation(prediction: Prediction, noun: str = "digit") -> str:
    """One or two sentences for anything that is not a plain answer ("" for an answer)."""
    if prediction.verdict == NOT_A_DIGIT:
        return (f"That does not look like a {noun}. Draw or upload one {noun}, large and "
                f"alone: scribbles, shapes, letters and photos are not read.")
    if prediction.verdict == NOT_SURE:
        return (f"Not sure: maybe {best_guesses(prediction)}. Write it again, larger and "
                f"clearer, or check it yourself.")
    return ""


def cli_line(prediction: Prediction, noun: str = "digit") -> str:
    """``predict``'s line for one image."""
    if prediction.verdict == NOT_A_DIGIT:
        return f"not a {noun} (junk score {percent(prediction.junk_score or 0.0)})"
    if prediction.verdict == NOT_SURE:
        return f"not sure: {best_guesses(prediction)}"
    top = ", ".join(f"{label} {p:.1%}" for label, p in prediction.top_k(3))
    return f"{prediction.label} ({prediction.confidence:.1%})  top-3: {top}"


def weakest_index(confidences: Sequence[float]) -> int | None:
    """The position of the least sure character (None for none)."""
    return min(range(len(confidences)), key=confidences.__getitem__) if confidences else None


def character_note(confidence: float, weakest: bool, threshold: float | None) -> str:
    """The mark under a character of a whole number: "not sure" below the model's answer
    threshold, "least sure" for the weakest character of the line otherwise."""
    if threshold is not None and confidence < threshold:
        return "not sure"
    return "least sure" if weakest else ""


def confidence_help(calibrated: bool) -> str:
    if calibrated:
        return ("Calibrated on held-out data: of the answers given at 90 %, about 90 % are "
                "right. Below the model's threshold it says it is not sure (see the sidebar).")
    return "The model's raw softmax probability: this model has no calibration."


DIGITS = tuple("0123456789")


def character_noun(classes: Sequence[str]) -> str:
    """"digit" for a model of exactly 0-9, else "character": the app's texts follow the
    promoted model's alphabet (a letters model is not asked for digits)."""
    return "digit" if tuple(classes) == DIGITS else "character"


def empty_canvas_message(noun: str = "digit") -> str:
    return (
        f"Draw a {noun} first: the canvas is empty (or has too little ink to read). "
        f"Draw one large {noun} with the mouse, a finger or a pen, then press Read."
    )


def empty_upload_message(noun: str = "digit") -> str:
    return (
        f"No {noun} found in this picture: it looks blank (too little contrast between ink "
        f"and paper). Upload a photo or scan of one dark {noun} on light paper "
        "(or light on dark)."
    )


def empty_number_message(noun: str = "digit") -> str:
    what = "a number" if noun == "digit" else "some characters"
    return (
        f"Write {what} first: the canvas is empty (or has too little ink to read). "
        f"Write several {noun}s side by side on one line, large, then press Read."
    )


def empty_number_upload_message(noun: str = "digit") -> str:
    return (
        f"No {noun}s found in this picture: it looks blank (too little contrast between ink "
        f"and paper). Upload a photo or scan of one line of {noun}s."
    )


EMPTY_CANVAS_MESSAGE = empty_canvas_message()
EMPTY_NUMBER_MESSAGE = empty_number_message()


def mode_labels(classes: Sequence[str]) -> dict[str, str]:
    """The app's modes ("single", "number") as shown for this model's alphabet."""
    if character_noun(classes) == "digit":
        return {"single": "Single digit", "number": "Number (several digits)"}
    return {"single": "Single character", "number": "Text (several characters)"}


def character_caption(character: CharacterReading, note: str = "") -> str:
    """ "7 · 98 %": a segmented character's label and confidence, under its picture; with
    a ``note`` ("least sure", "not sure": character_note) and, when not sure, the two best
    guesses: "4 or 9? · 48 % · not sure"."""
    label = (" or ".join(c for c, _ in character.top_k(2)) + "?") if note == "not sure" else character.label
    return f"{label} · {100 * character.confidence:.0f} %" + (f" · {note}" if note else "")


def tesseract_answer(ocr: OcrResult | None, note: str | None, line: bool = False) -> str:
    """One line of Markdown: what Tesseract read (one character, or a whole ``line``) with
    its confidence, or why there is no reading (``note``)."""
    if ocr is None:
        return note or "Tesseract gave no result."
    if ocr.rejected:
        what = "characters" if line else "character"
        return f"Tesseract read **nothing usable** (no {what} from the model's classes)."
    conf = "n/a" if ocr.confidence is None else f"{100 * ocr.confidence:.0f} %"
    return f"Tesseract reads **{ocr.text}** (confidence {conf})."
