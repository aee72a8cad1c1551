"""One training run, from a composed config to a report and a promotion decision.

Everything is built with ``hydra.utils.instantiate`` from plain constructors, so each
part (data module, model, callbacks, loggers) is usable without Hydra; this module is
only the glue and the order of events.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from handwriting.atomic import FileWriteError, strict_json, write_atomic
from handwriting.checkpoints import (
    AtomicCheckpointIO,
    resolve_ckpt_path,
    wandb_run_to_resume,
)
from handwriting.confidence import calibrate_run
from handwriting.config import build, validate
from handwriting.csv_history import merge_history, set_aside_history
from handwriting.data.datamodule import HandwritingDataModule
from handwriting.drawn import DrawnEvaluation
from handwriting.inference import ModelLoadError, model_from_checkpoint, read_checkpoint
from handwriting.model import NonFiniteLossError
from handwriting.promoted_dir import PromotionError
from handwriting.promotion import promote
from handwriting.provenance import code_version
from handwriting.report import write_report
from handwriting.runs import RUN_SUMMARY, Candidate

log = logging.getLogger(__name__)
# The best checkpoint's metrics go to the W&B run summary as final/<metric> (what
# experiments/wandb_sweep.yaml optimizes: final/val/acc).
SUMMARY_PREFIX = "final/"
# W&B's interactive confusion matrix is a table of classes^2 rows: only for few classes.
WANDB_CONFUSION_MAX_CLASSES = 100
# Faults of the user's making or the machine's (a bad value or file, a full or read-only
# disk, a diverging run): train.py reports them as one line instead of a traceback.
USER_FAULTS = (ValueError, FileNotFoundError, ModelLoadError, FileWriteError, NonFiniteLossError)


def _sweep_identity() -> tuple[str | None, str | None]:
    """(group, name) for W&B: one group per --multirun sweep."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return None, None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        group = Path(hydra_cfg.sweep.dir).name
        return group, f"{group}-{hydra_cfg.job.num}"
    return None, Path(hydra_cfg.runtime.output_dir).name


def build_loggers(cfg: DictConfig, group: str | None = None, name: str | None = None,
                  resuming: bool = False) -> list[Logger]:
    """The configured loggers; a resumed run logs to the W&B run it started, not a new one."""
    loggers: list[Logger] = []
    for key, logger_cfg in (cfg.get("logger") or {}).items():
        overrides: dict[str, Any] = {}
        if key == "wandb":
            overrides = {"group": logger_cfg.get("group") or group, "name": logger_cfg.get("name") or name}
            if resuming and not logger_cfg.get("id") and logger_cfg.get("save_dir"):
                overrides["id"] = wandb_run_to_resume(Path(logger_cfg.save_dir) / "wandb")
        loggers.append(instantiate(logger_cfg, **overrides))
    return loggers


def build_callbacks(cfg: DictConfig, has_logger: bool) -> list[pl.Callback]:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not has_logger:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def train(cfg: DictConfig) -> dict[str, float]:
    """Train, test, report, log and (maybe) promote. Returns the run's metrics."""
    validate(cfg)
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))

    datamodule: HandwritingDataModule = build(cfg.data, "data")
    datamodule.prepare_data()
    datamodule.setup("fit")  # errors in data or split surface here, before any model is built
    log.info("Data %s: %s, %d classes", datamodule.source_name, datamodule.sizes(), datamodule.num_classes)
    drawn: DrawnEvaluation | None = instantiate(cfg.drawn, _convert_="all") if cfg.get("drawn") else None
    if drawn is not None:  # before training: a held-out writer in the training data is refused
        drawn.check_disjoint(datamodule.splits.train if datamodule.splits else None)
    model = build(cfg.model, "model", num_classes=datamodule.num_classes,
                  class_names=list(datamodule.classes))
    resume_from = resolve_ckpt_path(cfg.ckpt_path, output_dir)
    wandb_group, wandb_name = _sweep_identity()
    loggers = build_loggers(cfg, wandb_group, wandb_name, resuming=bool(resume_from))
    csv_loggers = [lg for lg in loggers if isinstance(lg, CSVLogger)]
    on_rank_zero = rank_zero_only.rank == 0
    if resume_from and on_rank_zero:
        # Before anything touches the logger: its first use deletes an existing metrics.csv.
        for csv_logger in csv_loggers:
            set_aside_history(csv_logger.log_dir)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                      plugins=[AtomicCheckpointIO()])
    config_dict = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams({"config": config_dict, "data_fingerprint": datamodule.fingerprint})

    metrics: dict[str, float] = {}
    try:
        # weights_only=True explicitly: torch's default can be overridden from the
        # environment (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD), an explicit argument cannot.
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        best_path = best_checkpoint_path(trainer)
        if trainer.is_global_zero:
            best_model = model_from_checkpoint(read_checkpoint(best_path)) if best_path else model
            metrics = evaluate_best(best_model, datamodule, output_dir / "report",
                                    cfg.report.misclassified)
            # Logged like the epochs' metrics (metrics.csv, W&B), before the CSV is flushed.
            for logger in loggers:
                logger.log_metrics({k: metrics[k] for k in ("test/acc", "test/loss")},
                                   step=trainer.global_step)
    finally:
        if on_rank_zero:
            for csv_logger in csv_loggers:
                csv_logger.save()  # flush what Lightning still holds, then put history back
                merge_history(csv_logger.log_dir)
    if not trainer.is_global_zero:
        return {}

    if drawn is not None:
        assert datamodule.splits is not None
        metrics |= drawn.score(best_model, list(datamodule.classes), datamodule.splits.train,
                               output_dir / "report")
    if cfg.get("confidence"):  # calibration.pt beside run.json; promotion takes it along
        drawings = drawn.data() if drawn is not None and "drawn/acc" in metrics else None
        metrics |= calibrate_run(instantiate(cfg.confidence), best_model, list(datamodule.classes),
                                 drawings, datamodule, output_dir)
    metrics["epochs"] = float(trainer.current_epoch)
    metrics["train_seconds"] = time.perf_counter() - started
    summary = {
        "metrics": metrics,
        # Relative to the run dir, so a run or a whole sweep can be moved and still promoted.
        "best_checkpoint": _relative_to(Path(best_path), output_dir) if best_path else None,
        "config": config_dict,
        "data_fingerprint": datamodule.fingerprint,
        "data_source": datamodule.source_name,
        # Held-out real drawings: same fingerprint = drawn/* comparable across runs.
        "drawn_fingerprint": drawn.fingerprint() if drawn and "drawn/acc" in metrics else None,
        "drawn_unavailable": (drawn.unavailable or None) if drawn else "drawn evaluation off",
        "sizes": datamodule.sizes(),
        "wandb_group": wandb_group,
        "code": code_version(),
    }
    # Whole or absent: a run killed while writing it must not look finished (or broken).
    write_atomic(output_dir / RUN_SUMMARY, strict_json(summary, indent=2).encode())
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            log_to_wandb(logger, output_dir, metrics, best_path)

    if cfg.promote.enabled and best_path:
        try:
            result = promote(Candidate.from_run_dir(output_dir), cfg.promote.dir, force=cfg.promote.force)
        except PromotionError as exc:  # the run itself is finished and can be promoted later
            log.error("Not promoted: %s", exc)
            print(f"Not promoted: {exc}", file=sys.stderr)
        else:
            verdict = "Promoted" if result.promoted else "Not promoted"
            log.info("%s to %s: %s", verdict, result.path, result.reason)
            print(f"{verdict} -> {result.path}: {result.reason}")
    finish_wandb(loggers)
    return metrics


