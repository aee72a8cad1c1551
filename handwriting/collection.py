"""Drawings people label in the app, kept as an image folder.

Digits drawn with a mouse or finger look different from MNIST's scanned pen strokes, and
nothing measures a model on them better than real drawings. The app saves a drawing with
the label its author confirms, in the layout ``data=folder`` reads
(``<dir>/train/<label>/<time>-<hash>.png``, the full canvas as drawn), so the collection can
be scored (``handwriting evaluate --data folder --root DIR``) or trained on
(``python train.py data=folder data.source.root=DIR``).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from handwriting.atomic import write_atomic
from handwriting.preprocessing import prepare_canvas
from handwriting.provenance import project_root

DRAWINGS_ENV = "HANDWRITING_DRAWINGS_DIR"
SAVE_ENV = "HANDWRITING_SAVE_DRAWINGS"  # "0"/"false"/"no"/"off": a public app offers no saving
SPLIT = "train"  # ImageFolderSource needs train/; evaluation reads every split


def default_drawings_dir() -> Path:
    """``$HANDWRITING_DRAWINGS_DIR``, else ``<project root>/data/drawings`` (git-ignored)."""
    env = os.environ.get(DRAWINGS_ENV)
    return Path(env) if env else project_root() / "data" / "drawings"


def saving_enabled() -> bool:
    """Whether the app offers to save drawings (on unless ``$HANDWRITING_SAVE_DRAWINGS`` is
    0/false/no/off: whoever hosts the app for strangers may not want their drawings on disk)."""
    return os.environ.get(SAVE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def _check_label(label: str, classes: Sequence[str]) -> None:
    if label not in classes:
        raise ValueError(f"label {label!r} is not one of the model's classes {list(classes)}")
    if label in (".", "..") or any(sep in label for sep in ("/", "\\", "\0")):
        raise ValueError(f"label {label!r} cannot be used as a folder name")


def save_drawing(
    rgba: np.ndarray, label: str, classes: Sequence[str], directory: str | Path | None = None
) -> Path:
    """Write one labelled canvas drawing as a PNG and return its path (``save_once``)."""
    return save_once(rgba, label, classes, directory)[0]


def save_once(
    rgba: np.ndarray, label: str, classes: Sequence[str], directory: str | Path | None = None
) -> tuple[Path, bool]:
    """Write one labelled canvas drawing as a PNG: (its path, whether it is new).

    The same drawing with the same label is kept once: pressing Save twice (or again after
    a rerun) returns the file already there, so a collection never counts one drawing
    twice -- files are named after their content's hash. Raises ``EmptyImageError`` for a
    canvas without ink (nothing is written) and ``ValueError`` for a label the model does
    not know. The file appears atomically (temporary file, then rename), so a reader never
    sees half an image.
    """
    _check_label(label, classes)
    image = np.asarray(rgba)
    prepare_canvas(image)  # the same ink check the app reads with: an empty canvas is refused
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    folder = Path(directory or default_drawings_dir()) / SPLIT / label
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:8]
    existing = sorted(folder.glob(f"*-{digest}.png"))
    if existing:
        return existing[0], False
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}-{digest}.png"
    write_atomic(target, data)
    return target, True


def drawing_counts(directory: str | Path | None = None) -> dict[str, int]:
    """How many saved drawings each label has (labels with none are left out)."""
    root = Path(directory or default_drawings_dir()) / SPLIT
    if not root.is_dir():
        return {}
    counts = {
        folder.name: sum(1 for p in folder.glob("*.png") if not p.name.startswith("."))
        for folder in sorted(root.iterdir())
        if folder.is_dir()
    }
    return {label: n for label, n in counts.items() if n}
