"""The number canvas's strokes as the app reads them (issue 13): fabric.js paths recorded
in headless Chromium become the strokes the canvas drew, and reading a drawing by its
strokes goes through the one ``serving.read`` entry point.

``tests/data/fabric_canvas.json`` is streamlit-drawable-canvas's ``json_data`` for three
strokes drawn with the mouse on the 700x200 canvas (a wiggle, a circle, a dot), and
``fabric_canvas.png`` the canvas's own pixels of the same drawing (its red channel).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handwriting import serving
from handwriting.preprocessing import EmptyImageError
from handwriting.render import draw_ink
from handwriting.stroke_format import StrokeDrawing, from_canvas
from tests.browser_helpers import NUMBER_CANVAS, canvas_rgba, ten_strokes

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def recorded() -> tuple[list, np.ndarray]:
    objects = json.loads((DATA / "fabric_canvas.json").read_text())["objects"]
    pixels = np.asarray(Image.open(DATA / "fabric_canvas.png"), dtype=np.float32) / 255
    return objects, pixels


def test_canvas_paths_become_the_strokes_the_canvas_drew(recorded) -> None:
    objects, pixels = recorded
    drawing = from_canvas(objects, *NUMBER_CANVAS)
    assert drawing is not None and len(drawing.strokes) == 3 and drawing.stroke_width == 20
    assert drawing.strokes[0][0] == pytest.approx([50, 40], abs=0.5)  # where the mouse went down
    ink = draw_ink(list(drawing.strokes), drawing.stroke_width, pixels.shape)
    differ = np.abs(ink - pixels) > 0.5
    assert differ.sum() < 0.05 * (pixels > 0.5).sum()  # the same ink, up to the edges
    assert (ink > 0.5).sum() == pytest.approx((pixels > 0.5).sum(), rel=0.05)


def test_nothing_drawn_or_other_objects_give_no_strokes(recorded) -> None:
    objects, _ = recorded
    assert from_canvas([], *NUMBER_CANVAS) is None
    rect = {"type": "rect", "left": 0, "top": 0, "width": 10, "height": 10}
    assert from_canvas([rect, "junk", {"type": "path", "path": []}], *NUMBER_CANVAS) is None
    assert len(from_canvas([rect, *objects], *NUMBER_CANVAS).strokes) == 3


def test_strokes_and_pixels_go_through_one_read(trained_model) -> None:
    from handwriting.inference import Predictor

    predictor = Predictor(trained_model)
    strokes = ten_strokes()
    drawing = StrokeDrawing.fit(strokes, 20.0, *NUMBER_CANVAS)
    by_strokes = serving.read(predictor, drawing, number=True)
    by_pixels = serving.read(predictor, canvas_rgba(strokes, size=NUMBER_CANVAS), number=True)
    assert by_strokes.text == by_pixels.text == "10"
    assert [c.strokes for c in by_strokes.number.characters] == [(0, 1), (1, 2)]
    assert all(c.strokes is None for c in by_pixels.number.characters)
    one = serving.read(predictor, StrokeDrawing.fit([strokes[0]], 20.0, *NUMBER_CANVAS))
    assert one.prediction is not None and one.text == "1"
    with pytest.raises(EmptyImageError, match="Write"):
        serving.read(predictor, None, number=True, empty_message="Write a number first.")
    with pytest.raises(ValueError, match="either"):
        serving.Reading()
