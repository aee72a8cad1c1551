"""Accuracy on real drawings by writers the model never saw: ``drawn/acc``.

Why: a model at 99% on MNIST read about 80-90% of real pen drawings by other writers,
and nothing the project printed showed it. Every run that can (the pen-digit files
are in the cache; this never downloads) is scored on the held-out writers' drawings,
drawn through the app's own canvas path, and reports the overall accuracy, the worst
and median writer, per class, and the most common confusions. ``drawn/val_acc`` (the
validation writers) is what promotion may rank on; ``drawn/acc`` (the test writers) is
only reported, never used to choose.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handwriting.data.download import DownloadError, default_data_dir
from handwriting.data.mix import MixedPool, to_tensors
from handwriting.data.pen_source import PenDigits
from handwriting.data.types import LabeledImages, SourceData, StrokeSet
from handwriting.report import evaluate

log = logging.getLogger(__name__)
PREFIX = "drawn/"


def writer_scores(
    model: torch.nn.Module, images: LabeledImages, writers: np.ndarray, classes: list[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Flat metrics (overall, worst and median writer) and details (per writer, per class,
    top confusions) of ``model`` on drawings labelled with their writers."""
    result = evaluate(model, to_tensors(images))
    right = result.predictions == result.labels
    per_writer = {str(w): float(right[writers == w].mean()) for w in sorted(set(writers.tolist()))}
    accs = np.array(list(per_writer.values()))
    confusions = Counter(
        (classes[t], classes[p]) for t, p in zip(result.labels, result.predictions, strict=True) if t != p
    )
    metrics = {"acc": result.accuracy, "worst_writer_acc": float(accs.min()),
               "median_writer_acc": float(np.median(accs)), "size": float(len(right)),
               "writers": float(len(accs))}
    details = {
        "per_writer_accuracy": per_writer,
        "per_class_accuracy": {c: (float(a) if a == a else None)
                               for c, a in zip(classes, result.per_class_accuracy, strict=True)},
        "top_confusions": [{"true": t, "predicted": p, "count": n}
                           for (t, p), n in confusions.most_common(10)],
    }
    return metrics, details


def pool_writers(pool: Any) -> set[str]:
    """Every writer whose strokes are in a training pool (none for plain images)."""
    if isinstance(pool, StrokeSet):
        return set(pool.writers.tolist())
    if isinstance(pool, MixedPool):
        return set().union(*(pool_writers(p) for p in pool.pools))
    return set()


class DrawnEvaluation:
    """Scores models on held-out writers' drawings (see the module docstring).

    ``source``: the pen-digit source whose validation and test writers are held out
    (``download`` is forced off: a run never fetches data just to score itself).
    """

    def __init__(self, source: PenDigits | None = None, enabled: bool = True) -> None:
        self.source = source or PenDigits(download=False)
        self.source.download = False
        self.enabled = enabled
        self._data: SourceData | None = None
        self.unavailable = "" if enabled else "drawn.enabled=false"

    def data(self) -> SourceData | None:
        """The held-out drawings, or None (and ``unavailable`` says why)."""
        if self._data is None and not self.unavailable:
            try:
                self._data = self.source.load()
            except (DownloadError, OSError) as error:
                first = str(error).splitlines()[0]
                folder = self.source.cache_dir or default_data_dir("pendigits")
                option = f" --cache-dir {folder}" if self.source.cache_dir else ""
                self.unavailable = (f"no pen-digit files in {folder} ({first}); "
                                    f"`handwriting download pendigits{option}` fetches them")
        return self._data

    def check_disjoint(self, train_pool: Any) -> None:
        """Refuse a training pool holding a held-out writer (call it before training)."""
        data = self.data()
        if data is None:
            return
        held_out = set(data.val_writers.tolist()) | set(data.test_writers.tolist())
        leaked = pool_writers(train_pool) & held_out
        if leaked:
            raise ValueError(
                f"writers {sorted(leaked)} are both trained on and held out for drawn/acc: "
                "use the same pendigits.* settings for data and drawn evaluation"
            )

    def fingerprint(self) -> str | None:
        data = self.data()
        if data is None:
            return None
        digest = hashlib.sha256()
        for part in (data.val, data.test):
            digest.update(part.images.tobytes())
            digest.update(part.labels.tobytes())
        return digest.hexdigest()[:16]

    def score(
        self, model: torch.nn.Module, classes: list[str], train_pool: Any, out_dir: Path | None = None
    ) -> dict[str, float]:
        """``drawn/*`` metrics for ``model`` ({} when no drawings are at hand); writes
        ``drawn.json`` into ``out_dir``. Refuses to score writers the model trained on."""
        data = self.data()
        if data is None:
            log.info("Not scored on real drawings: %s", self.unavailable)
            return {}
        if list(classes) != list(data.classes):
            self.unavailable = f"the model's classes {classes} are not the digits 0-9"
            return {}
        self.check_disjoint(train_pool)
        test_metrics, details = writer_scores(model, data.test, data.test_writers, list(classes))
        val_metrics, _ = writer_scores(model, data.val, data.val_writers, list(classes))
        metrics = {f"{PREFIX}{k}": v for k, v in test_metrics.items()}
        metrics[f"{PREFIX}val_acc"] = val_metrics["acc"]
        metrics[f"{PREFIX}val_worst_writer_acc"] = val_metrics["worst_writer_acc"]
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "drawn.json").write_text(json.dumps(
                {"metrics": metrics, "test_writers": sorted(set(data.test_writers.tolist())),
                 "val_writers": sorted(set(data.val_writers.tolist())), **details}, indent=2))
        print(format_drawn(metrics, details))
        return metrics


def format_drawn(metrics: dict[str, float], details: dict[str, Any]) -> str:
    confusions = ", ".join(f"{c['true']}->{c['predicted']} x{c['count']}"
                           for c in details["top_confusions"][:5]) or "none"
    return (f"real drawings by held-out writers: {metrics[PREFIX + 'acc']:.2%} "
            f"({int(metrics[PREFIX + 'size'])} drawings, {int(metrics[PREFIX + 'writers'])} writers; "
            f"worst writer {metrics[PREFIX + 'worst_writer_acc']:.2%}, median "
            f"{metrics[PREFIX + 'median_writer_acc']:.2%}); validation writers "
            f"{metrics[PREFIX + 'val_acc']:.2%}; top confusions: {confusions}\n")
