"""Fit a model's ``Calibration`` on held-out data, and measure it.

Used at the end of every training run (``confidence:`` in conf/config.yaml) and by
``handwriting calibrate`` for a model trained earlier. What it is fitted on matters and
is recorded: the validation writers' real drawings when the pen-digit files are at
hand (what the app will see), else the run's validation images. The test writers only
ever measure.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handwriting.atomic import write_atomic
from handwriting.calibration import (
    RUN_FILE,
    Calibration,
    choose_answer_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from handwriting.checkpoints import torch_bytes
from handwriting.data.download import default_data_dir
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.data.pen_source import TRAIN_STYLE
from handwriting.data.types import LabeledImages, SourceData, StrokeSet
from handwriting.junk import JUNK_VERSION, JunkSet, cached_junk
from handwriting.junk_detector import SIZES, JunkDetector, train_detector
from handwriting.render import render_many

log = logging.getLogger(__name__)
DIGITS = tuple("0123456789")
PREFIX = "confidence/"
HOLDOUT = 1000  # packaged MNIST digits the detector never trains on (its threshold without drawings)


@torch.inference_mode()
def logits_of(model: torch.nn.Module, images: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Raw logits for uint8 (or [0, 1] float) 28x28 images."""
    model.eval()
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32).reshape(len(images), -1)
    if np.asarray(images).dtype == np.uint8:
        x = x / 255.0
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).double().numpy()


