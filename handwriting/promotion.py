"""Promote the best checkpoint to the one place the app loads from.

Rules: candidates are ranked by validation accuracy (never test accuracy: picking by
test would make the test number optimistic); a candidate replaces the promoted model
only when it is better on the *same* evaluation data (same data fingerprint) unless
forced; the run's fitted confidence travels with its weights.

How the promoted folder is written and read whole (atomic renames, the lock, the history
of replaced models, model.json beside model.ckpt) is ``promoted_dir.py``'s job; finding and
ranking runs is ``runs.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handwriting.calibration import read_run_calibration
from handwriting.inference import CALIBRATION_KEY, ModelLoadError, read_checkpoint
from handwriting.promoted_dir import (
    MODEL_FILE,
    current_metadata,
    install,
    locked,
)
from handwriting.runs import (
    DRAWN_SELECTION_METRIC,
    SELECTION_METRIC,
    Candidate,
)


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    path: Path
    previous_score: float | None = None


def _decide(candidate: Candidate, current: dict[str, Any] | None, force: bool) -> tuple[bool, str]:
    if force:
        return True, "forced"
    if current is None:
        return True, "nothing promoted yet"
    if current.get("source_checkpoint") == str(candidate.checkpoint.resolve()):
        return False, "it is already the promoted model"
    old_drawn = current.get("metrics", {}).get(DRAWN_SELECTION_METRIC)
    if (candidate.drawn_score is not None and old_drawn is not None
            and current.get("drawn_fingerprint") == candidate.drawn_fingerprint):
        # Same held-out drawings: comparable even when trained and validated on other data.
        if candidate.drawn_score > float(old_drawn):
            return True, f"{DRAWN_SELECTION_METRIC} {candidate.drawn_score:.4f} > {float(old_drawn):.4f}"
        return False, (f"{DRAWN_SELECTION_METRIC} {candidate.drawn_score:.4f} does not beat the "
                       f"promoted {float(old_drawn):.4f}")
    if current.get("data_fingerprint") != candidate.data_fingerprint:
        return False, (
            "the promoted model was evaluated on different data "
            f"({current.get('data_source')}, fingerprint {current.get('data_fingerprint')} vs "
            f"{candidate.data_fingerprint}): validation accuracies are not comparable. "
            "Use --force (promote.force=true) to replace it anyway"
        )
    old = float(current["metrics"][SELECTION_METRIC])
    if candidate.score > old:
        return True, f"val/acc {candidate.score:.4f} > {old:.4f}"
    return False, f"val/acc {candidate.score:.4f} does not beat the promoted {old:.4f}"


def promote(candidate: Candidate, directory: str | Path, force: bool = False) -> PromotionResult:
    """Make ``candidate`` the promoted model if it is better (see module docstring)."""
    directory = Path(directory)
    target = directory / MODEL_FILE
    source = read_checkpoint(candidate.checkpoint)
    with locked(directory):
        corrupt_note = ""
        try:
            current = current_metadata(directory)
        except ModelLoadError as exc:
            current, corrupt_note = None, f" (replaced an unreadable model: {exc})"
        promote_it, reason = _decide(candidate, current, force)
        previous = float(current["metrics"][SELECTION_METRIC]) if current else None
        if not promote_it:
            return PromotionResult(False, reason, target, previous)
        metadata = {
            "metrics": {k: float(v) for k, v in candidate.metrics.items() if v is not None},
            "config": candidate.config,
            "data_fingerprint": candidate.data_fingerprint,
            "drawn_fingerprint": candidate.drawn_fingerprint,
            "data_source": candidate.config.get("data", {}).get("source", {}).get("_target_"),
            "classes": list(source["hyper_parameters"].get("class_names", [])),
            "run_dir": str(candidate.run_dir.resolve()),
            "source_checkpoint": str(candidate.checkpoint.resolve()),
            "code": candidate.code,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        slim = {
            "state_dict": source["state_dict"],
            "hyper_parameters": source["hyper_parameters"],
            "pytorch-lightning_version": source.get("pytorch-lightning_version"),
            "handwriting": metadata,
        }
        # The run's fitted confidence (calibration.py) travels with its weights.
        calibration = read_run_calibration(candidate.run_dir)
        if calibration is not None:
            slim[CALIBRATION_KEY] = calibration.to_dict()
            metadata["calibration"] = calibration.summary()
        install(directory, slim, current, candidate.run_dir)
        return PromotionResult(True, reason + corrupt_note, target, previous)


def recalibrate(directory: str | Path, calibration: Any) -> Path:
    """Store a new ``Calibration`` (``handwriting calibrate``) with the promoted model: the
    same weights and metadata, written like a promotion (under the lock, both files
    replaced whole, the previous file kept in ``history/``)."""
    directory = Path(directory)
    with locked(directory):
        checkpoint = read_checkpoint(directory / MODEL_FILE)
        metadata = dict(checkpoint.get("handwriting") or {})
        replaced = dict(metadata) if SELECTION_METRIC in metadata.get("metrics", {}) else None
        metadata["calibration"] = calibration.summary()
        checkpoint["handwriting"] = metadata
        checkpoint[CALIBRATION_KEY] = calibration.to_dict()
        install(directory, checkpoint, replaced, Path(metadata.get("run_dir") or directory))
    return directory / MODEL_FILE
