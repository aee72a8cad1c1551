"""The MLP classifier as a LightningModule.

Reference architecture from the original brief: 784 -> 128 -> 128 (ReLU) -> classes,
softmax output, cross-entropy loss, Adam at lr 0.001. Width, depth, dropout, batch norm
and an optional learning-rate schedule are constructor arguments so the stronger MLP of
``experiments/`` is the same class. Every argument is a plain value, so checkpoints load
with ``weights_only=True`` and ``load_from_checkpoint`` works without Hydra.

The constructor is the one home of each setting's default and check: ``conf/model/mlp.yaml``
only names the values a run uses, and Hydra's ``instantiate`` passes them here (a key the
constructor does not take is refused, see ``config.build``). A new hyperparameter is a new
argument here (with its check in :func:`check_settings`) and a line in ``mlp.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

SCHEDULERS = ("none", "onecycle", "cosine")
# More classes than any character set this project reads (EMNIST byclass: 62). A data
# source implying more is almost surely a bad label, and the report's confusion matrix
# grows with the square of the class count.
MAX_CLASSES = 1000


class NonFiniteLossError(ArithmeticError):
    """Training diverged (the loss became NaN or infinite): the run stops, nothing is
    promoted."""


def build_mlp(
    input_size: int,
    hidden_sizes: Sequence[int],
    num_classes: int,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> nn.Sequential:
    """Linear -> [BatchNorm] -> ReLU -> [Dropout] per hidden layer, then a linear head (logits)."""
    layers: list[nn.Module] = []
    width = input_size
    for hidden in hidden_sizes:
        layers.append(nn.Linear(width, hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _number(key: str, value: Any) -> float:
    """``value`` as a float, or ValueError naming ``key``: a YAML or command-line value
    can be any type (``model.lr=fast``), and ``math.isfinite("fast")`` is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


def check_settings(
    hidden_sizes: Sequence[int], num_classes: int, lr: float, dropout: float, batch_norm: bool,
    weight_decay: float, scheduler: str, label_smoothing: float,
) -> None:
    """The constructor's checks, the only ones: fail before training with a message that
    says which value is wrong and what is allowed. The keys are named as the config names
    them (``model.*``), since that is where a person sets them."""
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence):
        raise ValueError(f"model.hidden_sizes must be a list of layer widths, got {hidden_sizes!r}")
    if not hidden_sizes:
        raise ValueError("model.hidden_sizes must list at least one layer width, e.g. [128,128]")
    bad = [h for h in hidden_sizes if not isinstance(h, int) or isinstance(h, bool) or h <= 0]
    if bad:
        raise ValueError(f"model.hidden_sizes must be positive integers, got {list(hidden_sizes)}")
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    if num_classes > MAX_CLASSES:
        raise ValueError(f"{num_classes} classes is more than the {MAX_CLASSES} this project "
                         "supports: check the labels of the data")
    lr = _number("lr", lr)
    if not (math.isfinite(lr) and lr > 0):  # lr=inf trains NaNs
        raise ValueError(f"lr must be > 0 and finite, got {lr}")
    if not 0 <= _number("model.dropout", dropout) < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")
    if not isinstance(batch_norm, bool):
        raise ValueError(f"model.batch_norm must be true or false, got {batch_norm!r}")
    weight_decay = _number("model.weight_decay", weight_decay)
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"model.weight_decay must be >= 0 and finite, got {weight_decay}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"model.scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if not 0 <= _number("model.label_smoothing", label_smoothing) < 1:
        raise ValueError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")


class MLPClassifier(pl.LightningModule):
    """Multi-layer perceptron over flattened 28x28 images in [0, 1]."""

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (128, 128),
        num_classes: int = 10,
        input_size: int = 784,
        lr: float = 1e-3,
        dropout: float = 0.0,
        batch_norm: bool = False,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        label_smoothing: float = 0.0,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(hidden_sizes, Sequence) and not isinstance(hidden_sizes, str):
            hidden_sizes = [int(h) if isinstance(h, float) and h.is_integer() else h
                            for h in hidden_sizes]
        check_settings(hidden_sizes, num_classes, lr, dropout, batch_norm, weight_decay,
                       scheduler, label_smoothing)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        # Plain types only: keeps checkpoints loadable with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "hidden_sizes": list(hidden_sizes),
                "num_classes": int(num_classes),
                "input_size": int(input_size),
                "lr": float(lr),
                "dropout": float(dropout),
                "batch_norm": bool(batch_norm),
                "weight_decay": float(weight_decay),
                "scheduler": str(scheduler),
                "label_smoothing": float(label_smoothing),
                "class_names": [str(c) for c in class_names]
                if class_names is not None
                else [str(i) for i in range(num_classes)],
            }
        )
        self.net = build_mlp(input_size, hidden_sizes, num_classes, dropout, batch_norm)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=False)
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_acc_best = MaxMetric()

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams["class_names"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images, (B, 784) or (B, 28, 28) / (B, 1, 28, 28)."""
        return self.net(x.reshape(x.shape[0], -1))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities (the brief's softmax output layer)."""
        return torch.softmax(self(x), dim=-1)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x, y = batch
        logits = self(x)
        return self.loss_fn(logits, y), logits.argmax(dim=-1), y

    def on_train_start(self) -> None:
        # Sanity-check validation must not leak into the best-so-far metric.
        self.val_acc_best.reset()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, preds, y = self._shared_step(batch)
        # Accumulate only; logging once per epoch (below) instead of per step keeps
        # Lightning's per-step bookkeeping off the hot path of a model this small.
        self.train_loss.update(loss.detach())
        self.train_acc.update(preds, y)
        return loss

    def on_train_epoch_end(self) -> None:
        loss = self.train_loss.compute()
        if not bool(torch.isfinite(loss)):
            # Diverged weights stay diverged: stop here rather than train, report and
            # promote NaNs. Raised before this epoch's metrics are logged.
            raise NonFiniteLossError(
                f"Training diverged: the mean training loss of epoch {self.current_epoch} is "
                f"{float(loss)} (lr={self.hparams['lr']:g}). The run stopped and nothing was "
                "promoted. Lower the learning rate (e.g. lr=0.001) and train again.")
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log("train/acc", self.train_acc.compute(), prog_bar=True, sync_dist=True)
        self.train_loss.reset()
        self.train_acc.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, preds, y = self._shared_step(batch)
        self.val_loss(loss)
        self.val_acc(preds, y)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(x), dim=-1)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        if hp["scheduler"] == "none":
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        if hp["scheduler"] == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=hp["lr"], total_steps=max(total_steps, 1)
            )
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(total_steps, 1)
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
