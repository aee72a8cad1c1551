"""What the drawing app does, without Streamlit: find and load the promoted model,
describe it, read a drawing or an upload with it, and put Tesseract's reading beside it.

Kept apart from ``app/streamlit_app.py`` so every decision the app makes (which file,
which message, what counts as a bad upload) is unit-tested without a browser, and so
other front ends (a CLI, a web API) can reuse it. The app itself only lays out widgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from handwriting.inference import ModelLoadError, ModelNotFoundError, Prediction, Predictor
from handwriting.ocr import OcrResult, TesseractReader, TesseractUnavailable
from handwriting.preprocessing import canvas_array, prepare_canvas, prepare_image
from handwriting.promotion import MODEL_FILE, default_promoted_dir
from handwriting.provenance import describe_code
from handwriting.reading import CharacterReading, NumberReading, read_number
from handwriting.uploads import (  # noqa: F401 - re-exported: upload checks live in uploads.py
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_MB,
    MAX_UPLOAD_PIXELS,
    UPLOAD_TYPES,
    UploadError,
    check_upload,
)

MODEL_DIR_ENV = "HANDWRITING_MODEL_DIR"
TRAIN_COMMAND = "python train.py"


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
EMPTY_UPLOAD_MESSAGE = empty_upload_message()
EMPTY_NUMBER_MESSAGE = empty_number_message()


def mode_labels(classes: Sequence[str]) -> dict[str, str]:
    """The app's modes ("single", "number") as shown for this model's alphabet."""
    if character_noun(classes) == "digit":
        return {"single": "Single digit", "number": "Number (several digits)"}
    return {"single": "Single character", "number": "Text (several characters)"}


# --------------------------------------------------------------------------- model files


def promoted_dir() -> Path:
    """Where promotion puts the model, so the app loads what training promoted."""
    return default_promoted_dir()


def promoted_model_path(directory: str | Path | None = None) -> Path:
    return Path(directory if directory is not None else promoted_dir()) / MODEL_FILE


def model_cache_key(path: str | Path) -> tuple[str, int] | None:
    """(absolute path, mtime in ns) of the model file, ``None`` when there is none.

    Promotion replaces the file atomically (new inode, new mtime), so a cache keyed on
    this picks up a newly promoted model on the next page run without a restart.
    """
    path = Path(path).resolve()
    try:
        return str(path), path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def load_predictor(path: str | Path) -> Predictor:
    """Load a checkpoint safely (``weights_only``); raises ModelNotFoundError / ModelLoadError
    (anything unexpected from a strange file becomes a ModelLoadError naming the file)."""
    try:
        return Predictor.from_checkpoint(path)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be loaded ({type(exc).__name__}: {exc})") from exc


def missing_model_message(path: str | Path) -> str:
    """Markdown telling someone with no model what to run (the exact command)."""
    return (
        f"**No trained model yet.** There is no model file at `{path}`.\n\n"
        f"Train one and promote it (about a minute on a laptop CPU) from the project folder:\n\n"
        f"```bash\n{TRAIN_COMMAND}\n```\n\n"
        f"then reload this page. To use a model stored elsewhere, start the app with "
        f"`{MODEL_DIR_ENV}=/path/to/dir` (the folder that holds `{MODEL_FILE}`)."
    )


def corrupt_model_message(path: str | Path, error: Exception) -> str:
    """Markdown for a model file that exists but cannot be used."""
    advice = (
        ""
        if TRAIN_COMMAND in str(error)
        else (
            f"Promote a run again (`handwriting promote <run dir> --force`) or retrain with "
            f"`{TRAIN_COMMAND}`. "
        )
    )
    return (
        f"**The model file `{path}` cannot be used.**\n\n{error}\n\n{advice}Then reload this page."
    )


def model_problem(path: str | Path, error: Exception) -> str:
    """The message for any failure to load ``path``."""
    if isinstance(error, ModelNotFoundError):
        return missing_model_message(path)
    return corrupt_model_message(path, error)


# --------------------------------------------------------------------------- model description


def format_accuracy(value: Any) -> str:
    """0.9213 -> "92.13 %"; missing -> "n/a"."""
    try:
        return f"{100.0 * float(value):.2f} %"
    except (TypeError, ValueError):
        return "n/a"


def describe_model(predictor: Predictor, path: str | Path) -> list[tuple[str, str]]:
    """(label, value) rows about the loaded model for the app's model panel.

    Architecture facts come from the checkpoint's hyperparameters (what was actually
    loaded); accuracies, data and dates from the promotion metadata (which may be absent
    for a hand-copied checkpoint: shown as "n/a").
    """
    hp = dict(predictor.model.hparams)
    meta = predictor.metadata or {}
    metrics = meta.get("metrics") or {}
    config = meta.get("config") or {}
    hidden = [int(h) for h in hp.get("hidden_sizes", [])]
    sizes = [int(hp.get("input_size", 784)), *hidden, len(predictor.classes)]
    extras = [
        name
        for name, on in (
            (f"dropout {hp.get('dropout')}", float(hp.get("dropout", 0) or 0) > 0),
            ("batch norm", bool(hp.get("batch_norm"))),
        )
        if on
    ]
    classes = predictor.classes
    class_text = " ".join(classes) if len(classes) <= 20 else f"{len(classes)} classes"
    lr = hp.get("lr", (config.get("model") or {}).get("lr"))
    rows = [
        ("File", str(path)),
        ("Validation accuracy", format_accuracy(metrics.get("val/acc"))),
        ("Test accuracy", format_accuracy(metrics.get("test/acc"))),
        ("Real drawings (held-out writers)", describe_drawn(metrics)),
        ("Confidence", describe_calibration(predictor)),
        ("Train accuracy", format_accuracy(metrics.get("train/acc"))),
        (
            "Architecture",
            "MLP "
            + " → ".join(str(s) for s in sizes)
            + (f" ({', '.join(extras)})" if extras else ""),
        ),
        ("Hidden sizes", str(hidden)),
        ("Learning rate", f"{float(lr):g}" if lr is not None else "n/a"),
        ("Epochs", f"{int(metrics['epochs'])}" if "epochs" in metrics else "n/a"),
        ("Data source", str(meta.get("data_source") or "n/a")),
        ("Classes", class_text),
        ("Promoted at", str(meta.get("promoted_at") or "n/a")),
        ("Run", str(meta.get("run_dir") or "n/a")),
        ("Code", describe_code(meta.get("code"))),
    ]
    return rows


def describe_calibration(predictor: Predictor) -> str:
    """How far to trust the confidence shown, in words (calibration.py)."""
    calibration = predictor.calibration
    if calibration is None:
        return (f"{predictor.calibration_note}; refit with `handwriting calibrate --model <file>`"
                if "ignored" in predictor.calibration_note else
                "not calibrated: the raw softmax, often over-confident on new writers")
    refuses = "; refuses what is not a digit" if calibration.detector is not None else ""
    return (f"calibrated on {calibration.fitted_on} (temperature {calibration.temperature:.2f}); "
            f"says it is not sure below {100 * calibration.answer_threshold:.0f} %{refuses}")


def describe_drawn(metrics: dict) -> str:
    """drawn/acc in words, or a plain statement that the model was never scored on real
    drawings (then its test accuracy may promise far more than it reads)."""
    if metrics.get("drawn/acc") is None:
        return "never scored on real drawings: its test accuracy may overstate what it reads"
    worst = metrics.get("drawn/worst_writer_acc")
    return (f"{format_accuracy(metrics['drawn/acc'])} (worst writer "
            f"{format_accuracy(worst) if worst is not None else 'n/a'})")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Reading:
    """The model's reading of one 28x28 input and Tesseract's reading of the same input.

    ``ocr`` is None when Tesseract could not run; ``ocr_note`` then says why.
    """

    prediction: Prediction
    ocr: OcrResult | None = None
    ocr_note: str | None = None

    @property
    def image(self) -> np.ndarray:
        return self.prediction.image

    @property
    def agrees(self) -> bool | None:
        """Whether Tesseract read the same label (None when it read nothing)."""
        if self.ocr is None or self.ocr.rejected:
            return None
        return self.ocr.text == self.prediction.label


def tesseract_whitelist(classes: Sequence[str]) -> str:
    """Restrict Tesseract to the model's classes, so both answer the same question."""
    chars = [c for c in classes if len(c) == 1 and not c.isspace() and c not in "\"'"]
    return "".join(dict.fromkeys(chars)) or "0123456789"


