"""Read a drawn number from its strokes, not only its pixels.

Why: the pixel reader (``reading.read_number``) must guess where one character ends
from ink alone, and fails when digits touch or their boxes overlap. A canvas knows
more: every stroke, in the order it was drawn. People write a number left to right,
one to three strokes per digit, and a stroke that reaches into its neighbour's box
still belongs to one digit. So characters are groups of *consecutive* strokes, and
the grouping is chosen like this:

1. **Candidates**: every run of 1..``max_strokes`` consecutive strokes whose x-ranges
   (pen included) chain together -- a group with a clear horizontal gap inside is
   never one character.
2. **Scores**: each candidate is drawn exactly as the app draws it (``render.draw_ink``:
   fabric.js smoothing, round pen), prepared as the app prepares a canvas
   (``preprocessing.prepare_image``), and read by the classifier. A candidate's score
   is the log of its top probability, plus ``char_bonus`` per character (so two sure
   digits beat one unsure blob), minus ``wide_penalty`` x how much wider than
   ``max_aspect`` x its height it is (two digits side by side are wide), minus
   ``inside_penalty`` x how much of a group lies inside the previous group's x-range
   (the second stroke of a "4", the flag of a "5" start a new character only when the
   classifier is much surer that way), minus ``small_penalty`` x how far the group falls
   short of ``min_height`` x the line's character height (the upper quartile of the
   strokes' heights): a short hook or bar of a "2" or a "7" is part of a digit, not one.
   A writer's spacing is read off the first grouping: when neighbouring characters leave
   gaps (median overlap below ``spaced_overlap``), a stroke inside the previous
   character's range is far more likely its second stroke (a "4" written in two) than a
   new character, and the grouping is redone with ``spaced_inside_penalty``.
3. **Best sequence**: dynamic programming over the strokes picks the grouping with the
   highest total score (exact, O(strokes x max_strokes)).

The weights were chosen by a small grid search on 180 numbers by the validation writers
(benchmarks/stroke_numbers.py's layouts, ``--split val``), never the test writers; the
height rule and the spacing rule were added after looking at miscounts of the validation
writers and of the 20 training writers (never the test writers): on 150 numbers per
spacing each, right count separated / touching / overlapping went from 98.7 / 98.7 /
99.3 % to 100 / 100 / 99.3 % (validation) and from 97.3 / 96.7 / 94.0 % to 99.3 / 99.3 /
94.0 % (training writers). Limits: strokes of one character
must be drawn one after another (a "t" crossed after the next letter is two
characters); one line, left to right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from handwriting.preprocessing import EmptyImageError, prepare_image
from handwriting.reading import EMPTY_MESSAGE, CharacterReading, Classifier, NumberReading
from handwriting.render import draw_ink
from handwriting.stroke_format import DEFAULT_STROKE_WIDTH, StrokeDrawing

_UNREADABLE = math.log(1e-6)  # score of a candidate with too little ink to read


@dataclass(frozen=True)
class GroupingWeights:
    """How the grouping is scored (see the module docstring)."""

    max_strokes: int = 4
    char_bonus: float = 1.5
    max_aspect: float = 0.8
    wide_penalty: float = 2.0
    inside_penalty: float = 2.0
    gap_tolerance: float = 0.05  # x-gap allowed inside a group, as a fraction of the ink height
    min_height: float = 0.5  # a character is at least this fraction of the line's stroke height
    small_penalty: float = 4.0
    # A writer who leaves gaps between characters (the first grouping's neighbours overlap by
    # less than ``spaced_overlap`` line heights, median) keeps a character's strokes together:
    # the grouping is redone with ``spaced_inside_penalty``.
    spaced_overlap: float = 0.1
    spaced_inside_penalty: float = 4.0


def _ranges(strokes: Sequence[np.ndarray], pen: float) -> np.ndarray:
    """(S, 4) x0, y0, x1, y1 of each stroke's ink (pen included)."""
    return np.array([[*(s.min(axis=0) - pen / 2), *(s.max(axis=0) + pen / 2)] for s in strokes])


