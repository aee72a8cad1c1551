"""handwriting.serving: what the app decides, tested without Streamlit.

A small MLP is trained in-process on the packaged MNIST sample (about a second), so
readings are checked against real labels, not just for shape.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytesseract
import pytest
import torch
from PIL import Image

from handwriting import (
    answers,
    model_card,
    model_loading,
    pictures,
    serving,
    tesseract_binary,
    uploads,
)
from handwriting.inference import ModelLoadError, ModelNotFoundError, Predictor
from handwriting.model import MLPClassifier
from handwriting.ocr import OcrResult, TesseractReader
from handwriting.preprocessing import EmptyImageError
from handwriting.tesseract_binary import tesseract_available
from tests.browser_helpers import (
    NUMBER_CANVAS,
    canvas_rgba,
    one_stroke,
    ten_strokes,
    write_promoted_model,
    zero_stroke,
)

HELD_OUT = slice(9000, 9300)  # train_tiny_model trains on the first 6000


@pytest.fixture(scope="module")
def model_path(trained_model: MLPClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_promoted_model(tmp_path_factory.mktemp("promoted"), trained_model, val_acc=0.935)


@pytest.fixture(scope="module")
def predictor(model_path: Path) -> Predictor:
    return model_loading.load_predictor(model_path)


# --------------------------------------------------------------------------- finding the model


def test_promoted_dir_follows_env_then_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(model_loading.MODEL_DIR_ENV, str(tmp_path / "elsewhere"))
    assert model_loading.promoted_model_path() == tmp_path / "elsewhere" / "model.ckpt"
    monkeypatch.delenv(model_loading.MODEL_DIR_ENV)
    monkeypatch.setenv("HANDWRITING_ROOT", str(tmp_path / "project"))
    assert model_loading.promoted_model_path() == tmp_path / "project" / "models" / "promoted" / "model.ckpt"
    assert model_loading.promoted_model_path(tmp_path / "x") == tmp_path / "x" / "model.ckpt"


def test_cache_key_is_none_without_a_file_and_changes_when_a_model_is_promoted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.ckpt"
    assert model_loading.model_cache_key(path) is None
    write_promoted_model(tmp_path, val_acc=0.5)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    first = model_loading.model_cache_key(path)
    assert first == (str(path.resolve()), 1_000_000_000)
    write_promoted_model(tmp_path, val_acc=0.6)  # atomic replace, as promotion does
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    assert model_loading.model_cache_key(path) != first


def test_missing_model_raises_not_found_and_message_gives_the_train_command(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    with pytest.raises(ModelNotFoundError):
        model_loading.load_predictor(path)
    message = model_loading.missing_model_message(path)
    assert "python train.py" in message and str(path) in message
    assert model_loading.MODEL_DIR_ENV in message


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint at all", b"", b"PK\x03\x04 truncated zip"],
    ids=["text", "empty", "truncated-zip"],
)
def test_corrupt_model_file_gives_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        model_loading.load_predictor(path)
    assert not isinstance(info.value, ModelNotFoundError)
    message = model_loading.corrupt_model_message(path, info.value)
    assert "cannot be used" in message and str(path) in message
    assert "python train.py" in message


def test_checkpoint_whose_weights_do_not_match_its_description_is_refused(tmp_path: Path) -> None:
    path = write_promoted_model(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["hidden_sizes"] = [99]
    torch.save(checkpoint, path)
    with pytest.raises(ModelLoadError, match="does not match"):
        model_loading.load_predictor(path)


def test_describe_model_shows_metrics_architecture_and_provenance(
    predictor: Predictor, model_path: Path
) -> None:
    rows = dict(model_card.describe_model(predictor, model_path))
    assert rows["File"] == str(model_path)
    assert rows["Validation accuracy"] == "93.50 %"
    assert rows["Test accuracy"] == "91.05 %"
    assert rows["Architecture"] == "MLP 784 → 64 → 10"
    assert rows["Hidden sizes"] == "[64]"
    assert rows["Learning rate"] == "0.003"
    assert rows["Data source"] == "handwriting.data.embedded.EmbeddedMNIST"
    assert rows["Promoted at"] == "2026-01-02T03:04:05+00:00"
    assert rows["Classes"] == "0 1 2 3 4 5 6 7 8 9"


def test_describe_model_without_promotion_metadata_says_na(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MLPClassifier(hidden_sizes=(8, 8), dropout=0.2, batch_norm=True)
    path = write_promoted_model(tmp_path, model, metadata=False)
    rows = dict(model_card.describe_model(model_loading.load_predictor(path), path))
    assert rows["Validation accuracy"] == "n/a" and rows["Promoted at"] == "n/a"
    assert rows["Architecture"] == "MLP 784 → 8 → 8 → 10 (dropout 0.2, batch norm)"


# --------------------------------------------------------------------------- reading


def test_model_reads_held_out_mnist_digits(
    predictor: Predictor, mnist: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist
    readings = [serving.read(predictor, image) for image in images[HELD_OUT]]
    predicted = np.array([int(r.prediction.label) for r in readings])
    assert (predicted == labels[HELD_OUT]).mean() > 0.85
    np.testing.assert_array_equal(readings[0].image, images[HELD_OUT][0])
    assert readings[0].ocr is None and "off" in readings[0].ocr_note


@pytest.mark.parametrize(("strokes", "digit"), [([one_stroke()], "1"), ([zero_stroke()], "0")])
def test_drawn_digits_on_the_canvas_are_read(
    predictor: Predictor, strokes: list, digit: str
) -> None:
    reading = serving.read(predictor, canvas_rgba(strokes))
    assert reading.prediction.label == digit
    assert reading.image.shape == (28, 28) and reading.image.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "rgba",
    [
        None,
        np.zeros((280, 280, 4), np.uint8),  # untouched transparent canvas
        canvas_rgba([]),  # opaque black, no strokes
        canvas_rgba([[(140, 140), (141, 140)]], width=1),  # a stray speck
    ],
    ids=["no-image-yet", "transparent", "black", "speck"],
)
def test_empty_or_nearly_empty_canvas_gives_no_guess(
    predictor: Predictor, rgba: np.ndarray | None
) -> None:
    with pytest.raises(EmptyImageError):
        serving.read(predictor, rgba)
    assert "Draw a digit first" in answers.EMPTY_CANVAS_MESSAGE


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _paper_photo(mnist: tuple[np.ndarray, np.ndarray], index: int) -> Image.Image:
    """An MNIST digit as a scan would show it: dark ink on light paper, 140x140 RGB."""
    images, _ = mnist
    ink = (255 - np.round(images[index] * 255)).astype(np.uint8)
    return Image.fromarray(ink).resize((140, 140), Image.Resampling.BILINEAR).convert("RGB")


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_uploaded_picture_is_read(
    predictor: Predictor, mnist: tuple[np.ndarray, np.ndarray], fmt: str, suffix: str
) -> None:
    _, labels = mnist
    indices = range(HELD_OUT.start, HELD_OUT.start + 20)
    correct = sum(
        serving.read(
            predictor, uploads.check_upload(f"digit.{suffix}", _png(_paper_photo(mnist, i), fmt))
        ).prediction.label
        == str(labels[i])
        for i in indices
    )
    assert correct >= 16


def test_blank_upload_gives_no_guess(predictor: Predictor) -> None:
    blank = _png(Image.new("RGB", (100, 100), "white"))
    with pytest.raises(EmptyImageError):
        serving.read(predictor, uploads.check_upload("blank.png", blank))


@pytest.mark.parametrize(
    ("name", "data", "limit", "expected"),
    [
        ("notes.txt", b"hello", None, "not a supported image type"),
        ("digit.png", b"", None, "empty"),
        ("digit.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, None, "could not be read"),
        ("digit.jpg", b"GIF89a but not really", None, "could not be read"),
        ("digit.png", None, 1000, "the limit is"),
    ],
    ids=["wrong-type", "empty", "corrupt-png", "garbage", "too-large"],
)
def test_bad_uploads_give_clear_errors(
    name: str, data: bytes | None, limit: int | None, expected: str
) -> None:
    if data is None:
        data = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)))
    kwargs = {"max_bytes": limit} if limit else {}
    with pytest.raises(uploads.UploadError, match=expected) as info:
        uploads.check_upload(name, data, **kwargs)
    assert name in str(info.value)


def test_upload_with_too_many_pixels_is_refused_before_decoding() -> None:
    data = _png(Image.new("L", (300, 300), 255))
    with pytest.raises(uploads.UploadError, match="pixels"):
        uploads.check_upload("big.png", data, max_pixels=200 * 200)
    assert uploads.check_upload("big.png", data).size == (300, 300)


def test_upload_types_cover_the_required_formats() -> None:
    assert set(uploads.UPLOAD_TYPES) >= {"png", "jpg", "jpeg", "bmp", "gif", "webp"}


# --------------------------------------------------------------------------- Tesseract beside the model


def test_missing_tesseract_becomes_a_note_not_a_crash(
    predictor: Predictor, mnist: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TESSERACT_CMD", raising=False)
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    reading = serving.read(predictor, mnist[0][HELD_OUT][0], tesseract=TesseractReader())
    assert reading.ocr is None and reading.agrees is None
    assert (
        "not available" in reading.ocr_note and "apt-get install tesseract-ocr" in reading.ocr_note
    )
    assert answers.tesseract_answer(reading.ocr, reading.ocr_note) == reading.ocr_note
    assert reading.prediction.label == str(mnist[1][HELD_OUT][0])  # the model still answers
    assert tesseract_binary.tesseract_status().startswith("Tesseract not found")


@pytest.mark.skipif(not tesseract_available(), reason="tesseract is not installed")
def test_tesseract_reads_the_same_input(
    predictor: Predictor, mnist: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist
    reader = serving.make_reader(predictor.classes)
    readings = [serving.read(predictor, images[i], tesseract=reader) for i in range(9000, 9010)]
    assert all(r.ocr is not None and r.ocr_note is None for r in readings)
    read = [r for r in readings if not r.ocr.rejected]
    assert all(r.ocr.text in "0123456789" and 0 <= r.ocr.confidence <= 1 for r in read)
    for r in read:
        assert answers.tesseract_answer(r.ocr, r.ocr_note).startswith(f"Tesseract reads **{r.ocr.text}**")
        assert r.agrees == (r.ocr.text == r.prediction.label)
    assert tesseract_binary.tesseract_status().startswith("Tesseract ")


def test_tesseract_whitelist_follows_the_model_classes() -> None:
    assert serving.tesseract_whitelist([str(d) for d in range(10)]) == "0123456789"
    assert serving.tesseract_whitelist(["a", "b", "B", "a"]) == "abB"
    assert serving.tesseract_whitelist(["ten", " ", "'"]) == "0123456789"


def test_tesseract_answer_and_agreement(
    predictor: Predictor, mnist: tuple[np.ndarray, np.ndarray]
) -> None:
    prediction = predictor.predict(mnist[0][HELD_OUT][0])
    same = serving.Reading(prediction=prediction, ocr=OcrResult(prediction.label, 0.87, False))
    assert same.agrees is True
    assert answers.tesseract_answer(same.ocr, same.ocr_note) == f"Tesseract reads **{prediction.label}** (confidence 87 %)."
    other = "1" if prediction.label != "1" else "2"
    assert serving.Reading(prediction=prediction, ocr=OcrResult(other, None, False)).agrees is False
    rejected = serving.Reading(prediction=prediction, ocr=OcrResult.reject())
    assert rejected.agrees is None and "nothing usable" in answers.tesseract_answer(rejected.ocr, rejected.ocr_note)


# --------------------------------------------------------------------------- number mode


def test_a_number_drawn_on_the_wide_canvas_is_read(predictor: Predictor) -> None:
    rgba = canvas_rgba(ten_strokes(), size=NUMBER_CANVAS)
    assert rgba.shape == (NUMBER_CANVAS[1], NUMBER_CANVAS[0], 4)
    line = serving.read(predictor, rgba, number=True)
    assert line.number.text == "10"
    one, zero = line.number.characters
    assert one.bbox[2] <= zero.bbox[0]  # the "1" is left of the "0", boxes apart
    assert line.number.ink.shape == rgba.shape[:2]
    assert line.ocr is None and "off" in line.ocr_note and line.agrees is None


@pytest.mark.parametrize(
    "rgba",
    [
        None,
        np.zeros((200, 700, 4), np.uint8),
        canvas_rgba([], size=NUMBER_CANVAS),
        canvas_rgba([[(350, 100), (351, 100)]], width=1, size=NUMBER_CANVAS),
    ],
    ids=["no-image-yet", "transparent", "black", "speck"],
)
def test_empty_number_canvas_gives_no_guess(predictor: Predictor, rgba: np.ndarray | None) -> None:
    with pytest.raises(EmptyImageError):
        serving.read(predictor, rgba, number=True)


def test_uploaded_picture_of_a_number_is_read(predictor: Predictor) -> None:
    """A photo-like upload: dark ink on light grey paper, RGB JPEG."""
    strokes = canvas_rgba(ten_strokes(), size=NUMBER_CANVAS)[..., 0].astype(np.float32) / 255
    paper = np.round(230 - 200 * strokes).astype(np.uint8)
    data = _png(Image.fromarray(paper).convert("RGB"), "JPEG")
    line = serving.read(predictor, uploads.check_upload("number.jpg", data), number=True)
    assert line.number.text == "10"
    with pytest.raises(EmptyImageError):
        serving.read(predictor, uploads.check_upload("blank.png", _png(Image.new("L", (300, 100), 230))),
                     number=True)
    with pytest.raises(uploads.UploadError, match="not a supported image type"):
        uploads.check_upload("number.txt", data)


def test_missing_tesseract_on_a_line_is_a_note(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TESSERACT_CMD", raising=False)
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    rgba = canvas_rgba(ten_strokes(), size=NUMBER_CANVAS)
    line = serving.read(predictor, rgba, number=True, tesseract=TesseractReader())
    assert line.ocr is None and "not available" in line.ocr_note
    assert answers.tesseract_answer(line.ocr, line.ocr_note, line=True) == line.ocr_note
    assert line.number.text == "10"


@pytest.mark.skipif(not tesseract_available(), reason="tesseract is not installed")
def test_tesseract_reads_the_whole_line(predictor: Predictor) -> None:
    rgba = canvas_rgba(ten_strokes(), size=NUMBER_CANVAS)
    line = serving.read(predictor, rgba, number=True, tesseract=serving.make_reader(predictor.classes))
    assert line.ocr is not None and line.ocr_note is None
    if not line.ocr.rejected:
        assert set(line.ocr.text) <= set("0123456789")
        assert answers.tesseract_answer(line.ocr, line.ocr_note, line=True).startswith(f"Tesseract reads **{line.ocr.text}**")
        assert line.agrees == (line.ocr.text == "10")


def test_tesseract_answer_on_a_line_and_agreement(predictor: Predictor) -> None:
    number = serving.read(predictor, canvas_rgba(ten_strokes(), size=NUMBER_CANVAS),
                          number=True).number
    same = serving.Reading(number=number, ocr=OcrResult("10", 0.5, False))
    assert same.agrees is True
    assert answers.tesseract_answer(same.ocr, same.ocr_note, line=True) == "Tesseract reads **10** (confidence 50 %)."
    assert serving.Reading(number=number, ocr=OcrResult("1", None, False)).agrees is False
    rejected = serving.Reading(number=number, ocr=OcrResult.reject())
    assert rejected.agrees is None and "nothing usable" in answers.tesseract_answer(rejected.ocr, rejected.ocr_note, line=True)
    assert answers.character_caption(number.characters[0]).startswith("1 · ")
    assert answers.character_caption(number.characters[0]).endswith(" %")


def test_texts_follow_the_model_alphabet() -> None:
    digits = [str(d) for d in range(10)]
    letters = [chr(ord("A") + i) for i in range(26)]
    assert answers.character_noun(digits) == "digit"
    for classes in (letters, digits[:9], [*digits, "A"], digits[::-1]):
        assert answers.character_noun(classes) == "character"
    assert answers.mode_labels(digits) == {
        "single": "Single digit",
        "number": "Number (several digits)",
    }
    assert answers.mode_labels(letters) == {
        "single": "Single character",
        "number": "Text (several characters)",
    }
    assert "Draw a character first" in answers.empty_canvas_message("character")
    assert "No character found" in answers.empty_upload_message("character")
    assert "Write a number first" in answers.EMPTY_NUMBER_MESSAGE
    assert "Write some characters first" in answers.empty_number_message("character")
    assert "digit" not in answers.empty_number_message("character")


def test_grouping_colours_each_characters_ink_and_box(predictor: Predictor) -> None:
    """From pixels: the ink inside each box in that character's colour, the box around it."""
    number = serving.read(predictor, canvas_rgba(ten_strokes(), size=NUMBER_CANVAS),
                          number=True).number
    picture = pictures.grouping(number)
    assert picture.shape == (*number.ink.shape, 3) and picture.dtype == np.uint8
    for index, (x0, y0, x1, y1) in enumerate(number.bboxes):
        inside = picture[y0:y1, x0:x1][number.ink[y0:y1, x0:x1] > 0.99]
        assert len(inside) and (inside == pictures._rgb(pictures.colour(index))).all()
        assert (picture[y0 - 1, (x0 + x1) // 2] == pictures._rgb(pictures.colour(index))).all()
    assert (picture[5, 690] == 0).all()  # no ink, no box: black


def test_grouping_from_strokes_colours_each_characters_own_strokes() -> None:
    """Two overlapping boxes: each stroke keeps its own character's colour."""
    from handwriting.reading import CharacterReading, NumberReading
    from handwriting.stroke_format import StrokeDrawing

    drawing = StrokeDrawing((np.array([[20.0, 10], [20, 90]]), np.array([[15.0, 50], [80, 50]])),
                            100, 100, 8.0)
    chars = tuple(CharacterReading(str(i), 0.9, box, np.zeros((28, 28)), np.ones(10) / 10,
                                   tuple("0123456789"), strokes=(i, i + 1))
                  for i, box in enumerate([(16, 6, 24, 94), (11, 46, 84, 54)]))
    number = NumberReading("01", chars, 0.81, 0.9, tuple("0123456789"), np.zeros((100, 100)))
    picture = pictures.grouping(number, drawing)
    assert (picture[80, 20] == pictures._rgb(pictures.colour(0))).all()  # the upright stroke
    assert (picture[50, 60] == pictures._rgb(pictures.colour(1))).all()  # the crossing one


def test_character_tiles_wrap_and_escape_captions() -> None:
    html = pictures.character_tiles([np.zeros((28, 28))] * 3, ["1 · 90 %", "<b>", "7 · 50 %"])
    assert html.count("<figure") == 3 and "flex-wrap:wrap" in html
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert pictures.colour(0) in html and pictures.colour(2) in html


# --------------------------------------------------------------------------- display helpers


def test_probability_frame_marks_exactly_the_top_k(
    predictor: Predictor, mnist: tuple[np.ndarray, np.ndarray]
) -> None:
    prediction = predictor.predict(mnist[0][HELD_OUT][3])
    frame = pictures.probability_frame(prediction, k=3)
    assert list(frame["class"]) == prediction.classes
    assert frame["probability"].sum() == pytest.approx(1.0, abs=1e-5)
    assert frame["top_k"].sum() == 3
    assert frame.loc[frame["rank"] == 1, "class"].item() == prediction.label
    top = {label for label, _ in prediction.top_k(3)}
    assert set(frame.loc[frame["top_k"], "class"]) == top
    assert sorted(frame["rank"]) == list(range(1, 11))


def test_enlarge_is_nearest_neighbour() -> None:
    image = np.zeros((28, 28), np.float32)
    image[3, 5] = 1.0
    image[10, 10] = 0.5
    big = pictures.enlarge(image, scale=4)
    assert big.shape == (112, 112) and big.dtype == np.uint8
    assert (big[12:16, 20:24] == 255).all() and big[11, 20] == 0 and big[12, 24] == 0
    assert (big[40:44, 40:44] == 128).all()
    assert set(np.unique(big)) == {0, 128, 255}  # no interpolated values
    with pytest.raises(ValueError):
        pictures.enlarge(image, scale=0)


def test_format_accuracy() -> None:
    assert model_card.format_accuracy(0.98765) == "98.77 %"
    assert model_card.format_accuracy(None) == "n/a"
