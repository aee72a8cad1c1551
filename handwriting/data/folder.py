"""Labelled images from a folder tree, one sub-folder per class:

    root/train/<class>/*.png      (required; or root/<class>/ when there is no train/)
    root/val/<class>/...          (optional)
    root/test/<class>/...         (optional)

Images may have any size, mode and polarity: each goes through
``handwriting.preprocessing.prepare_image``, the same normalisation the app
uses, so training data and user drawings look alike to the model. A few bad
files (corrupt, empty) are skipped and reported rather than failing the load.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from handwriting.data.types import IMAGE_SIZE, LabeledImages, SourceData
from handwriting.preprocessing import prepare_image

log = logging.getLogger(__name__)
EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _prepare(path: Path) -> np.ndarray | str:
    """Normalised uint8 image, or the reason it could not be used."""
    try:
        image = prepare_image(path)
    except Exception as error:  # one bad file must not abort a 30k-image load
        return f"{type(error).__name__}: {error}"
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


class ImageFolderSource:
    """Images from ``root`` laid out as ``<split>/<class>/<image>``.

    Classes are the sorted sub-folder names of the training folder; ``val``/``test``
    may only use those names. ``max_reported`` bounds how many skipped paths the
    warning lists; after ``load()``, ``skipped`` holds every (path, reason).
    """

    def __init__(
        self,
        root: str,
        extensions: Sequence[str] = EXTENSIONS,
        num_workers: int | None = None,
        max_reported: int = 10,
    ) -> None:
        self.root = Path(root).expanduser()
        self.extensions = tuple(
            ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions
        )
        self.num_workers = num_workers or min(8, os.cpu_count() or 1)
        self.max_reported = max_reported
        self.skipped: list[tuple[Path, str]] = []

    def _split_dirs(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        if (self.root / "train").is_dir():
            return {s: self.root / s for s in SPLITS if (self.root / s).is_dir()}
        if _subfolders(self.root):
            return {"train": self.root}  # flat layout: root/<class>/
        raise FileNotFoundError(
            f"{self.root} has no class folders; expected {self.root}/train/<class>/<image> "
            f"(optionally also val/ and test/) or {self.root}/<class>/<image>"
        )

    def _list_files(self, folder: Path) -> list[Path]:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in self.extensions]
        if len(images) < len(files):
            log.info("%s: ignoring %d non-image files", folder, len(files) - len(images))
        return images

    def _collect(self, split_dirs: dict[str, Path]) -> tuple[tuple[str, ...], dict]:
        classes = tuple(p.name for p in _subfolders(split_dirs["train"]))
        if not classes:
            raise FileNotFoundError(
                f"{split_dirs['train']} has no class folders; expected <class>/<image> inside it"
            )
        listing: dict[str, list[tuple[Path, int]]] = {}
        for split, folder in split_dirs.items():
            names = [p.name for p in _subfolders(folder)]
            unknown = sorted(set(names) - set(classes))
            if unknown:
                raise ValueError(
                    f"{folder} has class folders {unknown} that {split_dirs['train']} lacks; "
                    "every class must have training images (rename or remove them)"
                )
            entries = []
            for name in names:
                files = self._list_files(folder / name)
                if split == "train" and not files:
                    raise ValueError(
                        f"{folder / name} holds no images with extensions {self.extensions}; "
                        "add images or remove the folder"
                    )
                entries.extend((path, classes.index(name)) for path in files)
            listing[split] = entries
        return classes, listing

    def _load_split(self, split: str, entries: list[tuple[Path, int]]) -> LabeledImages | None:
        if not entries:
            return None
        paths = [path for path, _ in entries]
        with ThreadPoolExecutor(self.num_workers) as pool:
            results = list(
                tqdm(
                    pool.map(_prepare, paths),
                    total=len(paths),
                    desc=f"{self.root.name}/{split}",
                    unit="img",
                    disable=None,  # only draw on a terminal
                )
            )
        keep = [i for i, result in enumerate(results) if isinstance(result, np.ndarray)]
        failed = [(path, r) for path, r in zip(paths, results, strict=True) if isinstance(r, str)]
        self.skipped.extend(failed)
        if not keep:
            examples = "; ".join(f"{p}: {reason}" for p, reason in failed[:3])
            raise ValueError(
                f"none of the {len(paths)} images in {split}/ could be read ({examples})"
            )
        images = np.stack([results[i] for i in keep]).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        labels = np.asarray([entries[i][1] for i in keep], dtype=np.int64)
        return LabeledImages(images, labels)

    def load(self) -> SourceData:
        self.skipped = []
        classes, listing = self._collect(self._split_dirs())
        splits = {split: self._load_split(split, entries) for split, entries in listing.items()}
        if self.skipped:
            shown = "\n".join(f"  {p}: {reason}" for p, reason in self.skipped[: self.max_reported])
            more = len(self.skipped) - self.max_reported
            warnings.warn(
                f"skipped {len(self.skipped)} unreadable or empty image(s) under {self.root}:\n"
                f"{shown}" + (f"\n  ... and {more} more" if more > 0 else ""),
                stacklevel=2,
            )
        return SourceData(
            name="folder",
            classes=classes,
            train=splits["train"],
            val=splits.get("val"),
            test=splits.get("test"),
        )