def _chained(boxes: np.ndarray, tolerance: float) -> bool:
    """Whether the x-ranges form one run with no gap wider than ``tolerance``."""
    order = boxes[np.argsort(boxes[:, 0])]
    reach = order[0, 2]
    for x0, _, x1, _ in order[1:]:
        if x0 - reach > tolerance:
            return False
        reach = max(reach, x1)
    return True


def render_group(strokes: Sequence[np.ndarray], pen: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(white-on-black ink crop, its integer box (x0, y0, x1, y1) on the canvas) of strokes
    drawn exactly as on the full canvas: the crop is shifted by whole pixels only, so
    every pixel equals the canvas's."""
    points = np.concatenate(strokes)
    low = np.floor(points.min(axis=0) - pen / 2 - 2).astype(int)
    high = np.ceil(points.max(axis=0) + pen / 2 + 2).astype(int)
    ink = draw_ink([s - low for s in strokes], pen, (int(high[1] - low[1]), int(high[0] - low[0])))
    return ink, (int(low[0]), int(low[1]), int(high[0]), int(high[1]))


def _candidates(strokes: list[np.ndarray], pen: float, weights: GroupingWeights
                ) -> dict[tuple[int, int], tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(start, end) -> (28x28 input, box) for every admissible group of consecutive strokes."""
    boxes = _ranges(strokes, pen)
    out = {}
    for start in range(len(strokes)):
        for end in range(start + 1, min(len(strokes), start + weights.max_strokes) + 1):
            group = boxes[start:end]
            height = float(group[:, 3].max() - group[:, 1].min())
            if not _chained(group, weights.gap_tolerance * height):
                continue  # a gap inside (a later stroke may still bridge it)
            ink, box = render_group(strokes[start:end], pen)
            try:
                image = prepare_image(ink)
            except EmptyImageError:
                image = np.zeros((28, 28), dtype=np.float32)
            out[(start, end)] = (image, box)
    return out


def _line_height(ranges: np.ndarray) -> float:
    """The line's character height: most digits are one full-height stroke, so the upper
    quartile of the strokes' heights (pen included) stands for it."""
    return max(float(np.percentile(ranges[:, 3] - ranges[:, 1], 75)), 1.0)


def spaced(groups: list[tuple[int, int]], ranges: np.ndarray) -> float:
    """The median horizontal overlap of neighbouring groups, in line heights (negative: the
    writer left gaps)."""
    overlaps = [(ranges[a:b, 2].max() - ranges[c:d, 0].min()) for (a, b), (c, d)
                in zip(groups[:-1], groups[1:], strict=True)]
    return float(np.median(overlaps)) / _line_height(ranges)


def group_strokes(strokes: list[np.ndarray], pen: float, probabilities: dict[tuple[int, int], np.ndarray],
                  boxes: dict[tuple[int, int], tuple[int, int, int, int]],
                  weights: GroupingWeights = GroupingWeights()) -> list[tuple[int, int]]:
    """The best grouping (list of (start, end) stroke runs) by dynamic programming."""
    ranges = _ranges(strokes, pen)
    line_height = _line_height(ranges)

    def score(start: int, end: int, previous: tuple[int, int] | None) -> float:
        p = float(probabilities[(start, end)].max())
        x0, y0, x1, y1 = (float(v) for v in boxes[(start, end)])
        width, height = x1 - x0, max(y1 - y0, 1.0)
        value = (math.log(p) if p > 0 else _UNREADABLE) + weights.char_bonus
        value -= weights.wide_penalty * max(0.0, width / height - weights.max_aspect)
        value -= weights.small_penalty * max(0.0, 1.0 - height / (weights.min_height * line_height))
        if previous is not None:
            px0, px1 = ranges[previous[0]:previous[1], 0].min(), ranges[previous[0]:previous[1], 2].max()
            own0, own1 = ranges[start:end, 0].min(), ranges[start:end, 2].max()
            inside = max(0.0, min(own1, px1) - max(own0, px0)) / max(own1 - own0, 1.0)
            value -= weights.inside_penalty * inside
        return value

    n = len(strokes)
    best: list[dict[tuple[int, int] | None, tuple[float, list[tuple[int, int]]]]] = [
        {} for _ in range(n + 1)]
    best[0][None] = (0.0, [])
    # State: (strokes read so far, the last group) -- the last group matters for "inside".
    for end in range(1, n + 1):
        for start in range(max(0, end - weights.max_strokes), end):
            if (start, end) not in probabilities:
                continue
            for last, (total, path) in best[start].items():
                value = total + score(start, end, last)
                if (start, end) not in best[end] or value > best[end][(start, end)][0]:
                    best[end][(start, end)] = (value, [*path, (start, end)])
    if not best[n]:  # cannot happen while single strokes are always candidates
        raise RuntimeError("no grouping of the strokes found")
    return max(best[n].values(), key=lambda item: item[0])[1]


def read_strokes(drawing: StrokeDrawing | Sequence[Any], predictor: Classifier, *,
                 stroke_width: float | None = None,
                 weights: GroupingWeights = GroupingWeights()) -> NumberReading:
    """Read a number from its strokes (a ``StrokeDrawing``, or a list of (N, 2) point
    arrays in drawing order with ``stroke_width``, default the app's). Returns the same
    ``NumberReading`` as the pixel reader, characters in drawing order with their boxes
    in canvas pixels. Raises EmptyImageError when there are no strokes."""
    if not isinstance(drawing, StrokeDrawing):
        arrays = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in drawing]
        if not any(len(a) for a in arrays):
            raise EmptyImageError(EMPTY_MESSAGE)
        drawing = StrokeDrawing.fit(arrays, stroke_width or DEFAULT_STROKE_WIDTH)
    strokes = [s for s in drawing.strokes if len(s)]
    if not strokes:
        raise EmptyImageError(EMPTY_MESSAGE)
    if not all(np.isfinite(s).all() for s in strokes):
        raise ValueError("stroke points must be finite numbers")
    pen = float(stroke_width or drawing.stroke_width)
    candidates = _candidates(strokes, pen, weights)
    keys = list(candidates)
    inputs = np.stack([candidates[k][0] for k in keys]).astype(np.float32)
    probs = np.asarray(predictor.probabilities(inputs), dtype=np.float64)
    classes = list(predictor.classes)
    if probs.shape != (len(keys), len(classes)):
        raise ValueError(f"the model returned probabilities of shape {probs.shape} for "
                         f"{len(keys)} images and {len(classes)} classes")
    by_key = dict(zip(keys, probs, strict=True))
    boxes = {k: candidates[k][1] for k in keys}
    groups = group_strokes(strokes, pen, by_key, boxes, weights)
    if len(groups) > 1 and spaced(groups, _ranges(strokes, pen)) < weights.spaced_overlap:
        groups = group_strokes(strokes, pen, by_key, boxes,
                               replace(weights, inside_penalty=weights.spaced_inside_penalty))
    characters = []
    for key in groups:
        p = by_key[key]
        k = int(p.argmax())
        x0, y0, x1, y1 = boxes[key]
        box = (max(x0, 0), max(y0, 0), min(x1, drawing.width), min(y1, drawing.height))
        characters.append(CharacterReading(label=classes[k], confidence=float(p[k]), bbox=box,
                                           image=candidates[key][0], probabilities=p, classes=classes,
                                           strokes=key))
    confidences = np.array([c.confidence for c in characters])
    ink = draw_ink(strokes, pen, (drawing.height, drawing.width))
    return NumberReading(text="".join(c.label for c in characters), characters=tuple(characters),
                         confidence=float(np.prod(confidences)),
                         min_confidence=float(confidences.min()), classes=classes, ink=ink)
