"""Stroke-aware reading of numbers (handwriting/stroke_reading.py), the stroke JSON format
(handwriting/stroke_format.py), ``handwriting read-number --strokes`` and a smoke run of
benchmarks/stroke_numbers.py. Synthetic strokes and a template classifier: no shared data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common, stroke_numbers
from handwriting import cli
from handwriting.data.pendigits import TRAIN_FILE
from handwriting.preprocessing import EmptyImageError, prepare_image
from handwriting.reading import read_number
from handwriting.stroke_format import StrokeDrawing, StrokeFormatError, load_strokes, loads_strokes
from handwriting.stroke_reading import read_strokes, render_group
from tests.browser_helpers import load_mnist_sample, train_tiny_model, write_promoted_model
from tests.test_real_drawings import unipen_text

_T = np.linspace(0.0, 2 * np.pi, 30)
# Unit box, y DOWN (canvas coordinates); several digits are drawn with two strokes.
SHAPES: dict[str, list[np.ndarray]] = {
    "0": [np.stack([0.5 + 0.4 * np.sin(_T), 0.5 - 0.5 * np.cos(_T)], axis=1)],
    "1": [np.array([[0.3, 0.2], [0.5, 0.0], [0.5, 1.0]])],
    "4": [np.array([[0.6, 0.0], [0.0, 0.65], [1.0, 0.65]]), np.array([[0.7, 0.3], [0.7, 1.0]])],
    "5": [np.array([[0.1, 0.0], [0.05, 0.45], [0.8, 0.45], [0.9, 0.8], [0.5, 1.0], [0.0, 0.9]]),
          np.array([[0.1, 0.0], [0.9, 0.0]])],
    "7": [np.array([[0.0, 0.0], [1.0, 0.0], [0.35, 1.0]])],
    "9": [np.stack([0.5 + 0.4 * np.sin(_T), 0.25 - 0.25 * np.cos(_T)], axis=1),
          np.array([[0.9, 0.25], [0.8, 1.0]])],
}
PEN = 12.0


def _dense(stroke: np.ndarray, step: float = 0.05) -> np.ndarray:
    out = [stroke[:1]]
    for a, b in zip(stroke[:-1], stroke[1:], strict=True):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        out.append(a + (b - a) * np.linspace(0, 1, n + 1)[1:, None])
    return np.concatenate(out)


def number(text: str, gap: float = 0.4, height: float = 100.0, seed: int = 0) -> list[np.ndarray]:
    """Strokes of ``text`` on a line, in writing order; ``gap`` between ink boxes in heights
    (negative: the boxes overlap)."""
    rng = np.random.default_rng(seed)
    strokes, x = [], 20.0
    for char in text:
        width = 0.6 * height
        left, right = (f(np.concatenate(SHAPES[char])[:, 0]) * width for f in (np.min, np.max))
        for stroke in SHAPES[char]:
            points = _dense(stroke) * [width, height] + [x - left, 30.0]
            strokes.append(points + rng.normal(0, 0.5, points.shape))
        x += right - left + PEN + gap * height
    return strokes


class TemplateClassifier:
    """Reads by the nearest drawn template: a real reader of these shapes, not a stub."""

    classes = list(SHAPES)

    def __init__(self) -> None:
        self.templates = np.stack([prepare_image(render_group(number(c), PEN)[0]) for c in SHAPES])

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        distance = ((images[:, None] - self.templates[None]) ** 2).sum(axis=(2, 3))
        logits = -distance / 15.0
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def reader() -> TemplateClassifier:
    return TemplateClassifier()


def test_separated_digits_are_read_in_order_with_boxes(reader):
    reading = read_strokes(number("1970"), reader, stroke_width=PEN)
    assert reading.text == "1970"
    assert len(reading.characters) == 4
    lefts = [c.bbox[0] for c in reading.characters]
    assert lefts == sorted(lefts) and all(0 < c.confidence <= 1 for c in reading.characters)


def test_two_stroke_digits_stay_one_character(reader):
    reading = read_strokes(number("4559", gap=0.25), reader, stroke_width=PEN)
    assert reading.text == "4559"
    assert [c.image.shape for c in reading.characters] == [(28, 28)] * 4


@pytest.mark.parametrize("text", ["70", "417", "0459"])
def test_overlapping_boxes_are_split_by_stroke_order(reader, text):
    strokes = number(text, gap=-0.2)
    reading = read_strokes(strokes, reader, stroke_width=PEN)
    assert reading.text == text
    boxes = reading.bboxes
    assert all(a[2] > b[0] for a, b in zip(boxes[:-1], boxes[1:], strict=True))  # boxes do overlap


def test_empty_and_bad_strokes_are_refused(reader):
    with pytest.raises(EmptyImageError):
        read_strokes([np.zeros((0, 2))], reader)
    with pytest.raises((ValueError, StrokeFormatError)):
        read_strokes([np.array([[0.0, np.nan], [1.0, 2.0]])], reader)


def test_json_round_trip_keeps_strokes_and_canvas(reader):
    drawing = StrokeDrawing.fit(number("45"), PEN, width=700, height=200)
    again = loads_strokes(drawing.to_json())
    assert (again.width, again.height, again.stroke_width) == (700, 200, PEN)
    assert len(again.strokes) == len(drawing.strokes) == 4
    assert all(np.allclose(a, b, atol=0.01) for a, b in zip(again.strokes, drawing.strokes, strict=True))
    assert read_strokes(again, reader).text == "45"
    assert read_number(again, reader).text == "45"  # read_number takes strokes too


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"lines": []}', 'expected an object with "strokes"'),
    ('{"strokes": [[[1, 2], [3]]]}', "strokes[0][1] must be a point"),
    ('{"strokes": [[[1, "a"]]]}', "strokes[0][0] must be a finite number"),
    ('{"strokes": [[]]}', "no strokes"),
    ('{"strokes": [[[1, 2]]], "stroke_width": -3}', "stroke_width must be > 0"),
    ('{"strokes": [[[1, 2]]], "colour": 1}', "unknown keys"),
])
def test_bad_stroke_json_says_what_is_wrong(text, message):
    with pytest.raises(StrokeFormatError, match=None) as error:
        loads_strokes(text, source="drawing.json")
    assert message in str(error.value) and "drawing.json" in str(error.value)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = load_mnist_sample()
    folder = tmp_path_factory.mktemp("stroke_model") / "promoted"
    write_promoted_model(folder, train_tiny_model(images, labels, n=3000))
    return folder


def test_cli_reads_a_stroke_file_and_reports_a_bad_one(tiny_model, tmp_path, capsys):
    good = tmp_path / "number.json"
    good.write_text(StrokeDrawing.fit(number("17"), PEN).to_json())
    assert load_strokes(good).width > 0
    bad = tmp_path / "bad.json"
    bad.write_text("[[[1, 2]")
    status = cli.main(["read-number", "--strokes", str(good), "--strokes", str(bad), "--model", str(tiny_model)])
    out, err = capsys.readouterr()
    assert status == 1
    line = out.splitlines()[0]
    assert line.startswith(f"{good}: ") and "confidence" in line
    assert len(out.splitlines()[1].split("%")) == 3  # two characters, each with a confidence
    assert f"{bad}: error:" in err and "not valid JSON" in err
    assert cli.main(["read-number", "--model", str(tiny_model)]) == 2
    assert "--strokes" in capsys.readouterr().err


def test_benchmark_smoke_on_a_synthetic_unipen_file(tiny_model, tmp_path):
    unipen = tmp_path / TRAIN_FILE
    unipen.write_text(unipen_text(samples=1))
    out, raw = tmp_path / "STROKES.md", tmp_path / "STROKES.json"
    assert stroke_numbers.main([
        "--checkpoint", str(tiny_model / "model.ckpt"), "--unipen-file", str(unipen),
        "--val-writers", "2", "--test-writers", "2", "--n", "3", "--max-digits", "4",
        "--tesseract", "0", "--out", str(out), "--json-out", str(raw)]) == 0
    payload = json.loads(raw.read_text())
    results = payload["results"]
    assert set(results) == {stroke_numbers.STROKE_READER, stroke_numbers.PIXEL_READER, stroke_numbers.APART}
    for row in results.values():
        assert row["all"]["n"] == 9
        for spacing in stroke_numbers.SPACINGS:
            assert row[spacing]["n"] == 3 and 0.0 <= row[spacing]["char_accuracy"] <= 1.0
    assert results[stroke_numbers.APART]["all"]["right_length"] == 1.0  # true grouping: exact count
    text = out.read_text()
    assert re.search(r"^\| strokes \(read_strokes\) +\| 9 +\|", text, re.M)
    assert text.count(" -> met") + text.count(" -> NOT met") == 9  # 3 targets x 3 spacings
    assert common.run_main(stroke_numbers.main, ["--checkpoint", str(tmp_path / "nope.ckpt")]) == 2


def test_a_short_hook_is_part_of_a_digit_not_a_digit_of_its_own():
    """However sure the classifier is of each piece, a stroke far shorter than the line's
    characters (the hook of a "2" drawn apart) joins its neighbour; without the height
    rule the same pieces would be read as two characters."""
    from handwriting.stroke_reading import GroupingWeights, _ranges, group_strokes

    hook = np.array([[0.0, 70.0], [10.0, 90.0]])
    stem = np.array([[15.0, 0.0], [35.0, 100.0]])
    tall = np.array([[80.0, 0.0], [80.0, 100.0]])
    strokes = [hook, stem, tall]
    ranges = _ranges(strokes, PEN)
    keys = [(a, b) for a in range(3) for b in range(a + 1, 4)]
    boxes = {(a, b): (int(ranges[a:b, 0].min()), int(ranges[a:b, 1].min()),
                      int(ranges[a:b, 2].max()), int(ranges[a:b, 3].max())) for a, b in keys}
    sure = {key: np.array([0.99, 0.01]) for key in keys}
    assert group_strokes(strokes, PEN, sure, boxes) == [(0, 2), (2, 3)]
    without = GroupingWeights(small_penalty=0.0)
    assert group_strokes(strokes, PEN, sure, boxes, without)[:2] == [(0, 1), (1, 2)]


class SureOfEverything:
    """Reads every candidate as a sure "1": only the grouping rules decide."""

    classes = ["1", "4"]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.tile([0.99, 0.01], (len(images), 1))


def test_a_writer_who_leaves_gaps_keeps_a_two_stroke_digit_together():
    """A "1", a gap, then a "4" in two strokes whose second stroke reaches past the first:
    read alone each stroke looks like a character, but this writer leaves gaps between
    characters, so the second stroke belongs to the first."""
    from handwriting.stroke_reading import GroupingWeights

    one = np.array([[5.0, 0.0], [5.0, 100.0]])
    corner = np.array([[120.0, 0.0], [100.0, 60.0], [150.0, 60.0]])
    stem = np.array([[140.0, 20.0], [170.0, 100.0]])
    drawing = StrokeDrawing.fit([one, corner, stem], PEN)
    reading = read_strokes(drawing, SureOfEverything())
    assert [c.strokes for c in reading.characters] == [(0, 1), (1, 3)]
    no_spacing_rule = GroupingWeights(spaced_inside_penalty=GroupingWeights().inside_penalty)
    split = read_strokes(drawing, SureOfEverything(), weights=no_spacing_rule)
    assert [c.strokes for c in split.characters] == [(0, 1), (1, 2), (2, 3)]
