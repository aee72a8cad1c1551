"""``data=pendigits``: real pen trajectories by writers outside MNIST, split by writer
and drawn the way the app's canvas draws them.

Why by writer: people differ far more from each other than one person's digits do, so
a test set that shares writers with training measures memory of handwriting styles,
not reading. Validation and test writers are carved out of the training file
(seeded, recorded in the run) or, with ``official_test=True``, the test writers are
UCI's 14 writer-independent ones. Training strokes are redrawn every epoch with new
pen widths, sizes, slant and wobble (handwriting.render); validation and test
drawings are drawn once, through the exact canvas path, and cached on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from handwriting.atomic import write_atomic
from handwriting.data.download import default_data_dir
from handwriting.data.pendigits import (
    TEST_FILE,
    TRAIN_FILE,
    PenDigit,
    ensure_pendigits,
    read_pendigits_file,
)
from handwriting.data.types import LabeledImages, SourceData, StrokeSet
from handwriting.render import StrokeStyle, render_many

log = logging.getLogger(__name__)
CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
# Held-out drawings: the app's canvas as a person uses it, no augmentation.
EVAL_STYLE = StrokeStyle()
# Training: the same canvas, plus stroke-level changes people make between two drawings.
TRAIN_STYLE = StrokeStyle(rotate_deg=10.0, slant_deg=15.0, stretch=(0.85, 1.15), jitter=0.008)
_RENDER_VERSION = 2  # bump when render.py changes what a drawing looks like


def split_writers(
    writers: Sequence[str], val_writers: int, test_writers: int, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test) writer lists: a seeded shuffle of the distinct writers, so no
    writer is in two splits and the same seed always gives the same split."""
    unique = sorted(set(writers))
    if val_writers < 1 or test_writers < 0 or val_writers + test_writers >= len(unique):
        raise ValueError(
            f"cannot hold out {val_writers} validation and {test_writers} test writers out of "
            f"{len(unique)}: at least one writer must stay for training "
            "(pendigits.val_writers / pendigits.test_writers)"
        )
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    test = sorted(order[:test_writers])
    val = sorted(order[test_writers : test_writers + val_writers])
    train = sorted(order[test_writers + val_writers :])
    return train, val, test


def to_stroke_set(digits: Sequence[PenDigit], style: StrokeStyle | None = None) -> StrokeSet:
    return StrokeSet(
        tuple(d.strokes for d in digits),
        np.array([d.label for d in digits], dtype=np.int64),
        np.array([d.writer for d in digits], dtype=str),
        style,
    )