def evaluate_best(model: torch.nn.Module, datamodule: HandwritingDataModule, report_dir: Path,
                  misclassified: int) -> dict[str, float]:
    """The one evaluation of the best checkpoint: every split once, through
    ``report.evaluate``, whose numbers fill report.json, run.json and the logged test/*.

    The training split is re-evaluated clean (no augmentation, fixed weights) and named
    ``train_clean/*``: ``train/acc`` in metrics.csv is the running accuracy on augmented
    batches while the weights change, another number."""
    splits = {"train_clean": datamodule.eval_dataset("train"),
              "val": datamodule.eval_dataset("val"), "test": datamodule.eval_dataset("test")}
    return write_report(model, splits, list(datamodule.classes), report_dir,
                        misclassified=misclassified)


def best_checkpoint_path(trainer: pl.Trainer) -> str:
    """The best checkpoint of the ``ModelCheckpoint`` that monitors a metric ("" if none):
    the other one (``last_checkpoint``) only keeps the newest epoch for resuming."""
    monitored = [cb for cb in trainer.checkpoint_callbacks
                 if isinstance(cb, ModelCheckpoint) and cb.monitor]
    return monitored[0].best_model_path if monitored else ""


def _relative_to(path: Path, directory: Path) -> str:
    """``path`` relative to ``directory`` when it lies inside it, else absolute."""
    path, directory = path.resolve(), directory.resolve()
    return str(path.relative_to(directory)) if path.is_relative_to(directory) else str(path)


def log_to_wandb(logger: WandbLogger, output_dir: Path, metrics: dict[str, float], best_path: str) -> None:
    """Report images, final metrics and the best checkpoint as a W&B model artifact."""
    import wandb

    run = logger.experiment
    report_dir = output_dir / "report"
    report = json.loads((report_dir / "report.json").read_text())
    confusion = np.asarray(report["test_confusion_matrix"])
    # Expand the counts back into (true, predicted) pairs for W&B's interactive matrix.
    true_idx, pred_idx = np.nonzero(confusion)
    counts = confusion[true_idx, pred_idx]
    logged = {
        "report/confusion_matrix": wandb.Image(str(report_dir / "confusion_matrix.png")),
        "report/misclassified": wandb.Image(str(report_dir / "misclassified.png")),
        "report/per_class_test_accuracy": wandb.Table(
            columns=["class", "accuracy"],
            data=[[c, a] for c, a in report["per_class_test_accuracy"].items()]),
    }
    if len(report["classes"]) <= WANDB_CONFUSION_MAX_CLASSES:
        logged["report/test_confusion"] = wandb.plot.confusion_matrix(
            y_true=np.repeat(true_idx, counts).tolist(), preds=np.repeat(pred_idx, counts).tolist(),
            class_names=report["classes"], title="test confusion matrix")
    run.log(logged)
    run.summary.update({f"{SUMMARY_PREFIX}{k}": v for k, v in metrics.items()})
    if best_path:
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=metrics)
        artifact.add_file(best_path, name="model.ckpt")
        artifact.add_file(str(output_dir / RUN_SUMMARY), name=RUN_SUMMARY)
        run.log_artifact(artifact, aliases=["best", "latest"])


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the W&B run so the next job of a --multirun starts a new one."""
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        wandb.finish()
