"""Which code made a run: git state and versions, with or without a repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from handwriting.provenance import code_version, describe_code, git_state

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


@needs_git
def test_git_state_reports_the_commit_and_uncommitted_changes(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-qm", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("two")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_outside_a_repository_the_commit_is_none(tmp_path: Path) -> None:
    (tmp_path / ".git").write_text("gitdir: /nonexistent")  # stops git's upward search here
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    assert code_version(tmp_path)["torch"] == torch.__version__


def test_describe_code_is_one_readable_line() -> None:
    code = {"commit": "0123456789abcdef", "dirty": True, "torch": "2.13.0"}
    assert describe_code(code) == "commit 01234567 (uncommitted changes), torch 2.13.0"
    assert describe_code({"commit": None, "dirty": None}) == "no git commit recorded"
    assert describe_code(None) == "n/a"