class PenDigits:
    """UCI pen digits as a data source (see the module docstring).

    ``cache_dir``: where the files are (default ``$HANDWRITING_DATA_DIR/pendigits``);
    ``download=False`` never touches the network. ``val_writers``/``test_writers``:
    how many writers to hold out of the training file; ``split_seed`` picks them;
    ``render_seed`` fixes how the held-out drawings are drawn. ``augment_strokes``:
    redraw training strokes with stroke-level augmentation (False: canvas only).
    ``unipen_file``: your own UNIPEN file (same format, any writers) instead of UCI's;
    it is read as is (no download, no checksum), writers held out the same way.
    """

    def __init__(
        self,
        cache_dir: str | None = None,
        download: bool = True,
        mirrors: Sequence[str] | None = None,
        official_test: bool = False,
        val_writers: int = 4,
        test_writers: int = 6,
        split_seed: int = 0,
        render_seed: int = 0,
        augment_strokes: bool = True,
        unipen_file: str | None = None,
    ) -> None:
        if val_writers < 1 or test_writers < 0:
            raise ValueError(
                f"val_writers must be >= 1 and test_writers >= 0, got {val_writers}/{test_writers}"
            )
        self.cache_dir = cache_dir
        self.download = download
        self.mirrors = mirrors
        self.official_test = official_test
        self.val_writers = val_writers
        self.test_writers = 0 if official_test else test_writers
        self.split_seed = split_seed
        self.render_seed = render_seed
        self.train_style = TRAIN_STYLE if augment_strokes else EVAL_STYLE
        self.unipen_file = Path(unipen_file).expanduser() if unipen_file else None
        if self.unipen_file and official_test:
            raise ValueError("official_test needs UCI's files; it cannot be used with unipen_file")

    def _files(self) -> dict[str, Path]:
        if self.unipen_file is not None:
            if not self.unipen_file.is_file():
                raise FileNotFoundError(f"unipen_file={self.unipen_file}: no such file")
            return {TRAIN_FILE: self.unipen_file}
        return ensure_pendigits(self.cache_dir, self.download, self.mirrors,
                                include_test_file=self.official_test)

    def strokes(self) -> tuple[dict[str, StrokeSet], dict[str, Path]]:
        """The trajectories split by writer ({"train", "val", "test"}), and the files read."""
        paths = self._files()
        digits = read_pendigits_file(paths[TRAIN_FILE])
        train_w, val_w, test_w = split_writers(
            [d.writer for d in digits], self.val_writers, self.test_writers, self.split_seed
        )
        by_writer = {w: part for part, ws in (("train", train_w), ("val", val_w), ("test", test_w))
                     for w in ws}
        parts: dict[str, list[PenDigit]] = {"train": [], "val": [], "test": []}
        for digit in digits:
            parts[by_writer[digit.writer]].append(digit)
        if self.official_test:
            parts["test"] = read_pendigits_file(paths[TEST_FILE])
        styles = {"train": self.train_style, "val": EVAL_STYLE, "test": EVAL_STYLE}
        return {name: to_stroke_set(part, styles[name]) for name, part in parts.items()}, paths

    def render_seed_for(self, split: str) -> int:
        """The seed the held-out ``split`` ("val"/"test") is drawn with: re-drawing its
        strokes with ``render_canvas`` and this seed gives the very canvases scored."""
        return self.render_seed + (0 if split == "val" else 1)

    def load(self) -> SourceData:
        parts, paths = self.strokes()
        key, folder = self._cache_key(paths), paths[TRAIN_FILE].parent
        return SourceData(
            name="pendigits",
            classes=CLASSES,
            train=parts["train"],
            val=self._drawn(parts["val"], "val", key, folder),
            test=self._drawn(parts["test"], "test", key, folder),
            val_writers=parts["val"].writers,
            test_writers=parts["test"].writers,
        )

    def _cache_key(self, paths: dict[str, Path]) -> str:
        identity = {
            "files": sorted(paths),
            # Content, not just names: an edited unipen_file must not get stale drawings.
            "sha256": [hashlib.sha256(paths[name].read_bytes()).hexdigest() for name in sorted(paths)],
            "val_writers": self.val_writers, "test_writers": self.test_writers,
            "split_seed": self.split_seed, "render_seed": self.render_seed,
            "style": asdict(EVAL_STYLE), "version": _RENDER_VERSION,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def _drawn(self, part: StrokeSet, name: str, key: str, folder: Path) -> LabeledImages:
        """Held-out drawings through the exact canvas path, drawn once and cached (about
        10 ms each) beside the data, or in the user's data cache when that folder is
        read-only; a cache that cannot be written only makes the next run slower."""
        folders = list(dict.fromkeys([folder, default_data_dir("pendigits")]))
        for candidate in folders:
            cached = candidate / f"rendered-{name}-{key}.npz"
            if cached.is_file():
                try:
                    with np.load(cached, allow_pickle=False) as npz:
                        images = npz["images"]
                    if images.shape == (len(part), 28, 28) and images.dtype == np.uint8:
                        return LabeledImages(images, part.labels)
                except (OSError, ValueError, KeyError) as error:
                    log.warning("ignoring unreadable cache %s: %s", cached, error)
        images = render_many(part.strokes, self.render_seed_for(name), EVAL_STYLE, exact=True)
        for candidate in folders:
            if _save(candidate / f"rendered-{name}-{key}.npz", images):
                break
        return LabeledImages(images, part.labels)


def _save(path: Path, images: np.ndarray) -> bool:
    """Write ``images`` atomically; False (and no partial file) when the folder refuses."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue())
        return True
    except OSError as error:
        log.info("could not cache rendered drawings in %s: %s", path.parent, error)
        return False
