"""UCI "Pen-Based Recognition of Handwritten Digits" in its original UNIPEN form:
the pen trajectories themselves (strokes of x, y points), not the 16-feature summary.

Why a strict parser: the files are hand-edited-looking text, and a silently skipped
line would shift points between digits or attach a digit to the wrong writer, which
would quietly leak writers across a by-writer split. Every malformed input therefore
stops with the file name and line number.

Why screen coordinates: the tablet's y axis points up; everything else in this project
(images, the drawing canvas) has y pointing down, so the flip is done once, here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handwriting.data.download import RemoteFile, default_data_dir, ensure_files

TRAIN_FILE = "pendigits-orig.tra"
TEST_FILE = "pendigits-orig.tes"
# Checksums of the uncompressed files; UCI serves them Unix-compressed (".Z").
FILES: dict[str, RemoteFile] = {
    TRAIN_FILE: RemoteFile(
        TRAIN_FILE,
        md5="28e269fb7eaf8cb51af3f561743a0de5",
        sha256="a66225d68d7d68591e62944df1ad33b3f5aa608e2df2505844b41f5568a80da4",
        size=3_641_673,
        compression="Z",
    ),
    TEST_FILE: RemoteFile(
        TEST_FILE, md5="af059c4c2017f25d371999f05757d1dc", size=1_661_044, compression="Z"
    ),
}
MIRRORS: tuple[str, ...] = ("https://archive.ics.uci.edu/ml/machine-learning-databases/pendigits/",)
LICENSE_NOTE = (
    'UCI Machine Learning Repository, "Pen-Based Recognition of Handwritten Digits", '
    "E. Alpaydin and F. Alimoglu, Bogazici University (1998), "
    "https://doi.org/10.24432/C5MG6K, licensed CC BY 4.0."
)
TABLET_HEIGHT = 500  # digits were written in 500x500 tablet-pixel boxes; y_screen = 500 - y

_LABEL = re.compile(r'"([^"]*)"')


class PenDigitsFormatError(ValueError):
    """A UNIPEN file is not in the layout this reader understands."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value to compare
class PenDigit:
    """One handwritten digit as the pen drew it.

    ``writer`` is ``"<tag>-<id>"`` (e.g. ``"tra-12"``): the two UCI files number their
    writers independently, so the tag keeps writers of different files distinct.
    ``strokes`` are (N, 2) float32 arrays of (x, y) in screen coordinates (y down),
    in drawing order, each with at least one point.
    """

    label: int
    writer: str
    strokes: tuple[np.ndarray, ...]


