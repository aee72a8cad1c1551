"""Split a drawing of several characters (e.g. "2026" on a wide canvas) into
single characters, left to right, so each can be read like one MNIST digit.

The algorithm, in four steps that each do one thing:

1. **Ink**: pixels brighter than ``threshold`` x the brightest pixel.
2. **Pieces**: 8-connected components (``scipy.ndimage.label``); pieces with
   less than ``min_ink`` x the ink of the largest piece are specks and dropped.
3. **Merge**: pieces that overlap horizontally by at least ``merge_overlap`` of
   the narrower one's width, and are vertically at most ``merge_gap`` x the
   taller one's height apart, are one character: broken strokes of a "5", the two
   strokes of a "4", a dot above. Repeated until nothing changes, because a
   merged box can reach further pieces.
4. **Split**: a character wider than ``wide_ratio`` x the median character height
   is several touching characters. Its count is estimated from its width
   (``char_aspect`` x median height per character), and it is cut near where
   the boundary should be, at the column that crosses the fewest strokes and,
   among those, holds the least ink (vertical projection profile); then each
   side is split again, recursively. A cut that leaves a
   side shorter than ``min_part_height`` x the median height is undone: that
   side was a fragment (the flag of a "5", the tail of a "2") of one wide character.

Each ``Segment`` holds its crop of the input (only its own ink; neighbours'
strokes that reach into its box are blanked) ready for
``preprocessing.center_like_mnist``, and its box in input coordinates.

Limits (by design, to stay simple):

- One line of text: characters are ordered by their horizontal centre only.
- Slanted or kerned characters whose boxes overlap by more than
  ``merge_overlap`` are merged into one.
- The split rule assumes characters of similar size and roughly MNIST-like
  proportions: a very wide single character (a flat "2", a long dash) is cut,
  two touching "1"s are not (they are no wider than one "0").
- Specks are judged relative to the largest piece, so a drawing made only of
  specks comes back as specks; check ``preprocessing.has_ink`` first.
- A cut is one vertical column, so touching characters that overlap over a
  long stretch (one written partly under the other) are cut imperfectly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from handwriting.grey_image import unit_gray

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Segment:
    """One character: ``image`` is a float32 white-on-black crop of the input,
    ``bbox`` its box ``(x0, y0, x1, y1)`` in input pixels, ends exclusive."""

    image: np.ndarray
    bbox: tuple[int, int, int, int]


@dataclass
class _Box:
    """A group of ink pixels being assembled into one character: ``mask`` covers
    just the box ``[y0:y1, x0:x1]`` (so many pieces never cost many full-size arrays)."""

    mask: np.ndarray
    x0: int
    y0: int

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def height(self) -> int:
        return self.mask.shape[0]

    def trimmed(self) -> _Box | None:
        """The same pixels in their tight box (None when there are none)."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        if rows.size == 0:
            return None
        mask = self.mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        return _Box(mask, self.x0 + int(cols[0]), self.y0 + int(rows[0]))

    def union(self, other: _Box) -> _Box:
        x0, y0 = min(self.x0, other.x0), min(self.y0, other.y0)
        x1, y1 = max(self.x1, other.x1), max(self.y1, other.y1)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for box in (self, other):
            mask[box.y0 - y0 : box.y1 - y0, box.x0 - x0 : box.x1 - x0] |= box.mask
        return _Box(mask, x0, y0)


def _same_character(a: _Box, b: _Box, merge_overlap: float, merge_gap: float) -> bool:
    overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
    if overlap_x <= 0 or overlap_x < merge_overlap * min(a.width, b.width):
        return False
    gap_y = max(a.y0, b.y0) - min(a.y1, b.y1)  # negative when they overlap vertically
    return gap_y <= merge_gap * max(a.height, b.height)


def _merge(boxes: list[_Box], merge_overlap: float, merge_gap: float) -> list[_Box]:
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if _same_character(boxes[i], boxes[j], merge_overlap, merge_gap):
                    boxes[i] = boxes[i].union(boxes.pop(j))
                    merged = True
                    break
            if merged:
                break
    return boxes


