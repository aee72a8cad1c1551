"""One LightningDataModule for every source.

Images live in memory as float tensors and batches are taken by fancy indexing
(a ``BatchSampler`` over a ``TensorDataset``), because per-sample ``DataLoader``
collation costs more than the MLP itself on MNIST-sized data. Augmentation runs on
whole batches after transfer, in training only.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from typing import Any, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from handwriting.data.mix import MixedPool, build_dataset, eval_view, to_tensors
from handwriting.data.redraw import centre_lines
from handwriting.data.split import SizeSpec, Splits, SplitSpec, make_splits
from handwriting.data.types import LabeledImages, SourceData


class Source(Protocol):
    def load(self) -> SourceData: ...


def fingerprint(splits: Splits, classes: tuple[str, ...], source_name: str) -> str:
    """Identifies the evaluation data: two runs are comparable only when this matches."""
    digest = hashlib.sha256()
    digest.update(source_name.encode())
    digest.update("\0".join(classes).encode())
    for part in (splits.val, splits.test):
        digest.update(np.ascontiguousarray(part.images).tobytes())
        digest.update(np.ascontiguousarray(part.labels).tobytes())
    return digest.hexdigest()[:16]


class HandwritingDataModule(pl.LightningDataModule):
    """Splits a source's images and serves them as in-memory tensor batches."""

    def __init__(
        self,
        source: Source,
        split: dict[str, SizeSpec] | None = None,
        split_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        augment: torch.nn.Module | None = None,
        redraw: float = 0.0,
    ) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"data.{key} must be > 0, got {value!r}")
        self.source = source
        self.split = SplitSpec.from_config(split)
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.augment = augment
        if not 0.0 <= redraw <= 100.0:
            raise ValueError(f"data.redraw must be a weight in [0, 100], got {redraw}")
        self.redraw = float(redraw)
        self.splits: Splits | None = None
        self.classes: tuple[str, ...] = ()
        self.source_name = ""
        self._datasets: dict[str, Dataset] = {}
        self._train_weights: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load and split once; Lightning calls this again per stage, which is then free."""
        if self.splits is not None:
            return
        data = self.source.load()
        self.splits = make_splits(data, self.split, seed=self.split_seed)
        self.classes = data.classes
        self.source_name = data.name
        pool = self.splits.train
        if self.redraw > 0 and isinstance(pool, LabeledImages):
            # Training digits also drawn as canvas strokes, `redraw` times as likely each.
            pool = MixedPool(("images", "redrawn"), (pool, centre_lines(pool)), (1.0, self.redraw))
        # Strokes are redrawn from a generator seeded by the run's seed (seed_everything).
        train, self._train_weights = build_dataset(pool, int(torch.initial_seed()) % 2**32)
        self._datasets = {"train": train} | {
            name: to_tensors(getattr(self.splits, name)) for name in ("val", "test")
        }

    @property
    def num_classes(self) -> int:
        self._require_setup()
        return len(self.classes)

    @property
    def fingerprint(self) -> str:
        self._require_setup()
        assert self.splits is not None
        return fingerprint(self.splits, self.classes, self.source_name)

    def sizes(self) -> dict[str, int]:
        """Images (or drawings) per split; canvas redraws of the training digits not counted."""
        self._require_setup()
        assert self.splits is not None
        return {name: len(getattr(self.splits, name)) for name in ("train", "val", "test")}

    def dataset(self, name: str) -> Dataset:
        self._require_setup()
        return self._datasets[name]

    def eval_dataset(self, name: str) -> TensorDataset:
        """A split as fixed in-memory tensors (training strokes drawn once), for reports."""
        return eval_view(self.dataset(name))

    def _require_setup(self) -> None:
        if self.splits is None:
            raise RuntimeError("call datamodule.setup() first")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(name)
        if shuffle:
            generator = torch.Generator().manual_seed(int(torch.initial_seed()) % 2**63)
            sampler: Any = RandomSampler(dataset, generator=generator)
            if self._train_weights is not None:  # a weighted mix of sources
                sampler = WeightedRandomSampler(self._train_weights.tolist(), len(dataset),
                                                replacement=True, generator=generator)
            batch = self.batch_size
        else:
            sampler = SequentialSampler(dataset)
            batch = self.eval_batch_size
        # batch_size=None + a BatchSampler as sampler: the dataset is indexed with a list of
        # indices once per batch instead of once per image. Strokes are drawn in a worker
        # process, beside the training step instead of before it.
        # Not from a daemon process (e.g. a joblib/multiprocessing job): it may not fork.
        draws = (shuffle and not isinstance(dataset, TensorDataset)
                 and not multiprocessing.current_process().daemon)
        # fork where there is one: a job runner (joblib's loky) may set a start method that
        # would have to pickle the dataset and its drawing generator.
        context = "fork" if draws and "fork" in multiprocessing.get_all_start_methods() else None
        return DataLoader(dataset, sampler=BatchSampler(sampler, batch, drop_last=False),
                          batch_size=None, num_workers=1 if draws else 0, persistent_workers=draws,
                          multiprocessing_context=context)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = self.trainer
        if self.augment is not None and trainer is not None and trainer.training:
            x, y = batch
            batch = (self.augment(x), y)
        return batch
