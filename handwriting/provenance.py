"""Which code made a run: the git commit (and whether the tree had uncommitted changes) and
the versions of the libraries that decide the numbers.

Stored in each run's ``run.json`` and beside a promoted model, so a result can be traced to
the code that produced it. Git is optional: outside a repository, or without git, the
commit is simply ``None``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

import handwriting


def project_root() -> Path:
    """``$HANDWRITING_ROOT`` (train.py sets it), else the folder above this package."""
    root = os.environ.get("HANDWRITING_ROOT")
    return Path(root) if root else Path(__file__).resolve().parents[1]


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, *args], cwd=root, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the repository at ``root``."""
    root = root or project_root()
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None}


def code_version(root: Path | None = None) -> dict[str, Any]:
    """The git state plus the package, torch and Lightning versions."""
    return {
        **git_state(root),
        "handwriting": handwriting.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
    }


def describe_code(code: dict[str, Any] | None) -> str:
    """One line for people: ``"commit 1a2b3c4d (uncommitted changes), torch 2.13.0"``."""
    if not code:
        return "n/a"
    commit = code.get("commit")
    text = f"commit {commit[:8]}" if commit else "no git commit recorded"
    if code.get("dirty"):
        text += " (uncommitted changes)"
    if code.get("torch"):
        text += f", torch {code['torch']}"
    return text
