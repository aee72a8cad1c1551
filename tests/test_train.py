"""Real training through the command line, as a user runs it (small data, few epochs)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from handwriting.data.datamodule import HandwritingDataModule
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.inference import Predictor
from handwriting.promotion import promote
from handwriting.runs import Candidate

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.split.train=3000", "data.split.val=500", "data.split.test=500"]

pytestmark = pytest.mark.slow


def run_train(*overrides: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("train")
    run_dir, promoted = tmp / "run", tmp / "promoted"
    result = run_train("trainer.max_epochs=3", "lr=0.002", *SMALL,
                       f"hydra.run.dir={run_dir}", f"promote.dir={promoted}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, promoted, result


def test_run_beats_chance_on_held_out_data(trained) -> None:
    run_dir, _, _ = trained
    summary = json.loads((run_dir / "run.json").read_text())
    metrics = summary["metrics"]
    assert summary["sizes"] == {"train": 3000, "val": 500, "test": 500}
    assert metrics["test/acc"] > 0.75, metrics  # chance is 0.10
    assert metrics["val/acc"] > 0.75, metrics
    assert 0 < metrics["train_clean/acc"] <= 1  # the original brief logged "null" here
    assert "train/acc" not in metrics  # that name is the running accuracy of metrics.csv


def test_report_and_logs_are_written(trained) -> None:
    run_dir, _, result = trained
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert set(report["per_class_test_accuracy"]) == {str(d) for d in range(10)}
    assert np.array(report["test_confusion_matrix"]).sum() == 500
    for png in ("confusion_matrix.png", "misclassified.png"):
        assert (run_dir / "report" / png).read_bytes()[:4] == b"\x89PNG"
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    train_acc = [float(r["train/acc"]) for r in rows if r.get("train/acc")]
    assert len(train_acc) == 3 and all(0 < a <= 1 for a in train_acc)
    # One evaluation: the logged test row is the report's number, not a second measurement.
    logged_test = [float(r["test/acc"]) for r in rows if r.get("test/acc")]
    run_metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    assert logged_test == [pytest.approx(run_metrics["test/acc"])]
    assert report["metrics"]["train_clean/acc"] == run_metrics["train_clean/acc"]
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline_runs and list(offline_runs[0].glob("*.wandb"))
    media = offline_runs[0] / "files" / "media"
    assert len(list((media / "images").rglob("*.png"))) >= 2  # confusion matrix + misclassified
    assert list((media / "table").rglob("*.json"))  # interactive confusion matrix, per-class table
    assert "test" in result.stdout and "accuracy" in result.stdout  # the printed table


def test_promoted_model_matches_reported_test_accuracy(trained) -> None:
    run_dir, promoted, result = trained
    assert "Promoted" in result.stdout
    predictor = Predictor.from_checkpoint(promoted / "model.ckpt")
    summary = json.loads((run_dir / "run.json").read_text())
    assert predictor.metadata["metrics"]["val/acc"] == summary["metrics"]["val/acc"]
    assert json.loads((promoted / "model.json").read_text())["data_fingerprint"] == summary["data_fingerprint"]
    # recompute test accuracy independently from the same split
    dm = HandwritingDataModule(EmbeddedMNIST(), split={"train": 3000, "val": 500, "test": 500})
    dm.setup()
    x, y = dm.dataset("test").tensors
    accuracy = float((predictor.probabilities(x.numpy()).argmax(1) == y.numpy()).mean())
    assert accuracy == pytest.approx(summary["metrics"]["test/acc"], abs=1e-6)


def test_run_records_its_code_and_can_be_moved_then_promoted(trained, tmp_path: Path) -> None:
    run_dir, _, _ = trained
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["code"]["torch"] == torch.__version__
    assert set(summary["code"]) >= {"commit", "dirty", "handwriting", "pytorch_lightning"}
    assert not Path(summary["best_checkpoint"]).is_absolute()  # relative to the run dir
    moved = tmp_path / "moved-run"
    shutil.copytree(run_dir, moved)
    result = promote(Candidate.from_run_dir(moved), tmp_path / "promoted")
    assert result.promoted, result.reason
    meta = json.loads((tmp_path / "promoted" / "model.json").read_text())
    assert meta["source_checkpoint"].startswith(str(moved.resolve()))
    assert meta["code"] == summary["code"]


class FakeWandbRun:
    """What log_to_wandb touches of a W&B run: log, summary, log_artifact."""

    def __init__(self) -> None:
        self.logged: dict = {}
        self.summary: dict = {}
        self.artifacts: list = []
        self.id = "fake"

    def log(self, data: dict) -> None:
        self.logged.update(data)

    def log_artifact(self, artifact, aliases=()) -> None:
        self.artifacts.append((artifact, list(aliases)))


def test_wandb_gets_the_report_final_metrics_and_the_model(trained) -> None:
    from types import SimpleNamespace

    from handwriting.training import SUMMARY_PREFIX, log_to_wandb

    run_dir, _, _ = trained
    summary = json.loads((run_dir / "run.json").read_text())
    run = FakeWandbRun()
    best = str(run_dir / summary["best_checkpoint"])
    log_to_wandb(SimpleNamespace(experiment=run), run_dir, summary["metrics"], best)
    assert run.summary[f"{SUMMARY_PREFIX}val/acc"] == summary["metrics"]["val/acc"]  # sweeps use it
    assert {"report/confusion_matrix", "report/test_confusion",
            "report/per_class_test_accuracy"} <= set(run.logged)
    (artifact, aliases), = run.artifacts
    assert artifact.type == "model" and "best" in aliases
    assert artifact.metadata["val/acc"] == summary["metrics"]["val/acc"]


def test_worse_run_is_not_promoted(trained, tmp_path: Path) -> None:
    _, promoted, _ = trained
    before = (promoted / "model.ckpt").read_bytes()
    result = run_train("trainer.max_epochs=1", "lr=0.00001", *SMALL, "logger=csv",
                       f"hydra.run.dir={tmp_path}/run", f"promote.dir={promoted}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Not promoted" in result.stdout
    assert (promoted / "model.ckpt").read_bytes() == before


def test_interrupted_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    """Ctrl-C mid-run, then `ckpt_path=last` in the same run dir: at most one epoch is lost."""
    run_dir = tmp_path / "run"
    args = ["data.split.train=2000", "data.split.val=300", "data.split.test=300", "logger=csv",
            f"hydra.run.dir={run_dir}", f"promote.dir={tmp_path}/promoted", "callbacks.early_stopping=null"]
    env = os.environ | {"WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "train.py", "trainer.max_epochs=200", *args], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if last.is_file() and _epoch(last) >= 1:
                break
            time.sleep(0.5)
        else:
            pytest.fail("no last.ckpt with 2 finished epochs appeared")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run_dir / "run.json").exists(), "an interrupted run must not look finished"
    saved_epoch = _epoch(last)
    resumed_to = saved_epoch + 2
    result = run_train(f"trainer.max_epochs={resumed_to}", "ckpt_path=last", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restoring states from the checkpoint" in result.stderr + result.stdout
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["metrics"]["epochs"] == resumed_to
    # metrics.csv holds every epoch once, those before the interruption included.
    with open(run_dir / "csv" / "metrics.csv") as handle:
        epochs = [int(r["epoch"]) for r in csv.DictReader(handle) if r.get("train/acc")]
    assert epochs == list(range(resumed_to)), epochs


def test_last_checkpoint_follows_every_epoch_even_without_a_new_best(tmp_path: Path) -> None:
    """Lightning's save_last only follows new bests; a plateau must not cost a resume epochs."""
    run_dir = tmp_path / "run"
    result = run_train("trainer.max_epochs=4", "lr=1e-12", "data.split.train=1000",
                       "data.split.val=200", "data.split.test=200", "logger=csv",
                       "callbacks.early_stopping=null",
                       "promote.enabled=false", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = [p.name for p in (run_dir / "checkpoints").glob("epoch*.ckpt")]
    assert best == ["epoch000-val_acc" + best[0].split("val_acc")[1]], best  # no later best
    assert _epoch(run_dir / "checkpoints" / "last.ckpt") == 3


def _epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # being written right now
        return -1


def test_run_fits_a_calibration_and_promotes_it_with_the_model(trained) -> None:
    run_dir, promoted, _ = trained
    metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    # No pen-digit files in the tests: fitted on the run's validation images, measured on test.
    assert {"confidence/ece", "confidence/ece_uncalibrated", "confidence/answered",
            "confidence/answered_acc", "confidence/digits_refused", "confidence/junk_refused",
            "confidence/temperature"} <= set(metrics)
    assert 0 <= metrics["confidence/ece"] <= 1 and 0 < metrics["confidence/answered"] <= 1
    assert (run_dir / "calibration.pt").is_file()
    predictor = Predictor.from_checkpoint(promoted / "model.ckpt")
    assert predictor.calibration is not None
    assert predictor.calibration.temperature == pytest.approx(metrics["confidence/temperature"])
    assert "validation images" in predictor.calibration.fitted_on
    assert predictor.metadata["calibration"]["answer_threshold"] == predictor.calibration.answer_threshold
