"""Evaluating a saved model on another source's test split (e.g. the official MNIST 10k)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from handwriting.evaluate import evaluate_checkpoint
from handwriting.model import MLPClassifier
from tests.helpers import save_checkpoint


def test_official_test_set_is_used_in_full(tmp_path: Path, mnist_dir: Path) -> None:
    save_checkpoint(tmp_path / "m.ckpt")
    evaluation, classes = evaluate_checkpoint(tmp_path / "m.ckpt", "mnist", str(mnist_dir))
    assert len(evaluation.labels) == 10_000 and classes == [str(d) for d in range(10)]
    assert np.bincount(evaluation.labels).tolist()[:2] == [980, 1135]  # official class counts
    assert evaluation.confusion.sum() == 10_000


def test_class_mismatch_is_refused(tmp_path: Path) -> None:
    model = MLPClassifier(hidden_sizes=[8], num_classes=26, class_names=[chr(65 + i) for i in range(26)])
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)},
               tmp_path / "letters.ckpt")
    with pytest.raises(ValueError, match="classes"):
        evaluate_checkpoint(tmp_path / "letters.ckpt", "embedded")


def test_a_class_without_test_images_has_no_accuracy_rather_than_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from torch.utils.data import TensorDataset

    from handwriting.report import write_report

    torch.manual_seed(0)
    model = MLPClassifier(hidden_sizes=(8,), num_classes=3, class_names=["a", "b", "c"]).eval()
    x = torch.rand(12, 784)
    y = torch.tensor([0, 1] * 6)  # no "c" anywhere
    splits = {name: TensorDataset(x, y) for name in ("train", "val", "test")}
    write_report(model, splits, ["a", "b", "c"], tmp_path, misclassified=4)
    per_class = json.loads((tmp_path / "report.json").read_text())["per_class_test_accuracy"]
    assert per_class["c"] is None and per_class["a"] is not None
    assert "c:n/a" in capsys.readouterr().out