def make_reader(classes: Sequence[str]) -> TesseractReader:
    return TesseractReader(whitelist=tesseract_whitelist(classes))


def read_with_tesseract(
    image28: np.ndarray, reader: TesseractReader | None, line: bool = False
) -> tuple[OcrResult | None, str | None]:
    """(result, None), or (None, why not) when Tesseract is missing or fails: the app goes on.
    ``line=True`` reads a whole row (``read_line``) instead of one character."""
    if reader is None:
        return None, "Tesseract comparison is switched off."
    try:
        return (reader.read_line(image28) if line else reader.read_char(image28)), None
    except TesseractUnavailable as exc:
        return None, f"Tesseract is not available, so there is no comparison. {exc}"
    except Exception as exc:  # pytesseract raises several types; none may stop the app
        return None, f"Tesseract failed on this image ({type(exc).__name__}: {exc})."


def read_image28(
    predictor: Predictor, image28: np.ndarray, reader: TesseractReader | None = None
) -> Reading:
    """Read one prepared 28x28 input with the model and with Tesseract."""
    prediction = predictor.predict(image28)
    ocr, note = read_with_tesseract(prediction.image, reader)
    return Reading(prediction, ocr, note)


def read_canvas(
    predictor: Predictor, rgba: np.ndarray | None, reader: TesseractReader | None = None
) -> Reading:
    """A canvas's RGBA array -> Reading. Raises EmptyImageError for a blank canvas."""
    return read_image28(predictor, prepare_canvas(rgba), reader)


