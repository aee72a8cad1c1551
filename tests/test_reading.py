"""handwriting.reading (whole numbers with a single-character model) and the `read-number`
CLI; and benchmarks/stroke_numbers.py's score, which decides what a number's score means.

Numbers are composed from real held-out MNIST digits of the packaged sample and read by
a small MLP trained in-process (about a second), so the strings are checked against
real labels. The digits used are ones the model reads confidently on their own and that
are one connected stroke, so a failure points at reading/segmentation, not the tiny model.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from benchmarks.stroke_numbers import score
from handwriting import cli
from handwriting.inference import Predictor
from handwriting.model import MLPClassifier
from handwriting.preprocessing import EmptyImageError, center_like_mnist
from handwriting.reading import NumberReading, read_number
from tests.browser_helpers import write_promoted_model

HELD_OUT = range(9000, 10000)  # train_tiny_model trains on the first 6000
LETTERS = [chr(ord("A") + i) for i in range(26)]


@pytest.fixture(scope="module")
def predictor(trained_model: MLPClassifier) -> Predictor:
    return Predictor(trained_model)


@pytest.fixture(scope="module")
def clear_digits(mnist, predictor: Predictor) -> dict[str, np.ndarray]:
    """One held-out example per digit: read right with > 95 % on its own, one stroke."""
    images, labels = mnist
    probs = predictor.probabilities(np.stack([center_like_mnist(images[i]) for i in HELD_OUT]))
    chosen: dict[str, np.ndarray] = {}
    for offset, index in enumerate(HELD_OUT):
        label = str(labels[index])
        if label in chosen or probs[offset].argmax() != labels[index] or probs[offset].max() < 0.95:
            continue
        if ndimage.label(images[index] > 0.35, structure=np.ones((3, 3)))[1] == 1:
            chosen[label] = images[index]
    assert len(chosen) == 10, f"no clear held-out example for {set('0123456789') - set(chosen)}"
    return chosen


def separated(text: str, digits: dict[str, np.ndarray], height: int = 60) -> np.ndarray:
    """``text`` written with the chosen digits (ink scaled to ``height`` px, as an MNIST
    digit's ink is about 20 of its 28 px), half a digit height apart, white on black."""
    glyphs = []
    for char in text:
        digit = np.asarray(digits[char], dtype=np.float32)
        digit = digit / 255.0 if digit.max() > 1.0 else digit
        rows, cols = np.nonzero(digit > 0.05)
        crop = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        size = (round(crop.shape[1] * height / 20), round(crop.shape[0] * height / 20))
        glyph = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
        glyphs.append(np.clip(glyph, 0.0, 1.0))
    margin, gap = height // 3, np.zeros((1, height // 2), np.float32)
    tall = max(g.shape[0] for g in glyphs)
    line = [np.pad(g, (((tall - g.shape[0]) // 2, (tall - g.shape[0] + 1) // 2), (0, 0)))
            for g in glyphs]
    parts = [piece for glyph in line for piece in (glyph, np.repeat(gap, tall, axis=0))][:-1]
    return np.pad(np.hstack(parts), margin)


def as_png(white_on_black: np.ndarray) -> bytes:
    """Dark ink on white paper, as a scan or photo of a number arrives."""
    buffer = io.BytesIO()
    Image.fromarray(np.round((1 - white_on_black) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- read_number


@pytest.mark.parametrize("text", ["2026", "907", "13", "5841", "68"])
def test_separated_digits_are_read_as_the_right_number(
    text: str, clear_digits, predictor: Predictor
) -> None:
    reading = read_number(separated(text, clear_digits), predictor)
    assert isinstance(reading, NumberReading)
    assert reading.text == text
    assert reading.labels == list(text)
    xs = [box[0] for box in reading.bboxes]
    assert xs == sorted(xs) and len(set(xs)) == len(text)  # left to right, one box each
    assert reading.images.shape == (len(text), 28, 28)
    confidences = [c.confidence for c in reading.characters]
    assert reading.confidence == pytest.approx(float(np.prod(confidences)))
    assert reading.min_confidence == pytest.approx(min(confidences))
    assert 0 < reading.confidence <= reading.min_confidence <= 1


def test_each_character_is_what_the_model_reads_on_its_own(
    clear_digits, predictor: Predictor
) -> None:
    """The batch read equals one-at-a-time predictions of the same 28x28 inputs, and
    those inputs are MNIST-like: centred, ink at full strength."""
    reading = read_number(separated("4719", clear_digits), predictor)
    for character in reading.characters:
        alone = predictor.predict(character.image)
        assert character.label == alone.label
        assert character.confidence == pytest.approx(alone.confidence, abs=1e-6)
        assert character.top_k(1) == [(alone.label, pytest.approx(alone.confidence, abs=1e-6))]
        com = ndimage.center_of_mass(character.image)
        assert abs(com[0] - 14) < 1.5 and abs(com[1] - 14) < 1.5
        assert character.image.max() == pytest.approx(1.0)


def test_any_input_form_and_polarity_gives_the_same_reading(
    clear_digits, predictor: Predictor, tmp_path: Path
) -> None:
    ink = separated("380", clear_digits)
    png = as_png(ink)
    path = tmp_path / "number.png"
    path.write_bytes(png)
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)  # canvas: white strokes, transparent rest
    rgba[..., :3] = 255
    rgba[..., 3] = np.round(ink * 255).astype(np.uint8)
    grey_paper = 0.8 - 0.6 * ink  # dark ink on grey paper, float
    for image in (ink, png, path, str(path), Image.open(io.BytesIO(png)), rgba, grey_paper):
        assert read_number(image, predictor).text == "380", type(image)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((200, 700), dtype=np.float32),
        np.zeros((200, 700, 4), dtype=np.uint8),  # an untouched, transparent canvas
        np.full((200, 700, 3), 255, dtype=np.uint8),  # blank white paper
        np.pad(np.ones((1, 1), np.float32), ((100, 99), (300, 399))),  # one stray pixel
    ],
    ids=["black", "transparent-canvas", "white-paper", "one-pixel"],
)
def test_empty_image_raises(image: np.ndarray, predictor: Predictor) -> None:
    with pytest.raises(EmptyImageError, match="empty"):
        read_number(image, predictor)


def test_segmentation_options_are_passed_on(clear_digits, predictor: Predictor) -> None:
    image = separated("00", clear_digits)
    assert read_number(image, predictor).text == "00"
    # Calling anything wider than 0.3 x its height "several characters" cuts each 0 in two.
    cut = read_number(image, predictor, segmentation={"wide_ratio": 0.3})
    assert len(cut.characters) == 4


def letters_predictor(digit_model: MLPClassifier) -> tuple[Predictor, dict[str, str]]:
    """A 26-class model with classes "A".."Z" whose outputs are the digit model's, each
    digit's logit moved to a different letter (digit d -> letter (7d + 3) mod 26) and the
    other 16 letters never winning; returns the model and the digit -> letter map."""
    letter_of = {str(d): LETTERS[(7 * d + 3) % 26] for d in range(10)}
    model = MLPClassifier(hidden_sizes=(64,), num_classes=26, class_names=LETTERS)
    state = digit_model.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            if name.startswith("net.0."):
                model.state_dict()[name].copy_(value)
        weight, bias = model.net[-1].weight, model.net[-1].bias
        weight.zero_()
        bias.fill_(-100.0)
        for d in range(10):
            row = LETTERS.index(letter_of[str(d)])
            weight[row] = state["net.2.weight"][d]
            bias[row] = state["net.2.bias"][d]
    return Predictor(model.eval()), letter_of


def test_a_letters_model_reads_letters(
    clear_digits, trained_model: MLPClassifier, predictor: Predictor
) -> None:
    letters, letter_of = letters_predictor(trained_model)
    image = separated("2907", clear_digits)
    reading = read_number(image, letters)
    assert reading.text == "".join(letter_of[c] for c in "2907")  # "RMDY"
    assert reading.text.isalpha() and reading.text.isupper()
    assert list(reading.classes) == LETTERS
    digits = read_number(image, predictor)
    assert [c.confidence for c in reading.characters] == pytest.approx(
        [c.confidence for c in digits.characters], abs=1e-4
    )


# --------------------------------------------------------------------------- CLI


def test_cli_read_number_prints_the_string_and_confidences(
    clear_digits, trained_model: MLPClassifier, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir = tmp_path / "model"
    write_promoted_model(model_dir, trained_model)
    number, blank = tmp_path / "number.png", tmp_path / "blank.png"
    number.write_bytes(as_png(separated("4096", clear_digits)))
    Image.new("L", (300, 100), 255).save(blank)

    assert cli.main(["read-number", str(number), "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{number}: 4096  (confidence ")
    assert "least sure character" in out[0]
    assert [part.split()[0] for part in out[1].split("  ") if part.strip()] == list("4096")
    assert out[1].count("%") == 4

    assert cli.main(["read-number", str(blank), str(number), "--model", str(model_dir)]) == 1
    captured = capsys.readouterr()
    assert f"{blank}: error:" in captured.err and "empty" in captured.err
    assert f"{number}: 4096" in captured.out  # the other file is still read


# --------------------------------------------------------------------------- benchmark pieces


def test_scores_whole_and_per_character() -> None:
    result = score(["123", "45", "", "7890123", "6202"], ["123", "456", "78", "78", "2026"])
    assert result["whole_accuracy"] == 0.2
    # edit distances 0, 1, 2 (an empty answer), 5 capped at 2, 2 (a swap is two edits)
    assert result["char_accuracy"] == pytest.approx(1 - 7 / 14)
    assert result["right_length"] == 0.4 and result["empty"] == 0.2
    assert score([], [])["whole_accuracy"] is None
