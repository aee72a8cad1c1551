"""Evaluation report for a trained model: accuracy per split and per class, a
confusion matrix and a grid of misclassified digits, as files a person can open and
numbers a script can compare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402
from torchmetrics.functional.classification import multiclass_confusion_matrix  # noqa: E402

from handwriting.atomic import strict_json, write_atomic  # noqa: E402

# Bounds that keep a report's memory flat whatever the class count: a figure grows with its
# size squared (a 1001-class confusion matrix drawn at 0.35 in per class took ~22 GB).
MAX_FIGURE_INCHES = 16.0
MAX_TICK_LABELS = 40  # beyond this, class names are unreadable anyway: axes show indices
MAX_MISCLASSIFIED = 120


@dataclass(frozen=True)
class SplitEvaluation:
    accuracy: float
    loss: float
    confusion: np.ndarray  # (classes, classes): rows true, columns predicted
    predictions: np.ndarray
    labels: np.ndarray

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Accuracy per class; NaN for a class with no images (no accuracy, not 0 %)."""
        totals = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), totals, out=np.full(len(totals), np.nan),
                         where=totals > 0)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, dataset: TensorDataset, batch_size: int = 4096) -> SplitEvaluation:
    """Run the model over a whole (in-memory) split: the package's one evaluation, behind
    a run's report and run.json (training.evaluate_best), the drawn/* scores and
    ``handwriting evaluate``."""
    model.eval()
    x, y = dataset.tensors
    logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    num_classes = logits.shape[1]
    preds = logits.argmax(dim=1)
    confusion = multiclass_confusion_matrix(preds, y, num_classes=num_classes).numpy()
    return SplitEvaluation(
        accuracy=float((preds == y).float().mean()),
        loss=float(torch.nn.functional.cross_entropy(logits, y)),
        confusion=confusion,
        predictions=preds.numpy(),
        labels=y.numpy(),
    )


def plot_confusion(confusion: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """The confusion matrix as an image, at most MAX_FIGURE_INCHES a side."""
    size = min(max(5.0, 0.35 * len(classes) + 2), MAX_FIGURE_INCHES)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues", interpolation="nearest")
    if len(classes) <= MAX_TICK_LABELS:
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(classes) <= 20:
        threshold = confusion.max() / 2 if confusion.size else 0
        for (i, j), value in np.ndenumerate(confusion):
            ax.text(j, i, int(value), ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_misclassified(
    images: np.ndarray, evaluation: SplitEvaluation, classes: list[str], path: Path, limit: int = 36
) -> int:
    """Grid of the first ``limit`` (at most MAX_MISCLASSIFIED) test errors, each titled
    'true -> predicted'. Returns how many."""
    limit = min(limit, MAX_MISCLASSIFIED)
    wrong = np.flatnonzero(evaluation.predictions != evaluation.labels)[:limit]
    columns = 6
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.6))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, index in zip(np.atleast_1d(axes).ravel(), wrong, strict=False):
        ax.imshow(images[index].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        true, pred = classes[evaluation.labels[index]], classes[evaluation.predictions[index]]
        ax.set_title(f"{true} -> {pred}", fontsize=9, color="crimson")
    fig.suptitle("misclassified test images (true -> predicted)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(wrong)


def write_report(
    model: torch.nn.Module,
    splits: dict[str, TensorDataset],
    classes: list[str],
    out_dir: Path,
    misclassified: int = 36,
) -> dict[str, float]:
    """Evaluate every split once, save ``report.json`` + PNGs under ``out_dir``, print a
    table. Returns flat metrics named after the splits' keys, such as
    ``{"test/acc": 0.97, "val/acc": ...}``; ``splits`` must hold a ``"test"`` split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluations = {name: evaluate(model, ds) for name, ds in splits.items()}
    metrics: dict[str, float] = {}
    for name, ev in evaluations.items():
        metrics[f"{name}/acc"] = ev.accuracy
        metrics[f"{name}/loss"] = ev.loss
        metrics[f"{name}/size"] = float(len(ev.labels))
    test = evaluations["test"]
    plot_confusion(test.confusion, classes, out_dir / "confusion_matrix.png",
                   f"test confusion matrix (acc {test.accuracy:.2%})")
    errors = plot_misclassified(splits["test"].tensors[0].numpy(), test, classes,
                                out_dir / "misclassified.png", misclassified)
    report = {
        "metrics": metrics,
        "per_class_test_accuracy": {  # null: no test images of that class
            c: (float(a) if a == a else None)
            for c, a in zip(classes, test.per_class_accuracy, strict=True)
        },
        "test_confusion_matrix": test.confusion.tolist(),
        "classes": classes,
        "misclassified_shown": errors,
    }
    write_atomic(out_dir / "report.json", strict_json(report, indent=2).encode())
    print(format_table(evaluations, classes))
    return metrics


def format_table(evaluations: dict[str, SplitEvaluation], classes: list[str]) -> str:
    lines = ["", f"{'split':<12}{'images':>8}{'accuracy':>10}{'loss':>8}"]
    for name, ev in evaluations.items():
        lines.append(f"{name:<12}{len(ev.labels):>8}{ev.accuracy:>10.2%}{ev.loss:>8.3f}")
    per_class = evaluations["test"].per_class_accuracy
    lines.append("test accuracy per class: " + "  ".join(
        f"{c}:{a:.1%}" if a == a else f"{c}:n/a" for c, a in zip(classes, per_class, strict=True)))
    return "\n".join(lines) + "\n"
