"""Crafted, malicious and damaged checkpoint files (issue 11): refused with the true reason,
before any memory is allocated for them, and checkpoints written whole on a full disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from handwriting.checkpoints import (
    AtomicCheckpointIO,
    CheckpointWriteError,
    ResumeError,
    resolve_ckpt_path,
    wandb_run_to_resume,
)
from handwriting.inference import ModelLoadError, Predictor, read_checkpoint
from tests.faults import failing_writes
from tests.helpers import save_checkpoint


class MakeDirectory:
    """Unpickling this calls os.mkdir: a stand-in for any code a crafted file could run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def malicious_checkpoint(path: Path, marker: Path, **extra) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": MakeDirectory(marker), **extra}, path)
    return path


# ------------------------------------------------------------------ 6: allocation before shapes


def test_crafted_hyperparameters_are_refused_before_allocating(tmp_path, monkeypatch) -> None:
    """hidden_sizes=[300000] beside 16-wide weights: building it would take ~1 GB. The
    allocator is capped at 10M elements (as a small machine would be) off the meta device."""
    path = tmp_path / "crafted.ckpt"
    save_checkpoint(path, hidden_sizes=(16,))
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["hidden_sizes"] = [300000]
    torch.save(checkpoint, path)
    assert path.stat().st_size < 100_000
    real_init = torch.nn.Linear.__init__

    def capped_linear(self, in_features, out_features, *args, **kwargs):
        on_meta = torch.get_default_device().type == "meta"  # inside torch.device("meta")
        if in_features * out_features > 10_000_000 and not on_meta:
            raise MemoryError(f"test allocator: a {out_features}x{in_features} layer refused")
        real_init(self, in_features, out_features, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Linear, "__init__", capped_linear)
    with pytest.raises(ModelLoadError, match=r"net\.0\.weight should be \(300000, 784\).*\(16, 784\)"):
        Predictor.from_checkpoint(path)
    with pytest.raises(ModelLoadError, match="hidden_sizes"):  # more layers than weights
        checkpoint["hyper_parameters"]["hidden_sizes"] = [16] * 100_000
        torch.save(checkpoint, path)
        Predictor.from_checkpoint(path)


def test_honest_checkpoint_still_loads(tmp_path) -> None:
    model = save_checkpoint(tmp_path / "ok.ckpt", hidden_sizes=(16, 8))
    loaded = Predictor.from_checkpoint(tmp_path / "ok.ckpt").model
    assert torch.equal(loaded.net[0].weight, model.net[0].weight)


# ------------------------------------------------------------------ 7: the true reason


def test_malicious_pickle_is_called_unsafe_not_truncated(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(ModelLoadError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "holds code or objects other than tensors" in message and "posix.mkdir" in message
    assert "truncated" not in message
    assert not marker.exists()


def test_truncated_checkpoint_is_called_truncated(tmp_path) -> None:
    save_checkpoint(tmp_path / "ok.ckpt")
    data = (tmp_path / "ok.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        read_checkpoint(tmp_path / "cut.ckpt")


# ------------------------------------------------------------------ 10: whole checkpoints


def _training_checkpoint(epoch: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {"epoch": epoch, "global_step": 10 * epoch, "optimizer_states": [], "loops": {},
            "state_dict": {"w": torch.randn(256, 256)}, "hyper_parameters": {}}


def test_checkpoint_write_on_a_full_disk_leaves_the_old_file_whole(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_training_checkpoint(1), folder / "last.ckpt")
    before = (folder / "last.ckpt").read_bytes()
    failing_writes(monkeypatch, folder, errno.ENOSPC, let_through=4096)
    with pytest.raises(CheckpointWriteError, match="disk is full") as caught:
        io.save_checkpoint(_training_checkpoint(2, seed=1), folder / "last.ckpt")
    assert str(folder / "last.ckpt") in str(caught.value) and "ckpt_path=last" in str(caught.value)
    with pytest.raises(CheckpointWriteError):
        io.save_checkpoint(_training_checkpoint(2, seed=1), folder / "epoch002.ckpt")
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]  # no partial, no temp file
    assert (folder / "last.ckpt").read_bytes() == before


def test_damaged_last_checkpoint_falls_back_to_the_newest_that_loads(tmp_path, caplog) -> None:
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_training_checkpoint(3), folder / "epoch003.ckpt")
    io.save_checkpoint(_training_checkpoint(1), folder / "epoch001.ckpt")
    io.save_checkpoint(_training_checkpoint(4), folder / "last.ckpt")
    assert resolve_ckpt_path("last", tmp_path) == str(folder / "last.ckpt")
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[:1000])
    assert resolve_ckpt_path("last", tmp_path) == str(folder / "epoch003.ckpt")
    assert "last.ckpt cannot be used" in caplog.text and "epoch003.ckpt" in caplog.text
    for path in folder.glob("epoch*.ckpt"):
        path.write_bytes(b"")
    with pytest.raises(ResumeError, match="no checkpoint in .* can be resumed from"):
        resolve_ckpt_path("last", tmp_path)


def test_explicit_resume_path_must_be_a_safe_training_checkpoint(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker, epoch=1, global_step=1,
                                optimizer_states=[], loops={})
    with pytest.raises(ModelLoadError, match="posix.mkdir"):
        resolve_ckpt_path(str(evil), tmp_path)
    assert not marker.exists()
    save_checkpoint(tmp_path / "weights.ckpt")  # a promoted-style file: weights only
    with pytest.raises(ResumeError, match="not a training checkpoint"):
        resolve_ckpt_path(str(tmp_path / "weights.ckpt"), tmp_path)


# ------------------------------------------------------------------ 11: the W&B run to resume


def test_wandb_run_to_resume_is_the_newest_run_folder(tmp_path) -> None:
    wandb_dir = tmp_path / "wandb"
    assert wandb_run_to_resume(wandb_dir) is None
    for name in ("offline-run-20260101_120000-abc123", "offline-run-20260101_130000-zz9y8x",
                 "run-20251231_235959-older1", "latest-run"):
        (wandb_dir / name).mkdir(parents=True)
    (wandb_dir / "debug.log").write_text("")
    assert wandb_run_to_resume(wandb_dir) == "zz9y8x"
