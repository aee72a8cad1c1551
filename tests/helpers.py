"""Small builders shared by tests (real objects, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from handwriting.model import MLPClassifier
from handwriting.runs import RUN_SUMMARY


def save_checkpoint(path: Path, hidden_sizes: tuple[int, ...] = (16,), seed: int = 0) -> MLPClassifier:
    """A Lightning-layout checkpoint (state_dict + hyper_parameters) of a random small MLP."""
    torch.manual_seed(seed)
    model = MLPClassifier(hidden_sizes=hidden_sizes)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return model


def make_run_dir(
    run_dir: Path, val_acc: float, fingerprint: str = "data-a", seed: int = 0, test_acc: float = 0.5
) -> Path:
    """A finished run as training leaves it: run.json + best checkpoint."""
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    save_checkpoint(checkpoint, seed=seed)
    summary = {
        "metrics": {"val/acc": val_acc, "val/loss": 1.0 - val_acc, "test/acc": test_acc},
        "best_checkpoint": str(checkpoint),
        "config": {"seed": seed, "data": {"source": {"_target_": "tests.fake"}}},
        "data_fingerprint": fingerprint,
    }
    (run_dir / RUN_SUMMARY).write_text(json.dumps(summary))
    return run_dir
