"""Training under faults (issue 11), with real in-process runs on a few hundred digits:
resuming never unpickles code and continues the same W&B run, a full disk never leaves a
truncated checkpoint, a diverging run promotes nothing, and a stray label or class count
cannot exhaust memory."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from handwriting import training
from handwriting.atomic import strict_json
from handwriting.checkpoints import AtomicCheckpointIO, CheckpointWriteError
from handwriting.config import register_configs, validate
from handwriting.data.csv_source import CSVFormatError, CSVSource
from handwriting.model import NonFiniteLossError
from handwriting.promoted_dir import META_FILE
from handwriting.promotion import promote
from handwriting.report import MAX_FIGURE_INCHES, plot_confusion
from handwriting.runs import Candidate
from tests.faults import small_tmpfs
from tests.helpers import make_run_dir
from tests.test_checkpoint_faults import malicious_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.split.train=300", "data.split.val=100", "data.split.test=100", "data.redraw=0",
        "augment=none", "drawn=null", "report.misclassified=4", "threads=1",
        "model.hidden_sizes=[16]", "data.batch_size=100", "callbacks.early_stopping=null",
        "confidence=null"]
register_configs()


def compose_run(run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"paths.output_dir={run_dir}",
                                            f"promote.dir={run_dir.parent / 'promoted'}",
                                            *TINY, *overrides])


def run_training(run_dir: Path, *overrides: str) -> dict[str, float]:
    return training.train(compose_run(run_dir, *overrides))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs, logged to W&B (offline) and CSV, like a default run."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run_training(run_dir, "trainer.max_epochs=2", "logger=default", "promote.enabled=false")
    return run_dir


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, symlinks=True)
    (copy / "run.json").unlink()  # as if interrupted after its last checkpoint
    return copy


def _wandb_ids(run_dir: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")}


# ------------------------------------------------------------------ 11: same W&B run


def test_resume_continues_the_same_wandb_run(finished_run, tmp_path) -> None:
    run_dir = copy_run(finished_run, tmp_path)
    (first,) = _wandb_ids(run_dir)
    run_training(run_dir, "trainer.max_epochs=3", "logger=default", "ckpt_path=last",
                 "promote.enabled=false")
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
    assert _wandb_ids(run_dir) == {first}


# ------------------------------------------------------------------ 2: resume loads safely


def test_resume_never_unpickles_code(finished_run, tmp_path, monkeypatch, caplog) -> None:
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 flips torch's default to unsafe loading; a
    crafted last.ckpt must still not run, whether found by ckpt_path=last or swapped in
    after the check."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    run_dir = copy_run(finished_run, tmp_path)
    marker = tmp_path / "code-ran"
    evil = malicious_checkpoint(run_dir / "checkpoints" / "last.ckpt", marker, epoch=1,
                                global_step=3, optimizer_states=[], loops={})
    saves = []
    real_save = AtomicCheckpointIO.save_checkpoint
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint",
                        lambda self, c, path, *a, **k: saves.append(path) or real_save(self, c, path, *a, **k))
    metrics = run_training(run_dir, "trainer.max_epochs=3", "logger=csv", "ckpt_path=last",
                           "promote.enabled=false")
    assert not marker.exists(), "resuming ran code from a checkpoint"
    assert "last.ckpt cannot be used" in caplog.text and "posix.mkdir" in caplog.text
    assert metrics["epochs"] == 3  # resumed from the best (epoch 1) checkpoint, not afresh
    assert saves, "checkpoints were not written by the atomic writer"

    malicious_checkpoint(evil, marker, epoch=1, global_step=3, optimizer_states=[], loops={})
    monkeypatch.setattr(training, "resolve_ckpt_path", lambda path, output_dir: str(evil))
    with pytest.raises(Exception, match="(?i)weights.only"):
        run_training(run_dir, "trainer.max_epochs=4", "logger=csv", "ckpt_path=last",
                     "promote.enabled=false")
    assert not marker.exists(), "Lightning's resume unpickled code"


# ------------------------------------------------------------------ 10: full disk, real


def test_full_run_dir_stops_with_a_message_and_no_truncated_checkpoint(tmp_path) -> None:
    """The run dir on its own small file system (a real tmpfs): Lightning's own writer
    stages in /tmp and copies across, leaving a truncated checkpoint when the copy fails."""
    with small_tmpfs(tmp_path / "disk", 160) as disk:
        run_dir = disk / "run"
        with pytest.raises(CheckpointWriteError, match="disk is full") as caught:
            run_training(run_dir, "trainer.max_epochs=2", "logger=csv", "promote.enabled=false")
        assert "ckpt_path=last" in str(caught.value)
        for path in (run_dir / "checkpoints").glob("*"):
            assert path.suffix == ".ckpt", f"left behind: {path.name}"
            torch.load(path, weights_only=True)  # whole


# ------------------------------------------------------------------ 4: non-finite training


def test_non_finite_hyperparameters_are_refused() -> None:
    with pytest.raises(ValueError, match="lr must be > 0 and finite"):
        validate(compose_run(Path("/tmp/unused"), "lr=inf"))
    with pytest.raises(ValueError, match="weight_decay must be >= 0 and finite"):
        validate(compose_run(Path("/tmp/unused"), "model.weight_decay=nan"))


def test_diverging_run_stops_and_promotes_nothing(tmp_path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="diverged.*nothing was promoted.*Lower the learning rate"):
        run_training(run_dir, "trainer.max_epochs=4", "logger=csv", "lr=1e30")
    assert not (run_dir / "run.json").exists()
    assert not (tmp_path / "promoted" / "model.ckpt").exists()


def _strict_loads(text: str):
    def refuse(constant: str):
        raise ValueError(f"bare {constant} in JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_files_never_hold_bare_nan(tmp_path) -> None:
    assert _strict_loads(strict_json({"a": math.nan, "b": [math.inf, 1.0]})) == {"a": None, "b": [None, 1.0]}
    candidate = Candidate.from_run_dir(make_run_dir(tmp_path / "a", 0.9))
    candidate.metrics["val/loss"] = math.nan
    promote(candidate, tmp_path / "promoted")
    assert _strict_loads((tmp_path / "promoted" / META_FILE).read_text())["metrics"]["val/loss"] is None


# ------------------------------------------------------------------ 3: class counts


def test_one_stray_label_is_refused_with_file_and_line(tmp_path) -> None:
    rng = np.random.default_rng(0)
    labels = [*range(10)] * 3 + [1000]
    rows = [",".join(map(str, [label, *rng.integers(0, 256, 784)])) for label in labels]
    path = tmp_path / "train.csv"
    path.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(CSVFormatError, match=rf"{path}: line 32: label 1000 would make 1001 classes"):
        CSVSource(str(path)).load()
    assert len(CSVSource(str(path), classes=[str(i) for i in range(1001)]).load().classes) == 1001


def test_confusion_figure_stays_small_for_many_classes(tmp_path) -> None:
    classes = [str(i) for i in range(120)]
    plot_confusion(np.eye(120, dtype=np.int64), classes, tmp_path / "cm.png", "many classes")
    with Image.open(tmp_path / "cm.png") as image:
        assert max(image.size) <= MAX_FIGURE_INCHES * 110
