"""Promotion under faults (issue 11): same-second promotions, full and read-only folders,
file modes, readers between the two renames, a promoter that dies between them, and
broken run.json files in a sweep. Nothing promoted may be lost or half-written."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
import torch

from handwriting.cli import main as cli_main
from handwriting.promoted_dir import HISTORY, META_FILE, MODEL_FILE, PromotionError, read_promoted
from handwriting.promotion import promote
from handwriting.runs import BadRunError, Candidate, find_runs
from tests.faults import failing_writes, read_only_bind, small_tmpfs
from tests.helpers import make_run_dir, save_checkpoint


def _weights(path: Path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["state_dict"]["net.0.weight"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ 1: history collisions


def test_same_second_same_score_keeps_every_replaced_model(tmp_path, monkeypatch) -> None:
    """A, B (same val/acc as A) and C promoted by one process within one second: the
    history must keep A and B, not one copied over the other."""
    monkeypatch.setattr(time, "strftime", lambda *args: "20260101-120000")  # the same second
    target = tmp_path / "promoted"
    runs = [make_run_dir(tmp_path / name, acc, seed=seed)
            for name, acc, seed in (("a", 0.90, 1), ("b", 0.90, 2), ("c", 0.95, 3))]
    for run in runs:
        assert promote(Candidate.from_run_dir(run), target, force=True).promoted
    kept = sorted((target / HISTORY).glob("*.ckpt"))
    assert len(kept) == 2, [p.name for p in kept]
    expected = [_weights(run / "checkpoints" / "best.ckpt") for run in runs[:2]]
    found = [_weights(p) for p in kept]
    for weights in expected:
        assert any(torch.equal(weights, f) for f in found), "a replaced model was lost"


# ------------------------------------------------------------------ 5: full / read-only


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk is full"),
                                             (errno.EROFS, "read-only")])
def test_full_or_read_only_folder_changes_nothing_and_says_why(tmp_path, monkeypatch, code, words) -> None:
    target = tmp_path / "promoted"
    assert promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.80)), target).promoted
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "b", 0.85, seed=1)), target)
    before = _snapshot(target)
    failing_writes(monkeypatch, target, code, let_through=1000, creating=code == errno.EROFS)
    better = Candidate.from_run_dir(make_run_dir(tmp_path / "c", 0.99, seed=2))
    with pytest.raises(PromotionError) as caught:
        promote(better, target)
    message = str(caught.value)
    assert words in message and str(target) in message and "unchanged" in message
    assert "handwriting promote" in message and str(better.run_dir) in message
    monkeypatch.undo()
    assert _snapshot(target) == before, "the promoted folder changed (partial or extra files)"
    assert cli_main(["promote", str(better.run_dir), "--to", str(target)]) == 0  # fixed: works


def test_cli_reports_a_full_disk_as_one_line(tmp_path, monkeypatch, capsys) -> None:
    target = tmp_path / "promoted"
    run = make_run_dir(tmp_path / "a", 0.8)
    target.mkdir()
    failing_writes(monkeypatch, target, errno.ENOSPC, let_through=0)
    assert cli_main(["promote", str(run), "--to", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Could not promote") and "disk is full" in err
    assert "Traceback" not in err and "enforce fail" not in err
    monkeypatch.undo()
    assert not [p for p in target.rglob("*") if p.name != ".promote.lock"]


def test_real_full_tmpfs_leaves_the_live_model_whole(tmp_path) -> None:
    """A real 600 KiB tmpfs: the first model (~480 KB with history) fits, the second cannot."""
    wide = make_run_dir(tmp_path / "wide", 0.9)
    save_checkpoint(wide / "checkpoints" / "best.ckpt", hidden_sizes=(64,))  # ~200 KB
    big = make_run_dir(tmp_path / "big", 0.95, seed=1)
    save_checkpoint(big / "checkpoints" / "best.ckpt", hidden_sizes=(256,), seed=1)  # ~800 KB
    with small_tmpfs(tmp_path / "disk", 600) as disk:
        target = disk / "promoted"
        assert promote(Candidate.from_run_dir(wide), target).promoted
        before = _snapshot(target)
        with pytest.raises(PromotionError, match="disk is full"):
            promote(Candidate.from_run_dir(big), target)
        assert _snapshot(target) == before
        assert read_promoted(target).copy is not None


def test_real_read_only_mount(tmp_path) -> None:
    target = tmp_path / "promoted"
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.8)), target)
    before = _snapshot(target)
    with read_only_bind(target):
        with pytest.raises(PromotionError, match="read-only"):
            promote(Candidate.from_run_dir(make_run_dir(tmp_path / "b", 0.9, seed=1)), target)
        assert read_promoted(target).metadata["metrics"]["val/acc"] == 0.8  # readers still read
    assert _snapshot(target) == before


# ------------------------------------------------------------------ 8: file modes


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_promoted_files_follow_the_umask(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        target = tmp_path / "promoted"
        promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.8)), target)
        promote(Candidate.from_run_dir(make_run_dir(tmp_path / "b", 0.9, seed=1)), target)
    finally:
        os.umask(old)
    files = [target / MODEL_FILE, target / META_FILE, *(target / HISTORY).glob("*.ckpt")]
    assert len(files) == 3
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# ------------------------------------------------------------------ 9: model.json vs model.ckpt


def test_model_json_names_the_exact_model_it_describes(tmp_path) -> None:
    target = tmp_path / "promoted"
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.8)), target)
    meta = json.loads((target / META_FILE).read_text())
    assert meta["model_sha256"] == hashlib.sha256((target / MODEL_FILE).read_bytes()).hexdigest()


def test_reader_between_the_two_renames_sees_a_consistent_pair(tmp_path, monkeypatch) -> None:
    """A promoter paused right after renaming model.ckpt (model.json still the old one):
    a reader that starts then must get the new model with the new model.json."""
    target = tmp_path / "promoted"
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "old", 0.8)), target)
    new = Candidate.from_run_dir(make_run_dir(tmp_path / "new", 0.9, seed=1))
    paused, resume = threading.Event(), threading.Event()
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if Path(dst).name == MODEL_FILE and threading.current_thread() is not threading.main_thread():
            paused.set()
            assert resume.wait(60)

    flock = fcntl.flock

    def reader_flock(handle, operation):  # the reader asks for the lock: let the promoter go on
        if operation & fcntl.LOCK_SH:
            resume.set()
        return flock(handle, operation)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(fcntl, "flock", reader_flock)
    promoter = threading.Thread(target=promote, args=(new, target))
    promoter.start()
    try:
        assert paused.wait(60)
        seen = read_promoted(target)
    finally:
        resume.set()
        promoter.join(60)
    assert seen.metadata["metrics"]["val/acc"] == 0.9
    assert seen.copy is not None and seen.copy["metrics"]["val/acc"] == 0.9


def test_promoter_killed_between_renames_is_visible_and_repaired(tmp_path, monkeypatch) -> None:
    target = tmp_path / "promoted"
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "old", 0.8)), target)
    real_replace = os.replace

    def die_after_model(src, dst):
        real_replace(src, dst)
        if Path(dst).name == MODEL_FILE:
            raise KeyboardInterrupt  # the process is gone: nothing after this runs

    monkeypatch.setattr(os, "replace", die_after_model)
    with pytest.raises(KeyboardInterrupt):
        promote(Candidate.from_run_dir(make_run_dir(tmp_path / "new", 0.9, seed=1)), target)
    monkeypatch.undo()
    stale = read_promoted(target)
    assert stale.metadata["metrics"]["val/acc"] == 0.9 and stale.copy is None
    assert json.loads((target / META_FILE).read_text())["metrics"]["val/acc"] == 0.8  # the lag
    promote(Candidate.from_run_dir(make_run_dir(tmp_path / "best", 0.95, seed=2)), target)
    assert read_promoted(target).copy["metrics"]["val/acc"] == 0.95
    assert len(list((target / HISTORY).glob("*.ckpt"))) == 2  # 0.8 and 0.9 both kept
    assert not list(target.glob(".*.tmp"))


# ------------------------------------------------------------------ 12: bad run.json in a sweep


def test_bad_runs_are_skipped_and_named(tmp_path, caplog, capsys) -> None:
    sweep = tmp_path / "sweep"
    make_run_dir(sweep / "0", 0.7)
    make_run_dir(sweep / "1", 0.9, seed=1)
    make_run_dir(sweep / "2", 0.99, seed=2)
    (sweep / "2" / "run.json").write_text('{"metrics": {"val/acc": 0.99,')  # truncated
    make_run_dir(sweep / "3", 0.5, seed=3)
    summary = json.loads((sweep / "3" / "run.json").read_text())
    del summary["metrics"]["val/acc"]
    (sweep / "3" / "run.json").write_text(json.dumps(summary))
    with pytest.raises(BadRunError, match="val/acc"):
        Candidate.from_run_dir(sweep / "3")
    assert [c.run_dir.name for c in find_runs(sweep)] == ["0", "1"]
    named = caplog.text
    assert str(sweep / "2" / "run.json") in named and str(sweep / "3" / "run.json") in named
    target = tmp_path / "promoted"
    assert cli_main(["promote", str(sweep), "--to", str(target)]) == 0
    assert read_promoted(target).metadata["run_dir"] == str((sweep / "1").resolve())