def _split(
    box: _Box, ink: np.ndarray, count: int, char_width: float, min_height: float
) -> list[_Box]:
    """Cut ``box`` into ``count`` characters at low-ink columns, recursively.

    A cut is kept only when both sides are at least ``min_height`` tall: a side
    that is shorter is a fragment (the flag of a "5", the tail of a "2"), which
    means the box was one wide character rather than several."""
    if count < 2 or box.width < 2:
        return [box]
    left_count = count // 2
    expected = box.width * left_count / count  # in box coordinates
    # Look for the boundary within half a character of where it should be,
    # staying at least a quarter character away from the outer edges.
    lo = int(max(1, round(expected - 0.5 * char_width), round(0.25 * char_width)))
    hi = int(
        min(box.width - 1, round(expected + 0.5 * char_width), round(box.width - 0.25 * char_width))
    )
    if hi <= lo:
        lo, hi = 1, box.width - 1
    # Cost of cutting at each column: the strokes it crosses (vertical runs of
    # ink) and, to break ties, its share of ink (the projection profile, < 1).
    # Counting strokes first matters where round characters touch: the joint is
    # one thick stroke, heavier in ink than the two thin arcs inside a "0".
    window = box.mask[:, lo:hi]
    strokes = window[0].astype(np.float64) + (window[1:] & ~window[:-1]).sum(axis=0)
    own_ink = np.where(box.mask, ink[box.y0 : box.y1, box.x0 : box.x1], 0.0)
    profile = ndimage.uniform_filter1d(own_ink.sum(axis=0), size=3, mode="nearest")[lo:hi]
    cost = strokes + 0.5 * profile / max(float(profile.max()), 1e-6)
    # Among equal costs, the column closest to where the boundary should be.
    distance = np.abs(np.arange(lo, hi) - expected) / max(box.width, 1)
    cut = lo + int(np.argmin(cost + 1e-3 * distance))
    left = _Box(box.mask[:, :cut], box.x0, box.y0).trimmed()
    right = _Box(box.mask[:, cut:], box.x0 + cut, box.y0).trimmed()
    if left is None or right is None or min(left.height, right.height) < min_height:
        return [box]
    return _split(left, ink, left_count, char_width, min_height) + _split(
        right, ink, count - left_count, char_width, min_height
    )


def _segments(ink: np.ndarray, boxes: list[_Box]) -> list[Segment]:
    """Each box's pixels plus a 1 px rim of faint anti-aliasing (which fell below
    the threshold), but nothing that belongs to a neighbour."""
    owner = np.zeros(ink.shape, dtype=np.int32)  # 0: free, -1: taken as rim, i: core of box i
    for index, box in enumerate(boxes, start=1):
        owner[box.y0 : box.y1, box.x0 : box.x1][box.mask] = index
    height, width = ink.shape
    segments = []
    for index, box in enumerate(boxes, start=1):
        # Work in the box grown by 1 px, where the rim can live.
        y0, y1 = max(box.y0 - 1, 0), min(box.y1 + 1, height)
        x0, x1 = max(box.x0 - 1, 0), min(box.x1 + 1, width)
        own = owner[y0:y1, x0:x1] == index
        free = owner[y0:y1, x0:x1] == 0
        keep = own | (ndimage.binary_dilation(own, structure=_EIGHT_CONNECTED) & free)
        keep &= ink[y0:y1, x0:x1] > 0
        owner[y0:y1, x0:x1][keep & free] = -1  # a rim pixel goes to one character only
        tight = _Box(keep | own, x0, y0).trimmed()
        assert tight is not None  # `own` is never empty
        crop = np.where(keep, ink[y0:y1, x0:x1], 0.0)[
            tight.y0 - y0 : tight.y1 - y0, tight.x0 - x0 : tight.x1 - x0
        ]
        segments.append(
            Segment(image=crop.astype(np.float32), bbox=(tight.x0, tight.y0, tight.x1, tight.y1))
        )
    return segments


def segment_characters(
    gray: np.ndarray,
    *,
    threshold: float = 0.35,
    min_ink: float = 0.05,
    merge_overlap: float = 0.5,
    merge_gap: float = 0.5,
    split_wide: bool = True,
    wide_ratio: float = 1.2,
    char_aspect: float = 0.7,
    min_part_height: float = 0.5,
) -> list[Segment]:
    """Characters in a white-on-black grey image (float (H, W) in [0, 1], or
    uint8 0..255), sorted left to right; ``[]`` when there is no ink. See the module docstring
    for what each parameter controls."""
    ink = unit_gray(gray, "segment_characters")
    peak = float(ink.max()) if ink.size else 0.0
    if peak < 0.1:
        return []
    mask = ink > threshold * peak

    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if n == 0:
        return []
    amounts = ndimage.sum_labels(ink, labels, index=np.arange(1, n + 1))
    boxes = [
        _Box(labels[where] == label, where[1].start, where[0].start)
        for label, where in enumerate(ndimage.find_objects(labels), start=1)
        if amounts[label - 1] >= min_ink * amounts.max()
    ]
    boxes = _merge(boxes, merge_overlap, merge_gap)

    if split_wide:
        height = float(np.median([b.height for b in boxes]))
        char_width = char_aspect * height
        split: list[_Box] = []
        for box in boxes:
            if box.width > wide_ratio * height:
                count = max(2, round(box.width / char_width))
                split.extend(_split(box, ink, count, char_width, min_part_height * height))
            else:
                split.append(box)
        boxes = split

    boxes.sort(key=lambda b: (b.x0 + b.x1) / 2)
    return _segments(ink, boxes)
