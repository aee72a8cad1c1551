"""Keep a resumed run's CSV metrics whole.

Lightning's ``CSVLogger`` starts ``metrics.csv`` afresh when a run resumes in the same
folder (``ckpt_path=last``), so the epochs before the interruption would vanish from the
one file that is readable without W&B. Before a resumed fit the file is set aside; after it
the earlier rows (those before the resumed run's first step) are put back in front. A
resume that is itself interrupted leaves the set-aside file, and the next one folds it in.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from handwriting.atomic import write_atomic

METRICS = "metrics.csv"
SET_ASIDE = "metrics.before-resume.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _step(row: dict[str, str]) -> int | None:
    value = row.get("step") or ""
    try:
        return int(float(value))
    except ValueError:
        return None


def merge_history(log_dir: str | Path) -> None:
    """Put the set-aside rows back in front of the resumed run's rows in ``metrics.csv``."""
    log_dir = Path(log_dir)
    if not (log_dir / SET_ASIDE).is_file():
        return
    earlier = _rows(log_dir / SET_ASIDE)
    later = _rows(log_dir / METRICS)
    steps = [s for s in map(_step, later) if s is not None]
    first = min(steps) if steps else None
    # Rows from the resumed step on were logged again (or are stale, like an old test row).
    kept = [r for r in earlier if first is None or ((s := _step(r)) is not None and s < first)]
    rows = kept + later
    fields = sorted({key for row in rows for key in row if key})
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows({k: v for k, v in row.items() if k} for row in rows)
    write_atomic(log_dir / METRICS, text.getvalue().encode())
    (log_dir / SET_ASIDE).unlink()


def set_aside_history(log_dir: str | Path) -> None:
    """Before a resumed fit: fold in any earlier set-aside rows, then move ``metrics.csv``
    out of Lightning's way."""
    log_dir = Path(log_dir)
    merge_history(log_dir)
    if (log_dir / METRICS).is_file():
        os.replace(log_dir / METRICS, log_dir / SET_ASIDE)
