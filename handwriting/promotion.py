"""Promote the best checkpoint to the one place the app loads from.

Rules: candidates are ranked by validation accuracy (never test accuracy: picking by
test would make the test number optimistic); a candidate replaces the promoted model
only when it is better on the *same* evaluation data (same data fingerprint) unless
forced; the file is written to a temporary name and ``os.replace``d, so a reader sees
either the old or the new model, never half a file; concurrent promoters serialize on
a lock file; the replaced model is kept under ``history/`` under a name no other
promotion can take (a hard link: no copy that a full disk could cut short).

The promoted ``model.ckpt`` is a slim Lightning checkpoint (weights + hyperparameters +
a ``handwriting`` metadata block) and the authority; ``model.json`` beside it is a
readable copy of that block plus the ``model_sha256`` of the ``model.ckpt`` it describes.
Both files are written in full before either is renamed into place, so a full or
read-only disk changes nothing; :func:`read_promoted` reads the pair consistently (under
the promoters' lock, checked by the hash).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handwriting.atomic import (
    FileWriteError,
    describe_os_error,
    discard,
    publish,
    stage,
    strict_json,
)
from handwriting.calibration import read_run_calibration
from handwriting.checkpoints import torch_bytes
from handwriting.inference import (
    CALIBRATION_KEY,
    ModelLoadError,
    ModelNotFoundError,
    read_checkpoint,
)
from handwriting.provenance import project_root
from handwriting.runs import (  # noqa: F401 - re-exported: promotion's public names
    DRAWN_SELECTION_METRIC,
    RUN_SUMMARY,
    SELECTION_METRIC,
    BadRunError,
    Candidate,
    best_run,
    find_runs,
    rank_runs,
    ranks_by_drawn,
)

MODEL_FILE = "model.ckpt"
META_FILE = "model.json"
HISTORY = "history"


class PromotionError(FileWriteError):
    """The promotion could not be written (disk full, read-only folder...); the promoted
    model is unchanged and no partial file was left."""


def default_promoted_dir() -> Path:
    """The one place the app loads from: ``$HANDWRITING_MODEL_DIR``, else
    ``<project root>/models/promoted`` (root: ``$HANDWRITING_ROOT``, set by train.py, else
    this package's parent) -- the same rule as ``conf/paths/default.yaml``."""
    env = os.environ.get("HANDWRITING_MODEL_DIR")
    return Path(env) if env else project_root() / "models" / "promoted"


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    path: Path
    previous_score: float | None = None


def _failure(directory: Path, exc: OSError, run_dir: Path | None = None) -> PromotionError:
    again = f"handwriting promote {run_dir}" if run_dir else "handwriting promote <run dir>"
    return PromotionError(
        f"Could not promote to {directory}: {describe_os_error(exc)} "
        f"({exc.filename or directory}). The promoted model is unchanged and no partial file "
        f"was left. Free some space or make the folder writable (or choose another one with "
        f"--to DIR / promote.dir=DIR), then run: {again}"
    )


@contextlib.contextmanager
def _locked(directory: Path, shared: bool = False) -> Iterator[None]:
    """Promoters take the lock file exclusively, one after the other, across processes;
    readers of the model + model.json pair share it (POSIX advisory lock; a no-op
    elsewhere, and for readers of a folder that has never been promoted to)."""
    try:
        if shared:
            handle = open(directory / ".promote.lock")  # noqa: SIM115 - closed below
        else:
            directory.mkdir(parents=True, exist_ok=True)
            handle = open(directory / ".promote.lock", "a+")  # noqa: SIM115
    except FileNotFoundError:
        if not shared:
            raise
        yield
        return
    except OSError as exc:
        raise _failure(directory, exc) from exc
    with handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        if not shared:  # staged files of a promoter that was killed: nobody else writes now
            with contextlib.suppress(OSError):
                discard(*directory.glob(".*.tmp"), *directory.joinpath(HISTORY).glob(".*.tmp"))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        _install(directory, slim, current, candidate.run_dir)
        return PromotionResult(True, reason + corrupt_note, target, previous)


def _install(directory: Path, slim: dict[str, Any], replaced: dict[str, Any] | None,
             run_dir: Path) -> None:
    """Write model.ckpt and model.json in full, keep the model they replace, then rename
    both into place. Any OSError (disk full, read-only) before the renames changes nothing
    and leaves nothing behind: it is raised as a PromotionError saying so."""
    target, meta_path = directory / MODEL_FILE, directory / META_FILE
    blob = torch_bytes(slim)  # serialized first: torch's file writer reports ENOSPC cryptically
    copy = {**slim["handwriting"], "model_file": MODEL_FILE,
            "model_sha256": hashlib.sha256(blob).hexdigest()}
    staged_model = staged_meta = kept = None
    try:
        staged_model = stage(target, blob)
        staged_meta = stage(meta_path, strict_json(copy, indent=2, sort_keys=True).encode())
        if target.exists():
            kept = _archive(target, directory / HISTORY, replaced)
        publish(staged_model, target)
        staged_model = None
        publish(staged_meta, meta_path)
        staged_meta = None
    except OSError as exc:
        discard(staged_model, staged_meta)
        if kept is not None and staged_model is not None:  # model not replaced: no duplicate
            discard(kept)
        raise _failure(directory, exc, run_dir) from exc


@dataclass(frozen=True)
class PromotedModel:
    """The promoted model as one consistent read: ``metadata`` is model.ckpt's own block
    (the authority); ``copy`` is model.json when it describes exactly this model.ckpt
    (its ``model_sha256`` matches), else ``None`` (a promoter died between the renames)."""

    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    copy: dict[str, Any] | None


def read_promoted(directory: str | Path) -> PromotedModel:
    """Read model.ckpt and model.json together, never one from before and one from after
    a promotion: under the promoters' lock (shared), and checked by model.json's hash."""
    directory = Path(directory)
    with _locked(directory, shared=True):
        checkpoint = read_checkpoint(directory / MODEL_FILE)
        digest = hashlib.sha256((directory / MODEL_FILE).read_bytes()).hexdigest()
        try:
            copy = json.loads((directory / META_FILE).read_text())
        except (OSError, ValueError):
            copy = None
    current = isinstance(copy, dict) and copy.get("model_sha256") == digest
    metadata = checkpoint.get("handwriting")
    return PromotedModel(checkpoint, metadata if isinstance(metadata, dict) else {},
                         copy if current else None)


def _archive(target: Path, history: Path, meta: dict[str, Any] | None) -> Path:
    """Keep the model being replaced: nothing promoted is ever lost. The name is never one
    that exists (same second, same score, same process: a counter is added), and the file
    is a hard link to the model being replaced, so a full disk cannot cut it short."""
    history.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"val{meta['metrics'][SELECTION_METRIC]:.4f}" if meta else "unreadable"
    base = f"{stamp}-{tag}-{os.getpid()}"
    for number in itertools.count(1):
        destination = history / (f"{base}.ckpt" if number == 1 else f"{base}-{number}.ckpt")
        try:
            _keep(target, destination)
        except FileExistsError:
            continue
        return destination
    raise AssertionError("unreachable")


def _keep(target: Path, destination: Path) -> None:
    """``destination`` becomes ``target``'s content, or FileExistsError if it exists. A hard
    link where the file system allows one, else a full copy published under that name."""
    try:
        os.link(target, destination)
        return
    except FileExistsError:
        raise
    except OSError as exc:  # links unsupported or not allowed (e.g. protected_hardlinks)
        if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    staged = stage(destination, target.read_bytes())
    try:
        # Claim the name first (O_EXCL), so that no other file is ever overwritten.
        os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except BaseException:
        discard(staged)
        raise
    publish(staged, destination)


def recalibrate(directory: str | Path, calibration: Any) -> Path:
    """Store a new ``Calibration`` (``handwriting calibrate``) with the promoted model: the
    same weights and metadata, written like a promotion (under the lock, both files
    replaced whole, the previous file kept in ``history/``)."""
    directory = Path(directory)
    with _locked(directory):
        checkpoint = read_checkpoint(directory / MODEL_FILE)
        metadata = dict(checkpoint.get("handwriting") or {})
        replaced = dict(metadata) if SELECTION_METRIC in metadata.get("metrics", {}) else None
        metadata["calibration"] = calibration.summary()
        checkpoint["handwriting"] = metadata
        checkpoint[CALIBRATION_KEY] = calibration.to_dict()
        _install(directory, checkpoint, replaced, Path(metadata.get("run_dir") or directory))
    return directory / MODEL_FILE
