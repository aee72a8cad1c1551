"""A small JSON format for pen strokes, so any front end (a web canvas, a tablet app, a
test) can hand a drawn number to ``handwriting read-number --strokes`` or
``stroke_reading.read_strokes`` without first flattening it to pixels.

    {
      "strokes": [[[x, y], [x, y], ...], ...],   # in drawing order; canvas pixels, y down
      "width": 700, "height": 200,                # optional: the canvas size
      "stroke_width": 20                          # optional: the pen width in canvas pixels
    }

Each stroke is the points of one pen-down ... pen-up, in the order they were drawn (a
streamlit-drawable-canvas path's points qualify). Order matters: the reader groups
strokes into characters by the order they were drawn. ``width``/``height`` default to
the drawing's extent plus the pen; ``stroke_width`` defaults to the app's slider default.
Why strict: a silently dropped point or stroke changes what is read, so every problem
is reported with where it is (``strokes[2][5]``) and what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_STROKE_WIDTH = 20.0  # the app's "Stroke width" slider default (app/streamlit_app.py)
EXAMPLE = '{"strokes": [[[10, 20], [12, 80]], [[40, 20], [70, 20], [45, 80]]], "width": 100, "height": 100}'


class StrokeFormatError(ValueError):
    """Stroke JSON that cannot be read; the message says where and what is expected."""


@dataclass(frozen=True, eq=False)
class StrokeDrawing:
    """Strokes (float64 (N, 2) arrays of x, y in canvas pixels, drawing order), the canvas
    size and the pen width they were drawn with."""

    strokes: tuple[np.ndarray, ...]
    width: int
    height: int
    stroke_width: float = DEFAULT_STROKE_WIDTH

    @classmethod
    def fit(cls, strokes: Sequence[Any], stroke_width: float = DEFAULT_STROKE_WIDTH,
            width: int | None = None, height: int | None = None) -> StrokeDrawing:
        """Strokes in a canvas just large enough for them (or the size given)."""
        arrays = tuple(np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes)
        arrays = tuple(a for a in arrays if len(a))
        if not arrays:
            raise StrokeFormatError("no strokes: draw something (every stroke is empty)")
        high = np.concatenate(arrays).max(axis=0) + stroke_width / 2 + 2
        return cls(arrays, int(width or math.ceil(high[0])), int(height or math.ceil(high[1])),
                   float(stroke_width))

    def to_json(self) -> str:
        return json.dumps({"strokes": [np.round(s, 2).tolist() for s in self.strokes],
                           "width": self.width, "height": self.height,
                           "stroke_width": self.stroke_width})


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StrokeFormatError(f"{where} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise StrokeFormatError(f"{where} must be > 0, got {value!r}")
    return float(value)


def parse_strokes(data: Any) -> StrokeDrawing:
    """A decoded JSON object (see the module docstring) -> StrokeDrawing."""
    if isinstance(data, list):  # a bare list of strokes is accepted too
        data = {"strokes": data}
    if not isinstance(data, dict) or "strokes" not in data:
        raise StrokeFormatError(f'expected an object with "strokes", e.g. {EXAMPLE}')
    unknown = sorted(set(data) - {"strokes", "width", "height", "stroke_width"})
    if unknown:
        raise StrokeFormatError(f"unknown keys {unknown}: expected strokes, width, height, stroke_width")
    if not isinstance(data["strokes"], list):
        raise StrokeFormatError('"strokes" must be a list of strokes, each a list of [x, y] points')
    strokes = []
    for i, stroke in enumerate(data["strokes"]):
        if not isinstance(stroke, list):
            raise StrokeFormatError(f"strokes[{i}] must be a list of [x, y] points, got {stroke!r:.60}")
        points = []
        for j, point in enumerate(stroke):
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise StrokeFormatError(f"strokes[{i}][{j}] must be a point [x, y], got {point!r:.60}")
            points.append([_number(v, f"strokes[{i}][{j}]") for v in point])
        if points:
            strokes.append(np.array(points, dtype=np.float64))
    pen = _number(data.get("stroke_width", DEFAULT_STROKE_WIDTH), "stroke_width", positive=True)
    sizes = {k: int(_number(data[k], k, positive=True)) for k in ("width", "height") if k in data}
    return StrokeDrawing.fit(strokes, pen, sizes.get("width"), sizes.get("height"))


def loads_strokes(text: str | bytes, source: str = "stroke JSON") -> StrokeDrawing:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StrokeFormatError(f"{source} is not valid JSON ({error}); expected e.g. {EXAMPLE}") from error
    try:
        return parse_strokes(data)
    except StrokeFormatError as error:
        raise StrokeFormatError(f"{source}: {error}") from None


def load_strokes(path: str | Path) -> StrokeDrawing:
    """Read a stroke JSON file; FileNotFoundError / StrokeFormatError name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no stroke file at {path}")
    return loads_strokes(path.read_bytes(), source=str(path))


def from_canvas(objects: Sequence[Any], width: int, height: int) -> StrokeDrawing | None:
    """The strokes of a streamlit-drawable-canvas drawing (its ``json_data["objects"]``:
    fabric.js paths in canvas pixels, drawing order), or None when nothing usable was drawn.

    fabric's free-drawing brush stores each stroke as ``M p0, Q p0 m01, Q p1 m12, ...,
    L pn``: the recorded points are the quadratic curves' control points plus the end
    point, so those are taken (``render.draw_ink`` smooths them again exactly as fabric
    does; measured in the browser, the two differ on about 2 % of the ink's pixels).
    Objects that are not freehand paths (none in the app's freedraw mode) are skipped.
    """
    strokes, pens = [], []
    for item in objects:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, list) or not path or str(item.get("type", "")).lower() != "path":
            continue
        points = [command[1:3] for command in path if command and command[0] == "Q"]
        points.append(path[-1][-2:])
        array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if np.isfinite(array).all():
            strokes.append(array)
            pens.append(float(item.get("strokeWidth") or DEFAULT_STROKE_WIDTH))
    if not strokes:
        return None
    return StrokeDrawing(tuple(strokes), int(width), int(height), float(np.median(pens)))
