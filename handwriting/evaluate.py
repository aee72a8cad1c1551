"""Evaluate a saved model on a data source's test split, e.g. a model trained on the
embedded digits against the official MNIST 10k test set.

    handwriting evaluate --data mnist --cache-dir ~/.cache/handwriting/mnist [--model DIR]
"""

from __future__ import annotations

from pathlib import Path

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


def format_evaluation(evaluation: SplitEvaluation, classes: list[str], label: str) -> str:
    per_class = "  ".join(f"{c}:{a:.1%}" for c, a in zip(classes, evaluation.per_class_accuracy,
                                                          strict=True))
    return (f"{label}: accuracy {evaluation.accuracy:.2%} on {len(evaluation.labels)} images "
            f"(loss {evaluation.loss:.3f})\nper class: {per_class}")
