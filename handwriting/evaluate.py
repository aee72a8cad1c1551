"""Evaluate a saved model on a data source's test split, e.g. a model trained on the
embedded digits against the official MNIST 10k test set.

    handwriting evaluate --data mnist --cache-dir ~/.cache/handwriting/mnist [--model DIR]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from handwriting.data.datamodule import HandwritingDataModule, Source
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.data.mnist import MNIST
from handwriting.inference import Predictor
from handwriting.report import SplitEvaluation, evaluate


def build_source(name: str, cache_dir: str | None = None) -> Source:
    if name == "embedded":
        return EmbeddedMNIST()
    if name == "mnist":
        return MNIST(cache_dir=cache_dir)
    raise ValueError(f"unknown data source {name!r}: use 'embedded' or 'mnist'")


def evaluate_checkpoint(
    checkpoint: str | Path, data: str = "mnist", cache_dir: str | None = None,
    split: dict[str, int | float | None] | None = None,
) -> tuple[SplitEvaluation, list[str]]:
    """Accuracy of a saved model on the test split of ``data`` (default splits as in conf/data)."""
    predictor = Predictor.from_checkpoint(checkpoint)
    default_split = {"train": 8000, "val": 1000, "test": 1000} if data == "embedded" else {
        "train": None, "val": 5000, "test": None}
    datamodule = HandwritingDataModule(build_source(data, cache_dir), split=split or default_split)
    datamodule.setup()
    if list(datamodule.classes) != predictor.classes:
        raise ValueError(f"model classes {predictor.classes} differ from data classes "
                         f"{list(datamodule.classes)}")
    return evaluate(predictor.model, datamodule.dataset("test")), predictor.classes


def evaluate_folder(checkpoint: str | Path, root: str | Path) -> tuple[SplitEvaluation, list[str]]:
    """Accuracy of a saved model on every image of a labelled folder (all of its splits),
    e.g. the drawings saved from the app (``handwriting.collection``). Class folders are
    matched to the model's classes by name, so a folder may hold only some of them."""
    from handwriting.data.folder import ImageFolderSource

    predictor = Predictor.from_checkpoint(checkpoint)
    data = ImageFolderSource(str(root)).load()
    unknown = sorted(set(data.classes) - set(predictor.classes))
    if unknown:
        raise ValueError(f"{root} has class folders {unknown} that the model does not know "
                         f"(its classes: {predictor.classes})")
    to_model = np.asarray([predictor.classes.index(name) for name in data.classes])
    parts = [part for part in (data.train, data.val, data.test) if part is not None]
    images = np.concatenate([part.images for part in parts]).astype(np.float32) / 255.0
    labels = to_model[np.concatenate([part.labels for part in parts])]
    dataset = TensorDataset(torch.from_numpy(images.reshape(len(images), -1)),
                            torch.from_numpy(labels))
    return evaluate(predictor.model, dataset), predictor.classes


def format_evaluation(evaluation: SplitEvaluation, classes: list[str], label: str) -> str:
    per_class = "  ".join(
        f"{c}:{a:.1%}" if a == a else f"{c}:n/a"  # NaN: no images of that class
        for c, a in zip(classes, evaluation.per_class_accuracy, strict=True)
    )
    return (f"{label}: accuracy {evaluation.accuracy:.2%} on {len(evaluation.labels)} images "
            f"(loss {evaluation.loss:.3f})\nper class: {per_class}")
