"""Structured config schema: Hydra checks types (and unknown keys in the model) when
the config loads, and :func:`validate` checks values, so a bad value fails before any
data is loaded or any epoch runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from handwriting.model import check_hyperparameters


@dataclass
class ModelSchema:
    _target_: str = "handwriting.model.MLPClassifier"
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    lr: float = 1e-3
    dropout: float = 0.0
    batch_norm: bool = False
    weight_decay: float = 0.0
    scheduler: str = "none"
    label_smoothing: float = 0.0


@dataclass
class ReportSchema:
    enabled: bool = True
    misclassified: int = 36


@dataclass
class PromoteSchema:
    enabled: bool = True
    dir: str = MISSING
    force: bool = False


@dataclass
class TrainSchema:
    task_name: str = "train"
    seed: int = 42
    threads: int | None = None
    lr: float = 1e-3
    ckpt_path: str | None = None
    model: ModelSchema = field(default_factory=ModelSchema)
    report: ReportSchema = field(default_factory=ReportSchema)
    promote: PromoteSchema = field(default_factory=PromoteSchema)
    data: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: Any = MISSING
    pendigits: Any = None
    drawn: Any = None
    confidence: Any = None
    experiment_name: str | None = None


def gpus_for(accelerator: str, devices: Any) -> int | None:
    """GPUs per node to ask SLURM for: the trainer's devices when it trains on GPUs, none
    (``None``: no --gpus-per-node at all) on CPU nodes, where a GPU request cannot be met."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def register_configs() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)
    # experiments/launcher/slurm.yaml: gpus_per_node follows trainer.accelerator.
    OmegaConf.register_new_resolver("gpus_for", gpus_for, replace=True)


def validate(cfg: DictConfig) -> None:
    """Check values that types cannot: raise ValueError naming the key and the allowed range."""
    model = cfg.model
    check_hyperparameters(
        list(model.hidden_sizes), 2, float(model.lr), float(model.dropout),
        float(model.weight_decay), str(model.scheduler),
    )
    if not 0 <= model.label_smoothing < 1:
        raise ValueError(f"model.label_smoothing must be in [0, 1), got {model.label_smoothing}")
    data = cfg.data
    for key in ("batch_size", "eval_batch_size"):
        value = OmegaConf.select(data, key)
        if value is not None and int(value) <= 0:
            raise ValueError(f"data.{key} must be > 0, got {value}")
    threads = cfg.get("threads")
    if threads is not None and threads <= 0:
        raise ValueError(f"threads must be a positive number of CPU threads or null, got {threads}")
    max_epochs = OmegaConf.select(cfg.trainer, "max_epochs")
    if max_epochs is not None and int(max_epochs) <= 0 and int(max_epochs) != -1:
        raise ValueError(f"trainer.max_epochs must be > 0, got {max_epochs}")
    for part, spec in (OmegaConf.select(data, "split") or {}).items():
        if spec is not None and (isinstance(spec, bool) or not isinstance(spec, (int, float))):
            raise ValueError(f"data.split.{part} must be a size, a fraction or null, got {spec!r}")
        if spec is not None and spec < 0:
            raise ValueError(f"data.split.{part} must be >= 0, got {spec}")