class ConfidenceFit:
    """How to fit (one home for these settings and their checks).

    ``target_precision``: answered drawings must be right at least this often on the
    validation data (else "not sure"). ``digit_refusal``: the share of validation digits
    the junk detector may refuse. ``junk_count``: generated junk to train the detector.
    Models whose classes are not the digits 0-9 get temperature and threshold only (the
    junk set holds letters, which such a model must read).
    """

    def __init__(self, enabled: bool = True, target_precision: float = 0.995,
                 digit_refusal: float = 0.01, junk_count: int = 12000, detector_epochs: int = 30,
                 seed: int = 0) -> None:
        if not 0.5 <= target_precision < 1.0:
            raise ValueError(f"confidence.target_precision must be in [0.5, 1), got {target_precision}")
        if not 0.0 < digit_refusal < 0.5:
            raise ValueError(f"confidence.digit_refusal must be in (0, 0.5), got {digit_refusal}")
        if junk_count < 100:
            raise ValueError(f"confidence.junk_count must be at least 100, got {junk_count}")
        if detector_epochs < 1:
            raise ValueError(f"confidence.detector_epochs must be >= 1, got {detector_epochs}")
        self.enabled = enabled
        self.detector_epochs = detector_epochs
        self.target_precision = target_precision
        self.digit_refusal = digit_refusal
        self.junk_count = junk_count
        self.seed = seed

    def fit(self, model: torch.nn.Module, classes: Sequence[str], held_out: LabeledImages,
            fitted_on: str, writers: np.ndarray | None = None,
            pen_strokes: StrokeSet | None = None) -> Calibration:
        """Temperature and answer threshold from ``held_out`` (validation data; ``writers``
        per image when it holds real drawings: the threshold must then hold for each
        writer); the junk detector (``detector_for``) and, for real drawings, its
        threshold from ``held_out`` too."""
        if len(held_out) == 0:
            raise ValueError("no held-out examples to calibrate on")
        logits = logits_of(model, held_out.images)
        temperature = fit_temperature(logits, held_out.labels)
        calibrated = softmax(logits, temperature)
        metrics = {"val_ece_uncalibrated": expected_calibration_error(softmax(logits), held_out.labels),
                   "val_ece": expected_calibration_error(calibrated, held_out.labels),
                   "temperature": temperature}
        detector, junk_threshold, kept = None, 1.0, np.ones(len(held_out), dtype=bool)
        if tuple(classes) == DIGITS:
            detector, own_holdout = self.detector_for(pen_strokes)
            # Real drawings decide what a digit scores when we have them; else MNIST
            # digits the detector never trained on.
            held_out_scores = detector.junk_probability(held_out.images)
            scores = held_out_scores if writers is not None else detector.junk_probability(own_holdout)
            junk_threshold = float(max(0.5, np.quantile(scores, 1.0 - self.digit_refusal)))
            kept = held_out_scores <= junk_threshold
            val_junk = cached_junk(max(400, self.junk_count // 10), "val")
            metrics["val_junk_refused"] = junk_refused(detector.junk_probability(val_junk.images),
                                                       val_junk, junk_threshold)
            metrics["val_digits_refused"] = float((scores > junk_threshold).mean())
        right = calibrated.argmax(axis=1) == held_out.labels
        threshold = choose_answer_threshold(calibrated.max(axis=1)[kept], right[kept],
                                            self.target_precision,
                                            writers[kept] if writers is not None else None)
        answered = kept & (calibrated.max(axis=1) >= threshold)
        metrics["val_answered"] = float(answered.mean())
        metrics["val_answered_acc"] = float(right[answered].mean()) if answered.any() else float("nan")
        log.info("Calibration on %s: temperature %.3f, answer threshold %.3f, junk threshold %.3f",
                 fitted_on, temperature, threshold, junk_threshold)
        return Calibration(temperature, threshold, junk_threshold, detector, fitted_on, metrics)

    def detector_for(self, pen_strokes: StrokeSet | None) -> tuple[JunkDetector, np.ndarray]:
        """The junk detector and the digits it never trained on (uint8). It learns the
        packaged MNIST digits (all but the last ``HOLDOUT``) plus, when given, training
        writers' pen strokes drawn on the canvas, against generated junk. It does not
        depend on the classifier, so it is trained once per machine and cached beside
        the junk (about a minute on 2 cores) for every run with the same inputs."""
        mnist = EmbeddedMNIST().load().train.images
        digits, holdout = mnist[:-HOLDOUT], mnist[-HOLDOUT:]
        if pen_strokes is not None and len(pen_strokes):
            digits = np.concatenate([digits, *(render_many(pen_strokes.strokes, self.seed + i, TRAIN_STYLE,
                                                           exact=False) for i in range(2))])
        key = hashlib.sha256(digits.tobytes() + repr((SIZES, JUNK_VERSION, self.junk_count,
                                                      self.detector_epochs, self.seed)).encode())
        path = default_data_dir("junk") / f"detector-{key.hexdigest()[:16]}.pt"
        with contextlib.suppress(Exception):  # an unreadable cache is simply retrained
            return JunkDetector.from_dict(torch.load(path, map_location="cpu", weights_only=True)), holdout
        junk = cached_junk(self.junk_count, "train", exact=False)
        detector = train_detector(digits, junk.images[~junk.blank], seed=self.seed,
                                  epochs=self.detector_epochs)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, torch_bytes(detector.to_dict()))
        except OSError as exc:
            log.info("junk detector not cached (%s): it is trained again next time", exc)
        return detector, holdout


def junk_refused(scores: np.ndarray, junk: JunkSet, threshold: float) -> float:
    """Share of a junk set refused: by the preprocessing (blank) or by the detector."""
    return float((junk.blank | (scores > threshold)).mean())


def score(model: torch.nn.Module, calibration: Calibration, images: LabeledImages,
          junk: JunkSet | None = None) -> dict[str, float]:
    """What a user gets on ``images`` (test data): calibration error before and after,
    how many are answered and how many of those are right, digits and junk refused."""
    logits = logits_of(model, images.images)
    raw, calibrated = softmax(logits), softmax(logits, calibration.temperature)
    right = calibrated.argmax(axis=1) == images.labels
    if calibration.detector is not None:
        refused = calibration.detector.junk_probability(images.images) > calibration.junk_threshold
    else:
        refused = np.zeros(len(images), dtype=bool)
    answered = ~refused & (calibrated.max(axis=1) >= calibration.answer_threshold)
    out = {"ece_uncalibrated": expected_calibration_error(raw, images.labels),
           "ece": expected_calibration_error(calibrated, images.labels),
           "accuracy": float(right.mean()),
           "answered": float(answered.mean()),
           "answered_acc": float(right[answered].mean()) if answered.any() else float("nan"),
           "digits_refused": float(refused.mean()),
           "not_sure": float((~refused & ~answered).mean())}
    if junk is not None and calibration.detector is not None:
        out["junk_refused"] = junk_refused(calibration.detector.junk_probability(junk.images), junk,
                                           calibration.junk_threshold)
    return out


def prefixed(metrics: dict[str, Any]) -> dict[str, float]:
    return {f"{PREFIX}{k}": float(v) for k, v in metrics.items()}


def _labeled(dataset: Any) -> LabeledImages:
    """A (float (N, 784) in [0, 1], label) TensorDataset as uint8 LabeledImages."""
    x, y = dataset.tensors
    images = np.round(x.numpy().reshape(-1, 28, 28) * 255.0).astype(np.uint8)
    return LabeledImages(images, y.numpy().astype(np.int64))


def calibrate_run(fit: ConfidenceFit, model: torch.nn.Module, classes: Sequence[str],
                  drawings: SourceData | None, datamodule: Any, output_dir: Path) -> dict[str, float]:
    """Fit the run's calibration, write ``calibration.pt`` into ``output_dir`` and return
    ``confidence/*`` metrics measured on the test writers' drawings (or the test split
    when no drawings are at hand). ``drawings``: the drawn evaluation's data or None."""
    if not fit.enabled:
        return {}
    if drawings is not None and list(classes) == list(drawings.classes):
        calibration = fit.fit(model, classes, drawings.val,
                              "the validation writers' real drawings (pen digits)",
                              drawings.val_writers, drawings.train)
        test = drawings.test
    else:
        calibration = fit.fit(model, classes, _labeled(datamodule.eval_dataset("val")),
                              "the run's validation images (no real drawings at hand)")
        test = _labeled(datamodule.eval_dataset("test"))
    write_atomic(output_dir / RUN_FILE, torch_bytes(calibration.to_dict()))
    junk = cached_junk(800, "test") if calibration.detector is not None else None
    measured = score(model, calibration, test, junk)
    return prefixed({**measured, **calibration.metrics})