def read_upload(
    predictor: Predictor,
    name: str,
    data: bytes,
    reader: TesseractReader | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> Reading:
    """An uploaded file -> Reading. Raises UploadError (bad file) or EmptyImageError."""
    image = check_upload(name, data, max_bytes=max_bytes, max_pixels=max_pixels)
    return read_image28(predictor, prepare_image(image), reader)


@dataclass(frozen=True)
class LineReading:
    """The model's reading of a row of characters and Tesseract's reading of the same row
    (the same white-on-black ink the segmentation saw). ``ocr`` is None when Tesseract
    could not run; ``ocr_note`` then says why."""

    number: NumberReading
    ocr: OcrResult | None = None
    ocr_note: str | None = None

    @property
    def agrees(self) -> bool | None:
        """Whether Tesseract read the same string (None when it read nothing)."""
        if self.ocr is None or self.ocr.rejected:
            return None
        return self.ocr.text == self.number.text


def read_number_image(
    predictor: Predictor, image: Image.Image | np.ndarray, reader: TesseractReader | None = None
) -> LineReading:
    """A picture of one line of characters -> LineReading. Raises EmptyImageError."""
    number = read_number(image, predictor)
    ocr, note = read_with_tesseract(number.ink, reader, line=True)
    return LineReading(number, ocr, note)


def read_number_canvas(
    predictor: Predictor, rgba: np.ndarray | None, reader: TesseractReader | None = None
) -> LineReading:
    """The wide canvas's RGBA array -> LineReading. Raises EmptyImageError when blank."""
    array = canvas_array(rgba, "The canvas returned no image yet. Write something first.")
    return read_number_image(predictor, array, reader)


def read_number_upload(
    predictor: Predictor,
    name: str,
    data: bytes,
    reader: TesseractReader | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> LineReading:
    """An uploaded picture of a line -> LineReading. Raises UploadError or EmptyImageError."""
    image = check_upload(name, data, max_bytes=max_bytes, max_pixels=max_pixels)
    return read_number_image(predictor, image, reader)


# --------------------------------------------------------------------------- display helpers


def probability_frame(prediction: Prediction, k: int = 3) -> pd.DataFrame:
    """One row per class (in class order): probability, rank, and whether it is in the top k."""
    probs = np.asarray(prediction.probabilities, dtype=float)
    ranks = np.empty(len(probs), dtype=int)
    ranks[np.argsort(-probs, kind="stable")] = np.arange(1, len(probs) + 1)
    return pd.DataFrame(
        {
            "class": list(prediction.classes),
            "probability": probs,
            "rank": ranks,
            "top_k": ranks <= k,
        }
    )


def enlarge(image28: np.ndarray, scale: int = 8) -> np.ndarray:
    """A [0, 1] image as uint8, each pixel a ``scale`` x ``scale`` block (nearest neighbour),
    so the 28x28 input is visible as the model sees it, not smoothed by the browser."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    pixels = np.round(np.clip(np.asarray(image28, dtype=np.float32), 0.0, 1.0) * 255).astype(
        np.uint8
    )
    return np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))


def _format_ocr_result(ocr: OcrResult | None, note: str | None, what: str) -> str:
    if ocr is None:
        return note or "Tesseract gave no result."
    if ocr.rejected:
        return f"Tesseract read **nothing usable** (no {what} from the model's classes)."
    conf = "n/a" if ocr.confidence is None else f"{100 * ocr.confidence:.0f} %"
    return f"Tesseract reads **{ocr.text}** (confidence {conf})."


def format_ocr(reading: Reading) -> str:
    """One line of Markdown: what Tesseract read, with its confidence."""
    return _format_ocr_result(reading.ocr, reading.ocr_note, "character")


def format_line_ocr(line: LineReading) -> str:
    """One line of Markdown: what Tesseract read on the whole row, with its confidence."""
    return _format_ocr_result(line.ocr, line.ocr_note, "characters")


def character_caption(character: CharacterReading, note: str = "") -> str:
    """ "7 · 98 %": a segmented character's label and confidence, under its picture; with
    a ``note`` ("least sure", "not sure": answers.character_note) and, when not sure, the
    two best guesses: "4 or 9? · 48 % · not sure"."""
    label = (" or ".join(c for c, _ in character.top_k(2)) + "?") if note == "not sure" else character.label
    return f"{label} · {100 * character.confidence:.0f} %" + (f" · {note}" if note else "")


def draw_boxes(
    ink: np.ndarray, bboxes: Sequence[tuple[int, int, int, int]], width: int = 2
) -> np.ndarray:
    """The ink (white on black) as RGB with each character's box outlined in orange, so
    a person sees at once where the segmentation cut (or merged) characters."""
    grey = np.round(np.clip(np.asarray(ink, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(grey).convert("RGB")
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1 in bboxes:
        draw.rectangle((x0 - width, y0 - width, x1 - 1 + width, y1 - 1 + width),
                       outline=(228, 87, 46), width=width)
    return np.asarray(image)


def tesseract_status() -> str:
    """One line for the sidebar: Tesseract's version, or how to install it."""
    from handwriting.ocr import INSTALL_HINT, tesseract_version

    version = tesseract_version()
    if version is None:
        return f"Tesseract not found: the app runs without the comparison. {INSTALL_HINT}"
    return f"Tesseract {version}"
