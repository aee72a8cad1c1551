"""Confidence a user can trust, and the answers "not sure" and "not a digit".

Why: the softmax of a network trained with cross-entropy is over-confident on data
unlike its training set, and on real drawings its wrong answers came with a median
66% (up to 97%) while its right ones had 94%: the number could not tell a user whether
to trust it. A ``Calibration`` fixes three things, all fitted on held-out data (the
validation writers' drawings, never the test writers) and stored with the model:

1. ``temperature``: logits are divided by it before the softmax (temperature scaling,
   Guo et al. 2017): one number, so it cannot change which digit is read, only how sure
   the model says it is.
2. ``answer_threshold``: below this calibrated confidence the reader says it is not
   sure and shows its two best guesses; chosen as the lowest threshold whose answered
   validation drawings are right at least ``target_precision`` of the time.
3. ``junk_threshold`` on the score of a small detector (``junk_detector.py``) trained on
   digits against generated junk (``junk.py``): above it the input is "not a digit".
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handwriting.junk_detector import JunkDetector

log = logging.getLogger(__name__)
VERSION = 1
READ, NOT_SURE, NOT_A_DIGIT = "read", "not_sure", "not_a_digit"
VERDICTS = (READ, NOT_SURE, NOT_A_DIGIT)


class CalibrationError(ValueError):
    """A stored calibration that cannot be used (other version, bad values)."""


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T)."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(x) == 0:
        raise ValueError("cannot fit a temperature on no examples")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) > 0
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence
    bins weighted by how many answers fall in each (0 = perfectly calibrated)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - confidence[inside].mean())
    return float(total)


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and count (for a reliability diagram)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "count": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()) if (which == b).any() else math.nan,
             "accuracy": float(right[which == b].mean()) if (which == b).any() else math.nan}
            for b in range(bins)]


def choose_answer_threshold(confidence: np.ndarray, right: np.ndarray, target_precision: float,
                            writers: np.ndarray | None = None) -> float:
    """The lowest threshold t such that the answers with confidence >= t reach
    ``target_precision`` both as counted (right answers / answers) and as the calibrated
    confidences predict (their mean), for the validation set as a whole and, given
    ``writers``, for every validation writer on their own: the highest of these wins.

    Why so strict: the people who use the app are new writers. On four validation
    writers pooled, the count alone chose a threshold whose answers were right 99.6% of
    the time there and 99.1% on six other writers; asking it of each writer separately
    is what carried over best (benchmarks/CONFIDENCE.md). A threshold never splits tied
    confidences; if nothing reaches the target, nothing is answered."""
    if len(confidence) == 0:
        raise ValueError("cannot choose a threshold on no examples")
    thresholds = [_pooled_threshold(confidence, right, target_precision)]
    if writers is not None:
        thresholds += [_pooled_threshold(confidence[writers == w], right[writers == w], target_precision)
                       for w in np.unique(writers)]
    return max(thresholds)


def _pooled_threshold(confidence: np.ndarray, right: np.ndarray, target: float) -> float:
    order = np.argsort(-confidence, kind="stable")
    sorted_conf, sorted_right = confidence[order], right[order].astype(np.float64)
    count = np.arange(1, len(order) + 1)
    counted = np.cumsum(sorted_right) / count
    expected = np.cumsum(sorted_conf) / count
    cut_ok = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    good = np.flatnonzero((np.minimum(counted, expected) >= target) & cut_ok)
    if len(good) == 0:
        return float(np.nextafter(sorted_conf[0], np.inf))  # answer nothing
    return float(sorted_conf[good[-1]])


@dataclass(frozen=True)
class Verdict:
    """What to tell a user about one input: ``kind`` is ``read``, ``not_sure`` or
    ``not_a_digit``; ``junk_score`` is the detector's probability that it is junk."""

    kind: str
    junk_score: float | None = None


@dataclass
class Calibration:
    """See the module docstring. ``fitted_on`` says which data chose the values (shown to
    users: a calibration fitted on MNIST-style validation images is weaker evidence than
    one fitted on real drawings); ``metrics`` holds what was measured while fitting."""

    temperature: float = 1.0
    answer_threshold: float = 0.0
    junk_threshold: float = 1.0
    detector: JunkDetector | None = None
    fitted_on: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise CalibrationError(f"temperature must be a finite number > 0, got {self.temperature}")
        for name in ("answer_threshold", "junk_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0 + 1e-9):
                raise CalibrationError(f"{name} must be in [0, 1], got {value}")

    def verdict(self, confidence: float, image28: np.ndarray | None = None) -> Verdict:
        """Junk first (a confident reading of a photo is still a photo), then confidence."""
        score = None
        if self.detector is not None and image28 is not None:
            score = float(self.detector.junk_probability(np.asarray(image28)[None])[0])
            if score > self.junk_threshold:
                return Verdict(NOT_A_DIGIT, score)
        return Verdict(READ if confidence >= self.answer_threshold else NOT_SURE, score)

    def summary(self) -> dict[str, Any]:
        """Plain values only (for model.json, run.json and the app)."""
        return {"version": VERSION, "temperature": self.temperature,
                "answer_threshold": self.answer_threshold, "junk_threshold": self.junk_threshold,
                "junk_detector": self.detector is not None, "fitted_on": self.fitted_on,
                "metrics": dict(self.metrics)}

    def to_dict(self) -> dict[str, Any]:
        """Tensors and plain values only, so it loads with ``torch.load(weights_only=True)``."""
        out = self.summary()
        out["detector"] = self.detector.to_dict() if self.detector is not None else None
        return out

    @classmethod
    def from_dict(cls, stored: Any) -> Calibration:
        if not isinstance(stored, dict) or stored.get("version") != VERSION:
            version = stored.get("version") if isinstance(stored, dict) else type(stored).__name__
            raise CalibrationError(f"unsupported calibration (version {version}, expected {VERSION}); "
                                   "refit it with: handwriting calibrate --model <file>")
        try:
            detector = JunkDetector.from_dict(stored["detector"]) if stored.get("detector") else None
            return cls(float(stored["temperature"]), float(stored["answer_threshold"]),
                       float(stored["junk_threshold"]), detector, str(stored.get("fitted_on", "")),
                       {str(k): float(v) for k, v in dict(stored.get("metrics", {})).items()})
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CalibrationError(f"the stored calibration is damaged ({exc}); refit it with: "
                                   "handwriting calibrate --model <file>") from exc


RUN_FILE = "calibration.pt"  # in a run dir, beside run.json; promotion copies it in


def read_run_calibration(run_dir: str | Path) -> Calibration | None:
    """A run's calibration (``None`` when it has none). Loaded with ``weights_only=True``
    like every checkpoint; a damaged file is reported and left out, never trusted."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return Calibration.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # unreadable, unsafe or damaged: promote the model uncalibrated
        log.warning("%s is not a usable calibration (%s): promoting without it; refit with "
                    "handwriting calibrate --model <promoted model.ckpt>", path, exc)
        return None