def parse_unipen(text: str, source: str = "<text>", writer_tag: str = "tra") -> list[PenDigit]:
    """Parse UNIPEN text as written by the UCI pen-digits files.

    Each digit is ``.SEGMENT DIGIT ... "<label>"``, then ``.COMMENT <label> <writer>
    <index>``, then one or more ``.PEN_DOWN`` / ``x y`` lines / ``.PEN_UP`` strokes.
    Other keywords (``.INCLUDE``, ``.LEXICON``, ``.HIERARCHY``, ``.DT``, ...) and blank
    lines are ignored outside strokes. Raises PenDigitsFormatError naming ``source``
    and the offending line.
    """
    digits: list[PenDigit] = []
    segment_line = 0  # line of the open .SEGMENT, 0 when none is open
    label = -1
    writer: str | None = None
    strokes: list[np.ndarray] = []
    stroke: list[tuple[int, int]] | None = None  # points of the open stroke
    stroke_line = 0

    def fail(number: int, message: str) -> PenDigitsFormatError:
        return PenDigitsFormatError(f"{source}: line {number}: {message}")

    def close_segment() -> None:
        if not segment_line:
            return
        if writer is None:
            raise fail(segment_line, "digit has no '.COMMENT <label> <writer> <index>' line")
        if not strokes:
            raise fail(segment_line, "digit has no strokes (.PEN_DOWN ... .PEN_UP)")
        digits.append(PenDigit(label, writer, tuple(strokes)))

    number = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if stroke is not None:  # hot path (9 lines in 10): a point inside a stroke
            parts = raw.split()
            if len(parts) == 2:
                try:
                    stroke.append((int(parts[0]), int(parts[1])))
                    continue
                except ValueError:
                    pass
        line = raw.strip()
        if not line:
            continue
        if stroke is not None and not line.startswith("."):
            raise fail(number, f"expected a point 'x y' (two integers), got {line!r}")
        keyword = line.split(maxsplit=1)[0]
        if stroke is not None:
            if keyword != ".PEN_UP":
                raise fail(number, f"{keyword} inside the stroke opened at line {stroke_line}")
            if not stroke:
                raise fail(number, f"empty stroke: no points since .PEN_DOWN at line {stroke_line}")
            points = np.array(stroke, dtype=np.float32)
            points[:, 1] = TABLET_HEIGHT - points[:, 1]
            strokes.append(points)
            stroke = None
        elif keyword == ".SEGMENT":
            close_segment()
            match = _LABEL.search(line)
            if not match or len(match[1]) != 1 or match[1] not in "0123456789":
                raise fail(number, f'expected a digit label in quotes, e.g. "8", got {line!r}')
            segment_line, label, writer, strokes = number, int(match[1]), None, []
        elif keyword == ".COMMENT":
            if segment_line and writer is None:
                fields = line.split()
                if len(fields) < 3 or not (fields[1].isdigit() and fields[2].isdigit()):
                    raise fail(
                        number, f"expected '.COMMENT <label> <writer> <index>', got {line!r}"
                    )
                if int(fields[1]) != label:
                    raise fail(number, f"label {fields[1]} differs from the .SEGMENT's {label}")
                writer = f"{writer_tag}-{int(fields[2])}"
        elif keyword == ".PEN_DOWN":
            if not segment_line:
                raise fail(number, ".PEN_DOWN before any .SEGMENT")
            stroke, stroke_line = [], number
        elif keyword == ".PEN_UP":
            raise fail(number, ".PEN_UP without a .PEN_DOWN")
        elif not line.startswith("."):
            raise fail(number, f"point outside .PEN_DOWN ... .PEN_UP: {line!r}")
    if stroke is not None:
        raise fail(stroke_line, "stroke is never closed by .PEN_UP")
    close_segment()
    if not digits:
        raise fail(max(number, 1), "no digits (.SEGMENT lines) in the text")
    return digits


def read_pendigits_file(path: str | Path) -> list[PenDigit]:
    """Parse a UCI UNIPEN file; writers are tagged by the file's extension ("tra" for
    ``*.tra``, "tes" for ``*.tes``) so the two files' writer ids stay distinct."""
    path = Path(path)
    # Undecodable bytes become U+FFFD so they are reported with their line number.
    text = path.read_text(encoding="ascii", errors="replace")
    return parse_unipen(text, source=str(path), writer_tag=path.suffix.lstrip(".") or path.name)


def ensure_pendigits(
    cache_dir: str | Path | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    include_test_file: bool = False,
) -> dict[str, Path]:
    """Make the UNIPEN file(s) present and verified in the cache; return name -> path.

    Only the training file (30 writers) is fetched unless ``include_test_file``: the
    test file's 14 writers are the data set's writer-independent test set, kept out
    of reach unless asked for. ``cache_dir`` defaults to ``$HANDWRITING_DATA_DIR/pendigits``.
    """
    names = [TRAIN_FILE, TEST_FILE] if include_test_file else [TRAIN_FILE]
    folder = Path(cache_dir).expanduser() if cache_dir else default_data_dir("pendigits")
    return ensure_files(
        [FILES[name] for name in names],
        folder,
        tuple(mirrors) if mirrors else MIRRORS,
        download=download,
        dataset="pen digits",
        explicit_dir=bool(cache_dir),
    )
