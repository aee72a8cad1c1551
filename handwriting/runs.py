"""Finished runs: what a run's ``run.json`` says, and how runs rank against each other.

Runs are ranked by validation accuracy (never test accuracy: picking by test would make
the test number optimistic), or by accuracy on held-out writers' drawings when every run
was scored on the same ones. A run.json that cannot be ranked (unreadable, or without a
finite ``val/acc``) is a :class:`BadRunError` that names the file; a sweep skips it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUN_SUMMARY = "run.json"
SELECTION_METRIC = "val/acc"
# The app reads drawings: when two models were scored on the same held-out validation
# writers' drawings, that accuracy decides (drawn.py); test writers never decide.
DRAWN_SELECTION_METRIC = "drawn/val_acc"


class BadRunError(ValueError):
    """A run.json that cannot be promoted (unreadable, or missing what ranking needs)."""


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
        """The run's candidate; BadRunError naming run.json when it cannot be ranked."""
        run_dir = Path(run_dir)
        summary_path = run_dir / RUN_SUMMARY
        try:
            summary = json.loads(summary_path.read_text())
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"{summary_path} not found: {run_dir} is not a finished training run"
            ) from exc
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BadRunError(f"{summary_path} is not readable JSON ({exc})") from exc
        if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
            raise BadRunError(f"{summary_path} has no 'metrics' table")
        score = summary["metrics"].get(SELECTION_METRIC)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise BadRunError(f"{summary_path} has no finite {SELECTION_METRIC!r} metric "
                              f"(got {score!r}): the run cannot be ranked")
        if not isinstance(summary.get("best_checkpoint"), str):
            raise BadRunError(f"{summary_path} names no best checkpoint")
        checkpoint = Path(summary["best_checkpoint"])
        if not checkpoint.is_absolute():
            checkpoint = run_dir / checkpoint
        if not isinstance(summary.get("data_fingerprint"), str):
            raise BadRunError(f"{summary_path} has no data fingerprint: cannot compare it")
        return cls(
            checkpoint, summary["metrics"], summary.get("config") or {},
            summary["data_fingerprint"], run_dir,
            summary.get("code"), summary.get("drawn_fingerprint"),
        )


def find_runs(directory: str | Path) -> list[Candidate]:
    """Every finished run at or below ``directory`` (a run dir or a whole sweep). A run
    whose run.json is unusable is skipped with a warning naming the file: one broken job
    must not stop a whole sweep from being promoted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    candidates = []
    for summary in sorted(directory.rglob(RUN_SUMMARY)):
        try:
            candidates.append(Candidate.from_run_dir(summary.parent))
        except BadRunError as exc:
            log.warning("Skipping a run: %s", exc)
    return candidates


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
        _loss(c.metrics.get("val/loss"))
    ))


def best_run(candidates: list[Candidate]) -> Candidate:
    """The first of :func:`rank_runs`."""
    if not candidates:
        raise ValueError("no finished runs (no run.json) found to promote")
    return rank_runs(candidates)[0]


def _loss(value: Any) -> float:
    """A run's validation loss for tie-breaking; a missing or null one ranks last."""
    return float(value) if isinstance(value, (int, float)) else float("inf")
