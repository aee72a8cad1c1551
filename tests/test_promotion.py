"""Promotion: only better models replace the promoted one, atomically, nothing is lost."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from handwriting.inference import ModelLoadError, Predictor
from handwriting.promoted_dir import META_FILE, MODEL_FILE, current_metadata
from handwriting.promotion import promote
from handwriting.runs import Candidate, best_run, find_runs
from tests.helpers import make_run_dir


def _promoted_score(directory: Path) -> float:
    return current_metadata(directory)["metrics"]["val/acc"]


def test_first_promotion_writes_model_and_metadata(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", val_acc=0.9)
    result = promote(Candidate.from_run_dir(run), tmp_path / "promoted")
    assert result.promoted
    meta = json.loads((tmp_path / "promoted" / META_FILE).read_text())
    assert meta["metrics"]["val/acc"] == 0.9
    assert meta["data_fingerprint"] == "data-a"
    assert meta["config"]["seed"] == 0 and "promoted_at" in meta
    predictor = Predictor.from_checkpoint(tmp_path / "promoted" / MODEL_FILE)
    assert predictor.metadata["metrics"]["val/acc"] == 0.9


def test_better_replaces_and_worse_does_not(tmp_path: Path) -> None:
    target = tmp_path / "promoted"
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.90)), target)
    worse = promote(Candidate.from_run_dir(make_run_dir(tmp_path / "b", 0.85)), target)
    assert not worse.promoted and "does not beat" in worse.reason
    equal = promote(Candidate.from_run_dir(make_run_dir(tmp_path / "c", 0.90)), target)
    assert not equal.promoted
    better = promote(Candidate.from_run_dir(make_run_dir(tmp_path / "d", 0.95)), target)
    assert better.promoted and better.previous_score == pytest.approx(0.90)
    assert _promoted_score(target) == 0.95
    # the replaced model is kept, not lost
    history = list((target / "history").glob("*.ckpt"))
    assert len(history) == 1 and "val0.9000" in history[0].name


def test_selection_uses_validation_never_test(tmp_path: Path) -> None:
    runs = [
        make_run_dir(tmp_path / "high-test", val_acc=0.80, test_acc=0.99),
        make_run_dir(tmp_path / "high-val", val_acc=0.90, test_acc=0.70),
    ]
    assert best_run(find_runs(tmp_path)).run_dir == runs[1]


def test_different_data_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "promoted"
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.90, fingerprint="x")), target)
    other = Candidate.from_run_dir(make_run_dir(tmp_path / "b", 0.99, fingerprint="y"))
    refused = promote(other, target)
    assert not refused.promoted and "--force" in refused.reason
    assert promote(other, target, force=True).promoted
    assert current_metadata(target)["data_fingerprint"] == "y"


def test_corrupt_promoted_model_is_replaced_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "promoted"
    target.mkdir()
    (target / MODEL_FILE).write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelLoadError):
        current_metadata(target)
    result = promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.5)), target)
    assert result.promoted and "unreadable" in result.reason
    assert _promoted_score(target) == 0.5
    kept = list((target / "history").glob("*unreadable*.ckpt"))
    assert kept and kept[0].read_bytes() == b"not a checkpoint at all"


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    """A checkpoint carrying arbitrary objects must not be unpickled (weights_only=True)."""
    path = tmp_path / MODEL_FILE
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": Path("/etc/passwd")}, path)
    with pytest.raises(ModelLoadError, match="safe"):
        Predictor.from_checkpoint(path)


def _promote_in_process(args: tuple[str, str]) -> bool:
    run_dir, target = args
    return promote(Candidate.from_run_dir(run_dir), target).promoted


def test_concurrent_promoters_keep_the_best(tmp_path: Path) -> None:
    scores = [0.61, 0.93, 0.72, 0.88, 0.95, 0.50]
    runs = [make_run_dir(tmp_path / f"run{i}", s, seed=i) for i, s in enumerate(scores)]
    target = tmp_path / "promoted"
    with mp.get_context("spawn").Pool(3) as pool:
        pool.map(_promote_in_process, [(str(r), str(target)) for r in runs])
    assert _promoted_score(target) == max(scores)
    Predictor.from_checkpoint(target / MODEL_FILE)  # complete, loadable file
    assert not list(target.glob(".*.tmp")), "temporary files left behind"


def test_missing_run_summary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        Candidate.from_run_dir(tmp_path)
    with pytest.raises(ValueError, match="no finished runs"):
        best_run(find_runs(tmp_path))
