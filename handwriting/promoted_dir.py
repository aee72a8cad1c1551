"""The promoted folder, the one place the app loads its model from, written and read whole.

The promoted ``model.ckpt`` is a slim Lightning checkpoint (weights + hyperparameters +
a ``handwriting`` metadata block) and the authority; ``model.json`` beside it is a
readable copy of that block plus the ``model_sha256`` of the ``model.ckpt`` it describes.
Both files are written in full before either is renamed into place, so a full or
read-only disk changes nothing, and a reader sees either the old or the new model, never
half a file; concurrent promoters serialize on a lock file; the replaced model is kept
under ``history/`` under a name no other promotion can take (a hard link: no copy that a
full disk could cut short). :func:`read_promoted` reads the pair consistently (under the
promoters' lock, checked by the hash). Which model goes in is ``promotion.py``'s job.
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
from handwriting.checkpoints import torch_bytes
from handwriting.inference import ModelLoadError, ModelNotFoundError, read_checkpoint
from handwriting.provenance import project_root
from handwriting.runs import SELECTION_METRIC

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


def _failure(directory: Path, exc: OSError, run_dir: Path | None = None) -> PromotionError:
    again = f"handwriting promote {run_dir}" if run_dir else "handwriting promote <run dir>"
    return PromotionError(
        f"Could not promote to {directory}: {describe_os_error(exc)} "
        f"({exc.filename or directory}). The promoted model is unchanged and no partial file "
        f"was left. Free some space or make the folder writable (or choose another one with "
        f"--to DIR / promote.dir=DIR), then run: {again}"
    )


@contextlib.contextmanager
def locked(directory: Path, shared: bool = False) -> Iterator[None]:
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


def install(directory: Path, slim: dict[str, Any], replaced: dict[str, Any] | None,
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
    with locked(directory, shared=True):
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
