"""Promote the best checkpoint to the one place the app loads from.

Rules: candidates are ranked by validation accuracy (never test accuracy: picking by
test would make the test number optimistic); a candidate replaces the promoted model
only when it is better on the *same* evaluation data (same data fingerprint) unless
forced; the file is written to a temporary name and ``os.replace``d, so a reader sees
either the old or the new model, never half a file; concurrent promoters serialize on
a lock file; the replaced model is kept under ``history/``.

The promoted ``model.ckpt`` is a slim Lightning checkpoint (weights + hyperparameters +
a ``handwriting`` metadata block); ``model.json`` beside it is a readable copy of the
metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from handwriting.inference import ModelLoadError, ModelNotFoundError, read_checkpoint
from handwriting.provenance import project_root

MODEL_FILE = "model.ckpt"
META_FILE = "model.json"
RUN_SUMMARY = "run.json"
SELECTION_METRIC = "val/acc"
# The app reads drawings: when two models were scored on the same held-out validation
# writers' drawings, that accuracy decides (drawn.py); test writers never decide.
DRAWN_SELECTION_METRIC = "drawn/val_acc"


def default_promoted_dir() -> Path:
    """The one place the app loads from: ``$HANDWRITING_MODEL_DIR``, else
    ``<project root>/models/promoted`` (root: ``$HANDWRITING_ROOT``, set by train.py, else
    this package's parent) -- the same rule as ``conf/paths/default.yaml``."""
    env = os.environ.get("HANDWRITING_MODEL_DIR")
    return Path(env) if env else project_root() / "models" / "promoted"


@dataclass(frozen=True)
class Candidate:
    """A finished run's best checkpoint and what is known about it."""

    checkpoint: Path
    metrics: dict[str, float]
    config: dict[str, Any]
    data_fingerprint: str
    run_dir: Path
    code: dict[str, Any] | None = None  # git commit and library versions (provenance.py)
    drawn_fingerprint: str | None = None  # held-out drawings it was scored on (drawn.py)

    @property
    def score(self) -> float:
        return float(self.metrics[SELECTION_METRIC])

    @property
    def drawn_score(self) -> float | None:
        value = self.metrics.get(DRAWN_SELECTION_METRIC)
        return float(value) if value is not None and self.drawn_fingerprint else None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> Candidate:
        run_dir = Path(run_dir)
        summary_path = run_dir / RUN_SUMMARY
        try:
            summary = json.loads(summary_path.read_text())
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"{summary_path} not found: {run_dir} is not a finished training run"
            ) from exc
        checkpoint = Path(summary["best_checkpoint"])
        if not checkpoint.is_absolute():
            checkpoint = run_dir / checkpoint
        return cls(
            checkpoint, summary["metrics"], summary["config"], summary["data_fingerprint"], run_dir,
            summary.get("code"), summary.get("drawn_fingerprint"),
        )


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    path: Path
    previous_score: float | None = None


def find_runs(directory: str | Path) -> list[Candidate]:
    """Every finished run at or below ``directory`` (a run dir or a whole sweep)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    return [Candidate.from_run_dir(p.parent) for p in sorted(directory.rglob(RUN_SUMMARY))]


def ranks_by_drawn(candidates: list[Candidate]) -> bool:
    """Whether runs are ranked on drawn/val_acc: all have it, on the same drawings."""
    drawn = {c.drawn_fingerprint for c in candidates}
    return len(drawn) == 1 and all(c.drawn_score is not None for c in candidates)


def rank_runs(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: by drawn validation accuracy when every run has one on the same
    drawings, else by validation accuracy; then val/acc, the lower validation loss, and
    the order given."""
    by_drawn = ranks_by_drawn(candidates)
    return sorted(candidates, key=lambda c: (
        -(c.drawn_score or 0.0) if by_drawn else 0.0, -c.score,
        float(c.metrics.get("val/loss", float("inf")))
    ))


def best_run(candidates: list[Candidate]) -> Candidate:
    """The first of :func:`rank_runs`."""
    if not candidates:
        raise ValueError("no finished runs (no run.json) found to promote")
    return rank_runs(candidates)[0]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialize promoters across processes (POSIX advisory lock; a no-op elsewhere)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".promote.lock", "a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def current_metadata(directory: str | Path) -> dict[str, Any] | None:
    """Metadata of the promoted model, ``None`` if there is none. Raises ModelLoadError if corrupt."""
    try:
        checkpoint = read_checkpoint(Path(directory) / MODEL_FILE)
    except ModelNotFoundError:
        return None
    meta = checkpoint.get("handwriting")
    if not isinstance(meta, dict) or SELECTION_METRIC not in meta.get("metrics", {}):
        raise ModelLoadError(f"{Path(directory) / MODEL_FILE} has no promotion metadata")
    return meta


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
    with _locked(directory):
        corrupt_note = ""
        try:
            current = current_metadata(directory)
        except ModelLoadError as exc:
            current, corrupt_note = None, f" (replaced an unreadable model: {exc})"
        promote_it, reason = _decide(candidate, current, force)
        previous = float(current["metrics"][SELECTION_METRIC]) if current else None
        if not promote_it:
            return PromotionResult(False, reason, target, previous)
        if target.exists():
            _archive(target, directory / "history", current)
        metadata = {
            "metrics": {k: float(v) for k, v in candidate.metrics.items()},
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
        _atomic_write(target, lambda handle: torch.save(slim, handle))
        _atomic_write(
            directory / META_FILE,
            lambda handle: handle.write(json.dumps(metadata, indent=2, sort_keys=True).encode()),
        )
        return PromotionResult(True, reason + corrupt_note, target, previous)


def _archive(target: Path, history: Path, meta: dict[str, Any] | None) -> None:
    """Keep the model being replaced: nothing promoted is ever lost."""
    history.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"val{meta['metrics'][SELECTION_METRIC]:.4f}" if meta else "unreadable"
    destination = history / f"{stamp}-{tag}-{os.getpid()}.ckpt"
    shutil.copy2(target, destination)
