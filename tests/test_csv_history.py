"""A resumed run's metrics.csv keeps the epochs from before the interruption."""

from __future__ import annotations

import csv
from pathlib import Path

from handwriting.csv_history import METRICS, SET_ASIDE, merge_history, set_aside_history


def write(path: Path, rows: list[dict[str, object]]) -> None:
    fields = sorted({k for row in rows for k in row})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_resume_puts_earlier_epochs_back_and_drops_what_was_logged_again(tmp_path: Path) -> None:
    write(tmp_path / METRICS, [
        {"epoch": 0, "step": 7, "val/acc": 0.3},
        {"epoch": 1, "step": 15, "val/acc": 0.5},
        {"epoch": 2, "step": 23, "val/acc": 0.6},  # after the last checkpoint: redone
        {"step": 24, "test/acc": 0.55},            # a stale test result
    ])
    set_aside_history(tmp_path)
    assert not (tmp_path / METRICS).exists() and (tmp_path / SET_ASIDE).is_file()
    # Lightning writes the resumed run's rows (new columns may appear) ...
    write(tmp_path / METRICS, [
        {"epoch": 2, "step": 23, "val/acc": 0.61, "train/acc": 0.7},
        {"step": 24, "test/acc": 0.6},
    ])
    merge_history(tmp_path)
    rows = read(tmp_path / METRICS)
    assert [(r["epoch"], r["step"], r["val/acc"]) for r in rows] == [
        ("0", "7", "0.3"), ("1", "15", "0.5"), ("2", "23", "0.61"), ("", "24", "")]
    assert rows[-1]["test/acc"] == "0.6" and rows[2]["train/acc"] == "0.7"
    assert not (tmp_path / SET_ASIDE).exists()


def test_an_interrupted_resume_is_folded_in_by_the_next_one(tmp_path: Path) -> None:
    write(tmp_path / METRICS, [{"epoch": 0, "step": 7}, {"epoch": 1, "step": 15}])
    set_aside_history(tmp_path)
    write(tmp_path / METRICS, [{"epoch": 2, "step": 23}])  # then killed: no merge happened
    set_aside_history(tmp_path)  # the next resume
    write(tmp_path / METRICS, [{"epoch": 3, "step": 31}])
    merge_history(tmp_path)
    assert [r["epoch"] for r in read(tmp_path / METRICS)] == ["0", "1", "2", "3"]


def test_nothing_to_do_without_history(tmp_path: Path) -> None:
    merge_history(tmp_path)
    set_aside_history(tmp_path)
    assert list(tmp_path.iterdir()) == []
