"""Training checkpoints that survive faults: written whole, loaded safely, resumed sanely.

- Lightning's own writer stages a checkpoint in the system temp folder and *moves* it into
  the run dir; across file systems that move is a copy, and a full disk leaves a truncated
  ``epoch*.ckpt``. :class:`AtomicCheckpointIO` writes beside the target and renames.
- A resume loads with ``weights_only=True`` like every other load (training.py passes it to
  Lightning, and :func:`resolve_ckpt_path` checks the file first), so a crafted checkpoint
  cannot run code, even with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the environment.
- ``ckpt_path=last`` with an unusable ``last.ckpt`` (truncated by a crash of an older
  version, or damaged) falls back to the newest checkpoint that loads, and says so.
- A resumed run keeps logging to the W&B run it started (:func:`wandb_run_to_resume`).

Why Lightning's own pieces do not serve here (pytorch-lightning 2.6.6):
- ``ckpt_path="last"`` takes the newest ``last*.ckpt`` by modification time and loads it
  as it is: a damaged ``last.ckpt`` stops the resume instead of falling back, and the file
  is not opened with ``weights_only=True`` before Lightning decides to use it. It also only
  sees ``last*.ckpt`` files of a ``ModelCheckpoint`` with ``save_last`` set. Hence
  :func:`resolve_ckpt_path`, whose answer is then handed to Lightning as a plain path.
- ``save_last=True`` on the checkpoint that monitors ``val/acc`` writes ``last.ckpt`` only
  in an epoch that wrote a new best (``ModelCheckpoint.on_validation_end`` checks
  ``_last_global_step_saved``), so on a plateau a crash would lose every epoch since the
  best. conf/callbacks/default.yaml therefore keeps a second, unmonitored
  ``ModelCheckpoint`` named ``last`` that is rewritten every epoch; both are Lightning's
  class, only configured.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from handwriting.atomic import FileWriteError, describe_os_error, write_atomic
from handwriting.inference import ModelLoadError, read_checkpoint

log = logging.getLogger(__name__)
LAST = "last.ckpt"
# What Lightning needs to continue training, beyond the weights.
TRAINING_STATE = ("epoch", "global_step", "optimizer_states", "loops")


class ResumeError(ModelLoadError):
    """No checkpoint to resume from could be used; the message says which and why."""


class CheckpointWriteError(FileWriteError):
    """A training checkpoint could not be written (disk full, read-only)."""


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` into memory: the one way files of tensors are made here, so they can
    be written whole with ``atomic.write_atomic`` (torch's own file writer reports a full
    disk cryptically and leaves a partial file)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, but each file is written to a temporary name in its own
    folder and renamed: whole or absent, never truncated, on any local file system."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path) or storage_options is not None:  # remote storage: Lightning's way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, torch_bytes(checkpoint))
        except OSError as exc:
            raise CheckpointWriteError(
                f"Could not write the checkpoint {path}: {describe_os_error(exc)}. Training "
                f"stopped; the checkpoints already in {path.parent} are whole. Free some space "
                f"(or make the folder writable), then resume with the same overrides plus "
                f"ckpt_path=last (and hydra.run.dir=<this run's dir>)."
            ) from exc


def training_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded with ``weights_only=True``, if it holds everything
    a resume needs; ModelLoadError (ResumeError) saying what is wrong otherwise."""
    checkpoint = read_checkpoint(path)
    missing = [key for key in TRAINING_STATE if key not in checkpoint]
    if missing:
        raise ResumeError(
            f"{path} is not a training checkpoint (no {', '.join(missing)}): it holds weights "
            f"only, like a promoted model. Resume from a run's checkpoints/{LAST}.")
    return checkpoint


def _newest_usable(folder: Path) -> str:
    """``last.ckpt`` when it loads, else the newest checkpoint in ``folder`` that does."""
    last = folder / LAST
    problems: dict[Path, str] = {}
    usable: list[tuple[int, int, bool, Path]] = []
    for path in sorted(folder.glob("*.ckpt")):
        try:
            checkpoint = training_checkpoint(path)
        except ModelLoadError as exc:
            problems[path] = str(exc)
            continue
        usable.append((int(checkpoint["epoch"]), int(checkpoint["global_step"]), path == last, path))
    if not usable:
        raise ResumeError(
            f"ckpt_path=last: no checkpoint in {folder} can be resumed from: "
            + "; ".join(problems.values())
            + f". Move {folder} aside to start this run afresh.")
    chosen = max(usable)[-1]
    if last in problems:
        log.warning("%s cannot be used (%s). Resuming from %s instead, the newest checkpoint "
                    "that loads.", last, problems[last], chosen)
    log.info("Resuming from %s", chosen)
    return str(chosen)


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``"last"`` means this run dir's ``checkpoints/last.ckpt`` (or the newest checkpoint
    there that loads; a fresh start if there is none yet); a path must be a loadable
    training checkpoint. Every candidate is opened with ``weights_only=True`` first."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        folder = output_dir / "checkpoints"
        if not any(folder.glob("*.ckpt")):
            log.info("No %s yet: starting from scratch", folder / LAST)
            return None
        return _newest_usable(folder)
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint to resume from")
    training_checkpoint(path)
    return str(path.resolve())


# W&B names a run's folder run-YYYYMMDD_HHMMSS-<id> (offline-run-... when offline).
_WANDB_RUN = re.compile(r"^(?:offline-)?run-(?P<time>\d{8}_\d{6})-(?P<id>[a-z0-9]+)$")


def wandb_run_to_resume(wandb_dir: Path) -> str | None:
    """The id of the W&B run an interrupted run logged to (its newest run folder under
    ``wandb_dir``), so that resuming continues that run instead of starting another."""
    found = [(m["time"], m["id"]) for p in (wandb_dir.glob("*run-*") if wandb_dir.is_dir() else [])
             if p.is_dir() and (m := _WANDB_RUN.match(p.name))]
    return max(found)[1] if found else None
